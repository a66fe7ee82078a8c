"""The node's derived outputs over real DDS: the semantic point cloud, 3D detections and markers,
track ids, and the compressed segmentation and depth; each computed only while subscribed."""
import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from vision_msgs.msg import Detection2DArray, Detection3DArray
from visualization_msgs.msg import Marker, MarkerArray

from hydranet_ros.image_codec import decode_compressed_depth, image_to_numpy
from hydranet_ros.world import World
from drive_harness import NS, one_per_stamp, run_drive



def test_point_cloud_is_the_depth_back_projected_with_labels_and_colours(node, drive):
    h = node
    for topic, typ in ((f'{NS}/points', PointCloud2), (f'{NS}/depth', Image), (f'{NS}/segmentation', Image),
                       (f'{NS}/camera_info', CameraInfo)):
        h.subscribe(typ, topic)
    got = run_drive(h, drive, [f'{NS}/points', f'{NS}/depth', f'{NS}/segmentation', f'{NS}/camera_info'], frames=1)
    cloud = got[f'{NS}/points'][-1]
    stamp = cloud.header.stamp
    depth = image_to_numpy(next(m for m in got[f'{NS}/depth'] if m.header.stamp == stamp))
    seg = image_to_numpy(next(m for m in got[f'{NS}/segmentation'] if m.header.stamp == stamp))
    k = next(m for m in got[f'{NS}/camera_info'] if m.header.stamp == stamp).k
    # the layout RViz and PCL read
    # the bundled model has the depth uncertainty head: a sigma field after the padding
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ('x', 0, PointField.FLOAT32, 1), ('y', 4, PointField.FLOAT32, 1), ('z', 8, PointField.FLOAT32, 1),
        ('rgb', 12, PointField.FLOAT32, 1), ('label', 16, PointField.UINT8, 1), ('sigma', 20, PointField.FLOAT32, 1)]
    assert cloud.point_step == 24 and cloud.height == 1 and not cloud.is_bigendian
    assert cloud.row_step == cloud.width * 24 == len(cloud.data) and cloud.header.frame_id == 'camera_optical'
    pts = np.frombuffer(bytes(cloud.data), np.dtype({'names': ['x', 'y', 'z', 'rgb', 'label', 'sigma'],
                                                     'formats': ['<f4', '<f4', '<f4', '<u4', 'u1', '<f4'],
                                                     'offsets': [0, 4, 8, 12, 16, 20], 'itemsize': 24}))
    stride = 2                                                      # points.stride default
    assert 0.5 * (depth.size / stride ** 2) < len(pts) <= depth.size / stride ** 2
    fx, cx, fy, cy = k[0], k[2], k[4], k[5]
    u = pts['x'] * fx / pts['z'] + cx
    v = pts['y'] * fy / pts['z'] + cy
    cols, rows = np.round(u).astype(int), np.round(v).astype(int)
    assert np.abs(u - cols).max() < 1e-2 and np.abs(v - rows).max() < 1e-2
    assert (cols % stride == 0).all() and (rows % stride == 0).all()
    np.testing.assert_allclose(pts['z'], depth[rows, cols], rtol=1e-6)
    assert (pts['label'] == seg[rows, cols]).all()
    sky = 7
    assert (seg == sky).any() and not (pts['label'] == sky).any(), 'sky is dropped by default'
    frame = drive[0][0]
    rgb = cv2.resize(frame.rgb, (depth.shape[1], depth.shape[0]), interpolation=cv2.INTER_AREA)
    packed = rgb[rows, cols].astype(np.uint32)
    assert (pts['rgb'] == (packed[:, 0] << 16 | packed[:, 1] << 8 | packed[:, 2])).all()


def test_only_what_is_subscribed_runs(node, drive):
    """Points alone run segmentation and depth; detections alone run detection and, for the
    flow-guided ids, flow."""
    h = node
    sub = h.peer.create_subscription(PointCloud2, f'{NS}/points', lambda m: None, 10)
    run_drive(h, drive, [], frames=1)
    # the cloud carries sigma: the uncertainty head runs too
    assert list(h.received[f'{NS}/stats'][-1].tasks_run) == ['segmentation', 'depth', 'depth_uncertainty']
    h.peer.destroy_subscription(sub)
    h.subscribe(Detection2DArray, f'{NS}/detections')
    assert h.wait_for(lambda: h.node._pubs[('', 'points')].get_subscription_count() == 0)
    run_drive(h, drive, [], frames=1, sec=60)
    assert list(h.received[f'{NS}/stats'][-1].tasks_run) == ['flow', 'detection']


