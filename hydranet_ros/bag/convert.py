"""numpy <-> message objects of the rosbags typestore (no ROS needed).

The builders mirror hydranet_ros.ros.messages (which builds rclpy messages for the node), so a
bag written here holds exactly what the node would publish.
"""
from __future__ import annotations

import numpy as np

from hydranet_ros.bag.types import typestore

_ENC = {(np.dtype(np.uint8), 1): 'mono8', (np.dtype(np.uint8), 3): 'rgb8',
        (np.dtype(np.float32), 1): '32FC1', (np.dtype(np.float32), 2): '32FC2'}


def _t(name):
    return typestore().types[name]


def stamp(ns: int):
    """A builtin_interfaces/Time (rosbags class) from integer nanoseconds."""
    return _t('builtin_interfaces/msg/Time')(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def stamp_ns(time_msg) -> int:
    """Integer nanoseconds of a Time message."""
    return int(time_msg.sec) * 1_000_000_000 + int(time_msg.nanosec)


def header(ns: int, frame_id: str):
    """A std_msgs/Header (rosbags class) with this stamp and frame."""
    return _t('std_msgs/msg/Header')(stamp=stamp(ns), frame_id=frame_id)


def image(hdr, array: np.ndarray, encoding: str | None = None):
    """A sensor_msgs/Image (rosbags class) holding the array; the encoding follows its dtype and shape unless given."""
    array = np.ascontiguousarray(array)
    channels = 1 if array.ndim == 2 else array.shape[2]
    encoding = encoding or _ENC[(array.dtype, channels)]
    data = array.view(np.uint8).reshape(-1)
    return _t('sensor_msgs/msg/Image')(header=hdr, height=array.shape[0], width=array.shape[1], encoding=encoding,
                                       is_bigendian=0, step=array.shape[1] * channels * array.dtype.itemsize,
                                       data=data)


def camera_info(hdr, camera):
    """sensor_msgs/CameraInfo of a world PinholeCamera (no distortion)."""
    k = np.array(camera.k, np.float64)
    p = np.array([camera.fx, 0, camera.cx, 0, 0, camera.fy, camera.cy, 0, 0, 0, 1, 0], np.float64)
    roi = _t('sensor_msgs/msg/RegionOfInterest')(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return _t('sensor_msgs/msg/CameraInfo')(
        header=hdr, height=camera.height, width=camera.width, distortion_model='plumb_bob', d=np.zeros(5),
        k=k, r=np.eye(3).reshape(-1), p=p, binning_x=0, binning_y=0, roi=roi)


def optical_flow(hdr, previous_ns: int, flow: np.ndarray):
    """A hydranet_ros/OpticalFlow (rosbags class): 32FC2 flow from the frame at previous_ns to this one."""
    img = image(hdr, flow.astype(np.float32, copy=False), '32FC2')
    return _t('hydranet_ros/msg/OpticalFlow')(header=hdr, previous_stamp=stamp(previous_ns), flow=img,
                                              scale_x=1.0, scale_y=1.0)


def detections(hdr, boxes):
    """Detection2DArray from (x1, y1, x2, y2, class_id, score, id) tuples; class_id as a string."""
    t = typestore().types
    dets = []
    for x1, y1, x2, y2, class_id, score, ident in boxes:
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        point = t['geometry_msgs/msg/Point'](x=float(cx), y=float(cy), z=0.0)
        pose = t['geometry_msgs/msg/Pose'](position=point, orientation=t['geometry_msgs/msg/Quaternion'](
            x=0.0, y=0.0, z=0.0, w=1.0))
        hyp = t['vision_msgs/msg/ObjectHypothesisWithPose'](
            hypothesis=t['vision_msgs/msg/ObjectHypothesis'](class_id=str(class_id), score=float(score)),
            pose=t['geometry_msgs/msg/PoseWithCovariance'](pose=pose, covariance=np.zeros(36)))
        bbox = t['vision_msgs/msg/BoundingBox2D'](
            center=t['vision_msgs/msg/Pose2D'](position=t['vision_msgs/msg/Point2D'](x=float(cx), y=float(cy)),
                                               theta=0.0),
            size_x=float(x2 - x1), size_y=float(y2 - y1))
        dets.append(t['vision_msgs/msg/Detection2D'](header=hdr, results=[hyp], bbox=bbox, id=str(ident)))
    return t['vision_msgs/msg/Detection2DArray'](header=hdr, detections=dets)


def label_info(hdr, names, threshold: float = 0.0):
    """A vision_msgs/LabelInfo (rosbags class): class id -> name, in order."""
    t = typestore().types
    return t['vision_msgs/msg/LabelInfo'](
        header=hdr, class_map=[t['vision_msgs/msg/VisionClass'](class_id=i, class_name=str(n))
                               for i, n in enumerate(names)], threshold=float(threshold))


def detection_boxes(msg):
    """Detection2DArray -> ([N, 4] x1y1x2y2, [N] scores, [N] int class ids)."""
    boxes, scores, classes = [], [], []
    for d in msg.detections:
        cx, cy, w, h = d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y
        boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
        hyp = max(d.results, key=lambda r: r.hypothesis.score).hypothesis if d.results else None
        scores.append(hyp.score if hyp else 0.0)
        classes.append(int(hyp.class_id) if hyp and hyp.class_id.lstrip('-').isdigit() else -1)
    return (np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(scores, np.float64),
            np.asarray(classes, np.int64))


# --- poses: nav_msgs/Odometry and tf2_msgs/TFMessage ---------------------------------------------

def quaternion_from_matrix(r: np.ndarray) -> np.ndarray:
    """(x, y, z, w), w >= 0, of a 3x3 rotation matrix."""
    r = np.asarray(r, np.float64)
    w = np.sqrt(max(0.0, 1.0 + r[0, 0] + r[1, 1] + r[2, 2])) / 2
    x = np.sqrt(max(0.0, 1.0 + r[0, 0] - r[1, 1] - r[2, 2])) / 2
    y = np.sqrt(max(0.0, 1.0 - r[0, 0] + r[1, 1] - r[2, 2])) / 2
    z = np.sqrt(max(0.0, 1.0 - r[0, 0] - r[1, 1] + r[2, 2])) / 2
    x, y, z = np.copysign(x, r[2, 1] - r[1, 2]), np.copysign(y, r[0, 2] - r[2, 0]), np.copysign(z, r[1, 0] - r[0, 1])
    q = np.array([x, y, z, w])
    return q / np.linalg.norm(q)


def matrix_from_pose(position, quaternion) -> np.ndarray:
    """4x4 transform from a position (x, y, z) and a quaternion (x, y, z, w)."""
    x, y, z, w = np.asarray(quaternion, np.float64) / max(np.linalg.norm(quaternion), 1e-12)
    out = np.eye(4)
    out[:3, :3] = [[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                   [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                   [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]]
    out[:3, 3] = position
    return out


def _rotation_msg(r: np.ndarray):
    q = quaternion_from_matrix(r)
    return _t('geometry_msgs/msg/Quaternion')(x=q[0], y=q[1], z=q[2], w=q[3])


def odometry(hdr, child_frame_id: str, transform: np.ndarray):
    """nav_msgs/Odometry: child_frame_id's pose (4x4, child -> header frame) with unknown covariance
    and twist (-1 on the diagonals, as REP 145 suggests for unknown)."""
    x, y, z = (float(v) for v in transform[:3, 3])
    pose = _t('geometry_msgs/msg/Pose')(position=_t('geometry_msgs/msg/Point')(x=x, y=y, z=z),
                                        orientation=_rotation_msg(transform[:3, :3]))
    unknown = -np.eye(6).reshape(-1)
    zero = _t('geometry_msgs/msg/Vector3')(x=0.0, y=0.0, z=0.0)
    return _t('nav_msgs/msg/Odometry')(
        header=hdr, child_frame_id=child_frame_id,
        pose=_t('geometry_msgs/msg/PoseWithCovariance')(pose=pose, covariance=unknown.copy()),
        twist=_t('geometry_msgs/msg/TwistWithCovariance')(
            twist=_t('geometry_msgs/msg/Twist')(linear=zero, angular=zero), covariance=unknown.copy()))


def transforms(hdr, child_frames_and_transforms):
    """tf2_msgs/TFMessage of (child_frame_id, 4x4 child -> header frame) pairs."""
    out = []
    for child, t in child_frames_and_transforms:
        x, y, z = (float(v) for v in t[:3, 3])
        out.append(_t('geometry_msgs/msg/TransformStamped')(
            header=hdr, child_frame_id=child,
            transform=_t('geometry_msgs/msg/Transform')(translation=_t('geometry_msgs/msg/Vector3')(x=x, y=y, z=z),
                                                        rotation=_rotation_msg(t[:3, :3]))))
    return _t('tf2_msgs/msg/TFMessage')(transforms=out)


def pose_of(msg) -> np.ndarray:
    """4x4 of an Odometry's pose or a TransformStamped's transform."""
    if hasattr(msg, 'transform'):
        t, r = msg.transform.translation, msg.transform.rotation
    else:
        t, r = msg.pose.pose.position, msg.pose.pose.orientation
    return matrix_from_pose((t.x, t.y, t.z), (r.x, r.y, r.z, r.w))
