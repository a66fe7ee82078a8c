"""Building the node's output messages from predictor results: each message type in one place."""
from __future__ import annotations

import array
import copy

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point
from nav_msgs.msg import OccupancyGrid
from sensor_msgs.msg import CameraInfo, CompressedImage, PointCloud2, PointField
from std_msgs.msg import ColorRGBA
from vision_msgs.msg import (Detection2D, Detection2DArray, Detection3D, Detection3DArray, LabelInfo,
                             ObjectHypothesisWithPose, VisionClass)
from visualization_msgs.msg import Marker, MarkerArray

from hydranet_ros.msg import InferenceStats, ObjectMotion, ObjectMotionArray, OpticalFlow
from hydranet_ros.image_codec import COMPRESSED_DEPTH_FORMAT, encode_compressed_depth, numpy_to_image
from hydranet_ros.spatial.ground import rotation_quaternion



def stamp_from_ns(ns: int) -> Time:
    """A ROS Time from integer nanoseconds, exact."""
    return Time(sec=int(ns) // 1_000_000_000, nanosec=int(ns) % 1_000_000_000)


def stamp_to_ns(stamp) -> int:
    """Integer nanoseconds of a ROS Time, exact."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def instance_image(header, ids: np.ndarray):
    """mono16 instance ids (0: no instance), aligned pixel for pixel with the segmentation."""
    return numpy_to_image(np.ascontiguousarray(ids, np.uint16), 'mono16', header)


def segmentation_image(header, seg: np.ndarray):
    """mono8 class ids (values index the LabelInfo class map)."""
    return numpy_to_image(seg.astype(np.uint8, copy=False), 'mono8', header)


def depth_image(header, depth: np.ndarray, min_m: float = 0.0, max_m: float = 0.0):
    """REP 118: 32FC1 metres; -Inf closer than min_m, +Inf farther than max_m, NaN invalid."""
    depth = np.asarray(depth, dtype=np.float32)
    if min_m > 0 or max_m > 0:
        depth = depth.copy()     # the limits rewrite values; the caller's array stays intact
    if min_m > 0:
        depth[depth < min_m] = -np.inf
    if max_m > 0:
        depth[depth > max_m] = np.inf
    return numpy_to_image(depth, '32FC1', header)


def optical_flow(header, previous_stamp_ns: int, flow: np.ndarray, image_size) -> OpticalFlow:
    """previous_stamp_ns: the earlier image's header stamp in integer nanoseconds."""
    msg = OpticalFlow()
    msg.header = header
    msg.previous_stamp = stamp_from_ns(previous_stamp_ns)
    msg.flow = numpy_to_image(flow.astype(np.float32, copy=False), '32FC2', header)
    msg.scale_x = float(flow.shape[1] / image_size[1])
    msg.scale_y = float(flow.shape[0] / image_size[0])
    return msg


def point_cloud(header, cloud) -> PointCloud2:
    """A SemanticCloud as an unorganised PointCloud2 (height 1) in the header's optical frame; with
    a sigma field (point_step 24) when the cloud carries the depth's uncertainty, an instance field
    (uint16 at offset 18) when it carries instance ids (spatial.cloud.cloud_dtype)."""
    n = len(cloud)
    words = 5 if cloud.sigma is None else 6
    # CLOUD_DTYPE as five little-endian 32-bit words per point: x, y, z bits, 0x00RRGGBB, label
    # in the low byte of the fifth, the instance id in its high half (else zero), sigma's bits sixth
    points = np.zeros((n, words), '<u4')
    points[:, :3] = cloud.xyz.astype('<f4', copy=False).view('<u4')
    if cloud.rgb is not None:
        rgb = cloud.rgb
        points[:, 3] = (rgb[:, 0].astype(np.uint32) << 16) | (rgb[:, 1].astype(np.uint32) << 8) | rgb[:, 2]
    if cloud.label is not None:
        points[:, 4] = cloud.label
    if cloud.instance is not None:
        points[:, 4] |= cloud.instance.astype(np.uint32) << 16
    if cloud.sigma is not None:
        points[:, 5] = cloud.sigma.astype('<f4', copy=False).view('<u4')
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = 1, n
    msg.fields = [PointField(name='x', offset=0, datatype=PointField.FLOAT32, count=1),
                  PointField(name='y', offset=4, datatype=PointField.FLOAT32, count=1),
                  PointField(name='z', offset=8, datatype=PointField.FLOAT32, count=1),
                  PointField(name='rgb', offset=12, datatype=PointField.FLOAT32, count=1),
                  PointField(name='label', offset=16, datatype=PointField.UINT8, count=1)]
    if cloud.instance is not None:
        msg.fields.append(PointField(name='instance', offset=18, datatype=PointField.UINT16, count=1))
    if cloud.sigma is not None:
        msg.fields.append(PointField(name='sigma', offset=20, datatype=PointField.FLOAT32, count=1))
    msg.is_bigendian = False
    msg.point_step = cloud.dtype.itemsize
    msg.row_step = msg.point_step * n
    data = array.array('B')
    data.frombytes(memoryview(points).cast('B'))      # one copy into the message
    msg.data = data
    msg.is_dense = True          # every point is finite: invalid depths are left out, not NaN
    return msg


def depth_uncertainty_image(header, sigma: np.ndarray):
    """The depth error's Laplace scale as a 32FC1 image (metres), the depth image's header."""
    return numpy_to_image(np.ascontiguousarray(sigma, np.float32), '32FC1', header)


def occupancy_grid(header, grid) -> OccupancyGrid:
    """A GroundGrid as a nav_msgs/OccupancyGrid in the header's optical frame: info.origin is the
    pose of cell (0, 0)'s corner on the ground plane (x forward, z the plane's normal), so RViz draws
    it in place without a TF; data row-major from that cell, -1 unknown, 0 free, 100 occupied."""
    msg = OccupancyGrid()
    msg.header = header
    msg.info.map_load_time = header.stamp
    msg.info.resolution = float(grid.resolution_m)
    msg.info.height, msg.info.width = (int(n) for n in grid.cells.shape)
    pose = msg.info.origin
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in grid.origin)
    q = pose.orientation
    q.x, q.y, q.z, q.w = rotation_quaternion(grid.axes)
    data = array.array('b')
    data.frombytes(np.ascontiguousarray(grid.cells, np.int8).tobytes())
    msg.data = data
    return msg