def test_3d_detections_markers_and_stable_ids(node, drive):
    h = node
    for topic, typ in ((f'{NS}/detections', Detection2DArray), (f'{NS}/detections_3d', Detection3DArray),
                       (f'{NS}/detections_3d/markers', MarkerArray)):
        h.subscribe(typ, topic)
    got = run_drive(h, drive, [f'{NS}/detections', f'{NS}/detections_3d', f'{NS}/detections_3d/markers'])
    d2 = got[f'{NS}/detections']
    d3 = got[f'{NS}/detections_3d']
    assert len(d2) == len(d3) == 3
    ids = [[d.id for d in m.detections] for m in d2]
    assert all(i and i.isdigit() for frame in ids for i in frame)
    # cars drive on: most ids of the first frame are still there in the last
    assert len(set(ids[0]) & set(ids[-1])) >= max(1, len(ids[0]) - 1), ids
    world_truth = World(2000).objects_in_camera(12)
    lifted = d3[-1].detections
    assert lifted and {d.id for d in lifted} <= set(ids[-1])
    for det in lifted:
        c, s = det.bbox.center.position, det.bbox.size
        assert c.z > 0 and s.x >= 0 and s.y >= 0 and s.z >= 0
        assert det.results[0].hypothesis.class_id in ('0', '1') and det.bbox.center.orientation.w == 1.0
    # each lifted object lies near one of the world's objects (lateral offset and near face)
    near = [min(abs(c[0] - d.bbox.center.position.x) + abs((c[2] - sz[2] / 2) -
                                                          (d.bbox.center.position.z - d.bbox.size.z / 2))
                for c, sz in world_truth.values()) for d in lifted]
    assert np.median(near) < 3.0, near
    markers = got[f'{NS}/detections_3d/markers'][-1].markers
    assert markers[0].action == Marker.DELETEALL
    cubes = [m for m in markers[1:] if m.type == Marker.LINE_LIST]
    assert len(cubes) == len(lifted) and all(len(m.points) == 24 for m in cubes)
    assert all(m.header.frame_id == 'camera_optical' for m in markers)


def test_compressed_outputs_decode_to_the_raw_ones(node, drive):
    h = node
    for topic, typ in ((f'{NS}/segmentation', Image), (f'{NS}/depth', Image),
                       (f'{NS}/segmentation/compressed', CompressedImage),
                       (f'{NS}/depth/compressedDepth', CompressedImage)):
        h.subscribe(typ, topic)
    got = run_drive(h, drive, [f'{NS}/segmentation', f'{NS}/depth', f'{NS}/segmentation/compressed',
                          f'{NS}/depth/compressedDepth'], frames=1)
    seg_c, depth_c = got[f'{NS}/segmentation/compressed'][-1], got[f'{NS}/depth/compressedDepth'][-1]
    seg = image_to_numpy(next(m for m in got[f'{NS}/segmentation'] if m.header.stamp == seg_c.header.stamp))
    depth = image_to_numpy(next(m for m in got[f'{NS}/depth'] if m.header.stamp == depth_c.header.stamp))
    assert seg_c.format == 'mono8; png compressed '
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(bytes(seg_c.data), np.uint8), cv2.IMREAD_UNCHANGED),
                                  seg)
    assert depth_c.format == '32FC1; compressedDepth png'
    back = decode_compressed_depth(bytes(depth_c.data), depth_c.format)
    valid = depth < 80.0
    assert np.isnan(back[~valid]).all()
    assert (np.abs(back[valid] - depth[valid]) <= depth[valid] ** 2 / (10100 - depth[valid]) + 1e-3).all()
    assert len(depth_c.data) < depth.nbytes / 2


