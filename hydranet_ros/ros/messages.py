"""Building the node's output messages from predictor results: each message type in one place."""
from __future__ import annotations

import copy

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CameraInfo
from vision_msgs.msg import (Detection2D, Detection2DArray, LabelInfo, ObjectHypothesisWithPose,
                             VisionClass)

from hydranet_ros.msg import InferenceStats, OpticalFlow
from hydranet_ros.image_codec import numpy_to_image


def stamp_from_ns(ns: int) -> Time:
    """A ROS Time from integer nanoseconds, exact."""
    return Time(sec=int(ns) // 1_000_000_000, nanosec=int(ns) % 1_000_000_000)


def stamp_to_ns(stamp) -> int:
    """Integer nanoseconds of a ROS Time, exact."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


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


def detections(header, dets) -> Detection2DArray:
    """Detection2DArray; class_id is the detection class id as a string (see the detection
    LabelInfo), box centre and size in input-image pixels."""
    out = Detection2DArray()
    out.header = header
    for det in dets:
        d = Detection2D()
        d.header = header
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