def detections_3d(header, objects, dets, ids=None) -> Detection3DArray:
    """Detection3DArray: per lifted detection its class and score (as the 2D one), the 3D box
    centre and size in metres (optical frame, orientation identity) and the track id."""
    out = Detection3DArray()
    out.header = header
    for obj in objects:
        det = dets[obj.index]
        d = Detection3D()
        d.header = header
        d.id = str(ids[obj.index]) if ids is not None else ''
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = str(det.class_id)
        hyp.hypothesis.score = float(det.score)
        hyp.pose.pose.position.x, hyp.pose.pose.position.y, hyp.pose.pose.position.z = obj.center
        hyp.pose.pose.orientation.w = 1.0
        d.results.append(hyp)
        d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.center.position.z = obj.center
        d.bbox.center.orientation.w = 1.0
        d.bbox.size.x, d.bbox.size.y, d.bbox.size.z = obj.size
        out.detections.append(d)
    return out


def object_motion(header, motions) -> ObjectMotionArray:
    """ObjectMotionArray from spatial.motion.ObjectMotion results (msg/ObjectMotion.msg: units)."""
    out = ObjectMotionArray()
    out.header = header
    for m in motions:
        msg = ObjectMotion()
        msg.id = str(m.id)
        msg.position.x, msg.position.y, msg.position.z = (float(v) for v in m.position)
        msg.range = float(m.range_m)
        msg.velocity.x, msg.velocity.y, msg.velocity.z = (float(v) for v in m.velocity)
        msg.velocity_valid = bool(m.velocity_valid)
        msg.closing_speed = float(m.closing_speed)
        msg.time_to_contact = float(m.time_to_contact)
        g = m.velocity_over_ground
        msg.velocity_over_ground.x, msg.velocity_over_ground.y, msg.velocity_over_ground.z = (float(v) for v in g)
        msg.over_ground_valid = bool(m.over_ground_valid)
        f = m.velocity_from_flow
        msg.velocity_from_flow.x, msg.velocity_from_flow.y, msg.velocity_from_flow.z = (float(v) for v in f)
        msg.flow_velocity_valid = bool(m.flow_velocity_valid)
        out.objects.append(msg)
    return out


