"""Messages of this package and of vision_msgs cross DDS between two processes intact.

The test process publishes each message; a second process (dds_echo_peer.py) receives it and
publishes it back; the test checks the echoed fields. Real rclpy, real Fast DDS on loopback.
"""
import math
import time

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy

from rostest_util import message_class, spin_until, start_python, stop_process


def _header(msg, sec, nanosec, frame_id):
    msg.header.stamp.sec = sec
    msg.header.stamp.nanosec = nanosec
    msg.header.frame_id = frame_id
    return msg


def make_image():
    from sensor_msgs.msg import Image
    img = _header(Image(), 1700000000, 123456789, 'camera_optical')
    img.height, img.width, img.encoding, img.step = 3, 4, 'rgb8', 12
    img.data = bytes(range(36))
    return img


def check_image(msg):
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1700000000, 123456789)
    assert msg.header.frame_id == 'camera_optical'
    assert (msg.height, msg.width, msg.encoding, msg.step) == (3, 4, 'rgb8', 12)
    assert bytes(msg.data) == bytes(range(36))


def make_detections():
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose
    arr = _header(Detection2DArray(), 42, 7, 'cam0')
    for i in range(2):
        det = Detection2D()
        det.header = arr.header
        det.id = f'track-{i}'
        det.bbox.center.position.x = 100.5 + i
        det.bbox.center.position.y = 50.25
        det.bbox.center.theta = 0.0
        det.bbox.size_x, det.bbox.size_y = 40.0, 20.0 + i
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = 'car' if i == 0 else 'pedestrian'
        hyp.hypothesis.score = 0.9 - 0.1 * i
        hyp.pose.covariance[0] = 1.5
        det.results.append(hyp)
        arr.detections.append(det)
    return arr


def check_detections(msg):
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (42, 7, 'cam0')
    assert [d.id for d in msg.detections] == ['track-0', 'track-1']
    d1 = msg.detections[1]
    assert d1.bbox.center.position.x == pytest.approx(101.5)
    assert d1.bbox.center.position.y == pytest.approx(50.25)
    assert (d1.bbox.size_x, d1.bbox.size_y) == (40.0, 21.0)
    assert [d.results[0].hypothesis.class_id for d in msg.detections] == ['car', 'pedestrian']
    assert msg.detections[0].results[0].hypothesis.score == pytest.approx(0.9)
    assert msg.detections[1].results[0].hypothesis.score == pytest.approx(0.8)
    assert msg.detections[0].results[0].pose.covariance[0] == 1.5


def make_label_info():
    from vision_msgs.msg import LabelInfo, VisionClass
    info = _header(LabelInfo(), 5, 0, 'cam0')
    for cid, name in [(0, 'road'), (1, 'car'), (255, 'unlabelled')]:
        info.class_map.append(VisionClass(class_id=cid, class_name=name))
    info.threshold = 0.375  # exactly representable in float32
    return info


def check_label_info(msg):
    assert [(c.class_id, c.class_name) for c in msg.class_map] == [
        (0, 'road'), (1, 'car'), (255, 'unlabelled')]
    assert msg.threshold == 0.375


def make_flow():
    from hydranet_ros.msg import OpticalFlow
    flow = _header(OpticalFlow(), 10, 500, 'cam0')
    flow.previous_stamp.sec, flow.previous_stamp.nanosec = 9, 900000000
    field = np.zeros((2, 3, 2), np.float32)
    field[..., 0] = [[1.5, -2.0, 0.0], [3.25, 0.5, -0.125]]
    field[..., 1] = [[-1.0, 4.0, 0.75], [0.0, 2.5, float('nan')]]
    flow.flow.header = flow.header
    flow.flow.height, flow.flow.width, flow.flow.encoding = 2, 3, '32FC2'
    flow.flow.step = 3 * 2 * 4
    flow.flow.data = field.tobytes()
    flow.scale_x, flow.scale_y = 0.5, 0.25
    return flow