def test_without_camera_info_the_3d_outputs_wait_and_nothing_else_stops(node, drive):
    h = node
    h.subscribe(PointCloud2, f'{NS}/points')
    h.subscribe(Image, f'{NS}/depth')
    run_drive(h, drive, [], with_info=False, frames=2)
    # each frame's depth comes on its own topic: it may land after that frame's stats
    assert h.wait_for(lambda: len(one_per_stamp(h.received[f'{NS}/depth'])) >= 2, timeout=10)
    assert not h.received[f'{NS}/points']
    assert h.node.state_label == 'active' and h.node.counters['errors'] == 0


def test_diagnostics_say_how_depth_is_made_metric(node, drive):
    from diagnostic_msgs.msg import DiagnosticArray
    h = node
    h.subscribe(DiagnosticArray, '/diagnostics')
    h.subscribe(Image, f'{NS}/depth')
    run_drive(h, drive, [], frames=3)      # the first frame may arrive before its camera_info

    def said():
        for msg in h.received['/diagnostics']:
            for status in msg.status:
                values = {kv.key: kv.value for kv in status.values}
                if 'scaled x1.000 by its camera_info' in values.get('depth_camera', ''):
                    return True
        return False
    assert h.wait_for(said, timeout=10), [kv.value for m in h.received['/diagnostics'] for st in m.status
                                           for kv in st.values if kv.key == 'depth_camera']


def _rectified_info(world_k, raw_fx_scale=1.33):
    """A KITTI-style camera_info: P is the rectified image's intrinsics (the world camera's), K the
    raw camera's with a longer focal length (KITTI's K fx 959.8 against P fx 721.5)."""
    fx, _, cx, _, fy, cy = world_k[0], 0, world_k[2], 0, world_k[4], world_k[5]
    k = [fx * raw_fx_scale, 0.0, cx + 12.0, 0.0, fy * raw_fx_scale, cy - 7.0, 0.0, 0.0, 1.0]
    p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return CameraInfo(width=1242, height=375, k=k, p=p, distortion_model='plumb_bob', d=[0.1, -0.05, 0, 0, 0])


def test_a_rectified_camera_info_is_read_through_p_not_k(node, drive):
    """Depth's focal scaling and the cloud use P; the output camera_info keeps both (scaled)."""
    h = node
    for topic, typ in ((f'{NS}/points', PointCloud2), (f'{NS}/depth', Image), (f'{NS}/camera_info', CameraInfo)):
        h.subscribe(typ, topic)
    wanted = [f'{NS}/points', f'{NS}/depth', f'{NS}/camera_info']
    k_only = run_drive(h, drive, wanted, frames=1)                         # P all zeros: K is the rectified one
    depth_k = image_to_numpy(k_only[f'{NS}/depth'][-1])
    for topic in wanted:
        h.received[topic].clear()
    rectified = (drive[0], _rectified_info(list(drive[1].k)))
    got = run_drive(h, rectified, wanted, frames=1, sec=70)
    depth_p = image_to_numpy(got[f'{NS}/depth'][-1])
    # the same rectified focal length: the same metric depth (K's longer focal length would give 1.33x)
    np.testing.assert_allclose(depth_p, depth_k, rtol=1e-5)
    info = got[f'{NS}/camera_info'][-1]
    sx = info.width / 1242
    assert info.p[0] == pytest.approx(drive[1].k[0] * sx) and info.k[0] == pytest.approx(drive[1].k[0] * 1.33 * sx)
    cloud = got[f'{NS}/points'][-1]
    pts = np.frombuffer(bytes(cloud.data), np.dtype({'names': ['x', 'y', 'z'], 'formats': ['<f4'] * 3,
                                                     'offsets': [0, 4, 8], 'itemsize': cloud.point_step}))
    u = pts['x'] * info.p[0] / pts['z'] + info.p[2]
    v = pts['y'] * info.p[5] / pts['z'] + info.p[6]
    assert np.abs(u - np.round(u)).max() < 1e-2 and np.abs(v - np.round(v)).max() < 1e-2
    u_k = pts['x'] * info.k[0] / pts['z'] + info.k[2]
    assert np.abs(u_k - np.round(u_k)).max() > 0.1, 'the cloud must not be K-projected'