def markers_3d(header, objects, dets, ids, colors, lifetime_s: float = 0.5) -> MarkerArray:
    """RViz markers for the 3D boxes: a wire cube and a text label (class, id) per object; a
    DELETEALL first, so boxes of earlier frames never linger."""
    out = MarkerArray()
    clear = Marker()
    clear.header = header
    clear.action = Marker.DELETEALL
    out.markers.append(clear)
    life_sec, life_ns = int(lifetime_s), int(round((lifetime_s % 1) * 1e9))
    for k, obj in enumerate(objects):
        det = dets[obj.index]
        r, g, b = (c / 255.0 for c in colors[det.class_id % len(colors)])
        cube = Marker()
        cube.header, cube.ns, cube.id = header, 'hydranet_boxes', 2 * k
        cube.type, cube.action = Marker.LINE_LIST, Marker.ADD
        cube.pose.orientation.w = 1.0
        cube.scale.x = 0.05
        cube.color = ColorRGBA(r=r, g=g, b=b, a=1.0)
        cube.lifetime.sec, cube.lifetime.nanosec = life_sec, life_ns
        cube.points = _box_edges(obj.center, obj.size)
        text = Marker()
        text.header, text.ns, text.id = header, 'hydranet_labels', 2 * k + 1
        text.type, text.action = Marker.TEXT_VIEW_FACING, Marker.ADD
        text.pose.position.x, text.pose.position.y = obj.center[0], obj.center[1] - obj.size[1] / 2 - 0.3
        text.pose.position.z = obj.center[2]
        text.pose.orientation.w = 1.0
        text.scale.z = 0.4
        text.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        text.text = f'{det.class_name} {ids[obj.index]}' if ids is not None else det.class_name
        text.lifetime.sec, text.lifetime.nanosec = life_sec, life_ns
        out.markers.extend([cube, text])
    return out


def _box_edges(center, size) -> list:
    c, h = np.asarray(center, float), np.asarray(size, float) / 2
    corners = [c + h * np.array([sx, sy, sz]) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]
    edges = [(i, j) for i in range(8) for j in range(i + 1, 8) if bin(i ^ j).count('1') == 1]
    return [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for i, j in edges for p in (corners[i], corners[j])]


