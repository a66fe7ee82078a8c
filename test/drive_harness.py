"""A held-out synthetic drive published into the node frame by frame (shared by the node's
derived-output tests); its fixtures (`drive`, `node`) live in conftest.py."""
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import MarkerArray

from hydranet_ros.image_codec import numpy_to_image

NS = '/hydranet'


def frame_msg(frame, k, sec=50):
    msg = numpy_to_image(frame.rgb, 'rgb8')
    msg.header.frame_id = 'camera_optical'
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, k * 100_000_000
    return msg


def run_drive(h, drive, wanted, with_info=True, frames=3, sec=50):
    """Publish the drive (with its camera_info) one frame at a time, each once its predecessor's
    stats arrived (the first frame again until the node has it: discovery)."""
    img = h.publisher(Image, f'{NS}/input/image')
    info_pub = h.publisher(CameraInfo, f'{NS}/input/camera_info')
    assert h.wait_matched(img)
    stats = h.received[f'{NS}/stats']
    for k, frame in enumerate(drive[0][:frames]):
        msg = frame_msg(frame, k, sec)
        done = lambda: any(m.header.stamp == msg.header.stamp for m in stats)    # noqa: E731
        for _ in range(50 if k == 0 else 1):
            if with_info:
                info_pub.publish(drive[1])
            img.publish(msg)
            if h.wait_for(done, timeout=0.5 if k == 0 else 30):
                break
        assert done()
    # each output has its own topic: the last frame's may land after its stats; wait for it
    # (a test that wants fewer outputs than frames still gets what came)
    last = (msg.header.stamp.sec, msg.header.stamp.nanosec)
    h.wait_for(lambda: all(last in stamps(h.received[t]) for t in wanted), timeout=10)
    assert h.wait_for(lambda: all(h.received[t] for t in wanted), timeout=10)
    return {t: one_per_stamp(h.received[t]) for t in wanted}


def stamps(msgs):
    return {(_header(m).stamp.sec, _header(m).stamp.nanosec) for m in msgs}


def _header(m):
    return m.markers[0].header if isinstance(m, MarkerArray) else m.header


def one_per_stamp(msgs):
    seen = {}
    for m in msgs:
        header = _header(m)
        seen.setdefault((header.stamp.sec, header.stamp.nanosec), m)
    return [seen[k] for k in sorted(seen)]


def odometry_msg(pose, k, sec=50, child_frame_id='base_link'):
    """nav_msgs/Odometry of a 4x4 base pose, stamped like frame_msg's frame k."""
    from nav_msgs.msg import Odometry

    from hydranet_ros.spatial.ego_motion import matrix_quaternion
    msg = Odometry(child_frame_id=child_frame_id)
    msg.header.frame_id = 'odom'
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, k * 100_000_000
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    p.x, p.y, p.z = (float(v) for v in pose[:3, 3])
    q.x, q.y, q.z, q.w = (float(v) for v in matrix_quaternion(pose[:3, :3]))
    return msg


def publish_odometry(h, poses, sec=50):
    """Every frame's base pose on input/odom, and wait until the node holds them all."""
    from nav_msgs.msg import Odometry
    pub = h.publisher(Odometry, f'{NS}/input/odom')
    assert h.wait_matched(pub)
    for k, pose in enumerate(poses):
        pub.publish(odometry_msg(pose, k, sec))
    assert h.wait_for(lambda: h.node._odom.received >= len(poses), timeout=10), 'the node did not get the odometry'