def check_flow(msg):
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (10, 500)
    assert (msg.previous_stamp.sec, msg.previous_stamp.nanosec) == (9, 900000000)
    assert (msg.flow.encoding, msg.flow.height, msg.flow.width, msg.flow.step) == ('32FC2', 2, 3, 24)
    field = np.frombuffer(bytes(msg.flow.data), np.float32).reshape(2, 3, 2)
    assert field[1, 0, 0] == 3.25 and field[0, 1, 1] == 4.0 and field[1, 2, 0] == -0.125
    assert math.isnan(field[1, 2, 1])
    assert (msg.scale_x, msg.scale_y) == (0.5, 0.25)


def make_stats():
    from hydranet_ros.msg import InferenceStats
    stats = _header(InferenceStats(), 11, 0, 'cam0')
    stats.model_id = 'hydranet_default@3f2a9c'
    stats.device = 'cpu'
    stats.tasks_run = ['segmentation', 'depth', 'flow', 'detection']
    stats.queue_ms, stats.preprocess_ms, stats.inference_ms = 1.5, 2.25, 40.0
    stats.postprocess_ms, stats.total_ms = 3.0, 46.75
    stats.frames_processed, stats.frames_dropped, stats.frames_rejected = 2**40 + 3, 17, 2
    return stats


def check_stats(msg):
    assert msg.model_id == 'hydranet_default@3f2a9c' and msg.device == 'cpu'
    assert list(msg.tasks_run) == ['segmentation', 'depth', 'flow', 'detection']
    assert (msg.queue_ms, msg.preprocess_ms, msg.inference_ms) == (1.5, 2.25, 40.0)
    assert (msg.postprocess_ms, msg.total_ms) == (3.0, 46.75)
    assert (msg.frames_processed, msg.frames_dropped, msg.frames_rejected) == (2**40 + 3, 17, 2)


CASES = {
    'sensor_msgs/msg/Image': (make_image, check_image),
    'vision_msgs/msg/Detection2DArray': (make_detections, check_detections),
    'vision_msgs/msg/LabelInfo': (make_label_info, check_label_info),
    'hydranet_ros/msg/OpticalFlow': (make_flow, check_flow),
    'hydranet_ros/msg/InferenceStats': (make_stats, check_stats),
}


def _topics(type_name):
    base = '/roundtrip/' + type_name.replace('/msg/', '_').lower()
    return base + '/in', base + '/out'


@pytest.fixture(scope='module')
def echo_peer():
    args = []
    for type_name in CASES:
        args += [type_name, *_topics(type_name)]
    proc = start_python('dds_echo_peer.py', *args)
    yield proc
    output = stop_process(proc)
    assert proc.returncode in (0, -2), f'echo peer failed ({proc.returncode}):\n{output}'


@pytest.mark.parametrize('type_name', list(CASES))
def test_round_trip_between_processes(ros_node, echo_peer, type_name):
    make, check = CASES[type_name]
    cls = message_class(type_name)
    topic_in, topic_out = _topics(type_name)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    received = []
    ros_node.create_subscription(cls, topic_out, received.append, qos)
    pub = ros_node.create_publisher(cls, topic_in, qos)

    # Discovery: wait until the peer's subscriber and publisher both matched ours.
    matched = spin_until(ros_node, lambda: pub.get_subscription_count() > 0
                         and ros_node.count_publishers(topic_out) > 0, timeout_s=20)
    assert matched, f'peer never appeared on {topic_in}/{topic_out}; peer alive: {echo_peer.poll() is None}'

    sent = make()
    deadline = time.monotonic() + 15
    while not received and time.monotonic() < deadline:
        pub.publish(sent)
        spin_until(ros_node, lambda: bool(received), timeout_s=0.5)
    assert received, f'no echo of {type_name} within 15 s'
    echoed = received[0]
    assert type(echoed) is cls
    check(echoed)          # the fields we set, one by one
    assert echoed == sent  # and nothing else changed on the way


def test_checks_detect_a_changed_field():
    """The field checks above are able to fail: a changed value is caught."""
    msg = make_stats()
    msg.frames_dropped = 18
    with pytest.raises(AssertionError):
        check_stats(msg)
    flow = make_flow()
    flow.scale_y = 0.5
    with pytest.raises(AssertionError):
        check_flow(flow)