def compressed_segmentation(header, seg: np.ndarray, png_level: int = 1) -> CompressedImage:
    """mono8 class ids as a lossless PNG CompressedImage, format 'mono8; png compressed ' exactly as
    image_transport's compressed plugin writes it for a mono image (so its subscriber decodes it)."""
    import cv2
    ok, png = cv2.imencode('.png', np.ascontiguousarray(seg, dtype=np.uint8),
                           [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
    if not ok:
        raise ValueError('PNG encoding of the segmentation failed')
    msg = CompressedImage()
    msg.header = header
    msg.format = 'mono8; png compressed '
    msg.data = png.tobytes()
    return msg


def compressed_depth(header, depth: np.ndarray, depth_max: float, quantization: float) -> CompressedImage:
    """32FC1 metres in the compressed_depth plugin's layout (its subscriber decodes it)."""
    msg = CompressedImage()
    msg.header = header
    msg.format = COMPRESSED_DEPTH_FORMAT
    msg.data = encode_compressed_depth(depth, depth_max, quantization)
    return msg


def detections(header, dets, ids=None) -> Detection2DArray:
    """Detection2DArray; class_id is the detection class id as a string (see the detection
    LabelInfo), box centre and size in input-image pixels, id the track id (ids[k]) if given."""
    out = Detection2DArray()
    out.header = header
    for k, det in enumerate(dets):
        d = Detection2D()
        d.header = header
        d.id = str(ids[k]) if ids is not None else ''
        cx, cy = det.center
        w, h = det.size
        d.bbox.center.position.x, d.bbox.center.position.y = float(cx), float(cy)
        d.bbox.size_x, d.bbox.size_y = float(w), float(h)
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = str(det.class_id)
        hyp.hypothesis.score = float(det.score)
        # The image-plane pose: the box centre (no depth); covariance left zero (unknown).
        hyp.pose.pose.position.x, hyp.pose.pose.position.y = float(cx), float(cy)
        d.results.append(hyp)
        out.detections.append(d)
    return out


def label_info(header, names, threshold: float = 0.0) -> LabelInfo:
    """LabelInfo: class id (the index) -> name; threshold is the score threshold in force."""
    msg = LabelInfo()
    msg.header = header
    msg.class_map = [VisionClass(class_id=i, class_name=str(n)) for i, n in enumerate(names)]
    msg.threshold = float(threshold)
    return msg


def scaled_camera_info(info: CameraInfo, header, out_size) -> CameraInfo:
    """camera_info for outputs of out_size (h, w): intrinsics scaled from the input's size."""
    msg = copy.deepcopy(info)
    msg.header = header
    h, w = int(out_size[0]), int(out_size[1])
    if info.width and info.height and (w, h) != (info.width, info.height):
        sx, sy = w / info.width, h / info.height
        k = list(info.k)
        k[0], k[2], k[4], k[5] = k[0] * sx, k[2] * sx, k[4] * sy, k[5] * sy
        msg.k = k
        p = list(info.p)
        p[0], p[2], p[3], p[5], p[6] = p[0] * sx, p[2] * sx, p[3] * sx, p[5] * sy, p[6] * sy
        msg.p = p
        msg.roi.x_offset = int(round(info.roi.x_offset * sx))
        msg.roi.y_offset = int(round(info.roi.y_offset * sy))
        msg.roi.width = int(round(info.roi.width * sx))
        msg.roi.height = int(round(info.roi.height * sy))
    msg.width, msg.height = w, h
    return msg


def inference_stats(header, model_id, device, tasks, timings: dict, counters: dict) -> InferenceStats:
    """InferenceStats of one frame: stage timings (ms) and the node's counters so far."""
    msg = InferenceStats()
    msg.header = header
    msg.model_id, msg.device, msg.tasks_run = model_id, str(device), list(tasks)
    msg.queue_ms = float(timings.get('queue_ms', 0.0))
    msg.preprocess_ms = float(timings.get('preprocess_ms', 0.0))
    msg.inference_ms = float(timings.get('inference_ms', 0.0))
    msg.postprocess_ms = float(timings.get('postprocess_ms', 0.0))
    msg.total_ms = float(timings.get('total_ms', 0.0))
    msg.frames_processed = int(counters.get('processed', 0))
    msg.frames_dropped = int(counters.get('dropped', 0))
    msg.frames_rejected = int(counters.get('rejected', 0))
    msg.camera_info_rejected = int(counters.get('camera_info_rejected', 0))
    msg.flow_resets = int(counters.get('flow_resets', 0))
    return msg


def diagnostics(stamp, node_name: str, level: int, message: str, values: dict) -> DiagnosticArray:
    """One DiagnosticStatus (level 0 OK, 1 WARN, 2 ERROR) with the values as key-values."""
    arr = DiagnosticArray()
    arr.header.stamp = stamp
    status = DiagnosticStatus(level=bytes([level]), name=f'{node_name}: perception',
                              message=message, hardware_id=str(values.get('device', '')))
    status.values = [KeyValue(key=str(k), value=str(v)) for k, v in values.items()]
    arr.status = [status]
    return arr
