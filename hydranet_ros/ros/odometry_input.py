"""`input/odom` (nav_msgs/Odometry, optional) and the camera's mount: the camera's pose over time,
for the ego-motion flow (`flow.mode: ego_motion`) and velocities over the ground
(`detections_3d/motion`). The arithmetic is in hydranet_ros.spatial.ego_motion (no ROS).

The mount (the image frame's pose in the odometry's child frame) comes from tf where tf2_ros is
installed and `mount.from_tf` is set, else from the `mount.*` parameters (the PyPI wheels this
package is tested on have no tf2_ros).
"""
from __future__ import annotations

import threading

import numpy as np
from nav_msgs.msg import Odometry
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from hydranet_ros import topics
from hydranet_ros.ros import messages
from hydranet_ros.spatial.cloud import Intrinsics
from hydranet_ros.spatial.ego_motion import Mount, PoseBuffer, ego_motion_flow, pose_matrix

#: a best-effort subscription matches reliable and best-effort publishers alike
ODOM_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)


def mount_from_params(params) -> Mount:
    """The camera's mount as the mount.* parameters give it."""
    return Mount(params.mount_x, params.mount_y, params.mount_z, params.mount_roll, params.mount_pitch,
                 params.mount_yaw)


def odometry_pose(msg) -> np.ndarray:
    """4x4 pose of an Odometry message's child frame in its header frame (ValueError if unusable)."""
    p, q = msg.pose.pose.position, msg.pose.pose.orientation
    return pose_matrix((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))


class OdometryInput:
    """The base's poses from input/odom; camera_pose(stamp, frame) is the optical frame's pose."""

    def __init__(self, node, get_params, reject):
        self._node, self._get_params, self._reject = node, get_params, reject
        self._lock = threading.Lock()
        self._buffer = PoseBuffer(tolerance_s=get_params().odom_tolerance_s)
        self.child_frame = ''
        self.received = 0
        self._tf, self._tf_listener, self._tf_said = None, None, set()
        if get_params().mount_from_tf:
            try:
                import tf2_ros
                self._tf = tf2_ros.Buffer()
                self._tf_listener = tf2_ros.TransformListener(self._tf, node)
            except ImportError:
                node.get_logger().info('tf2_ros is not installed: the camera mount comes from the mount.* parameters')
        self._sub = node.create_subscription(Odometry, topics.INPUT_ODOM, self._on_odom, ODOM_QOS)

    def _on_odom(self, msg):
        try:
            pose = odometry_pose(msg)
        except ValueError as exc:
            self._reject('odom_rejected', topics.INPUT_ODOM, exc)
            return
        stamp, params = messages.stamp_to_ns(msg.header.stamp), self._get_params()
        if params is None:          # a message still in flight while the node cleans up
            return
        with self._lock:
            self._buffer.tolerance_ns = int(params.odom_tolerance_s * 1e9)
            self._buffer.add(stamp, pose)
            self.child_frame = msg.child_frame_id
            self.received += 1

    @property
    def present(self) -> bool:
        with self._lock:
            return len(self._buffer) > 0

    def optical_in_base(self, frame_id: str) -> np.ndarray:
        """4x4: the image frame -> the odometry's child frame (tf, else the mount parameters)."""
        if self._tf is not None and frame_id and self.child_frame:
            try:
                from rclpy.time import Time
                t = self._tf.lookup_transform(self.child_frame, frame_id, Time()).transform
                return pose_matrix((t.translation.x, t.translation.y, t.translation.z),
                                   (t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w))
            except Exception as exc:          # tf2's lookup errors: no transform (yet); say once per frame
                if frame_id not in self._tf_said:
                    self._tf_said.add(frame_id)
                    self._node.get_logger().warning(f'no tf from {self.child_frame} to {frame_id} ({exc}); '
                                                    'the mount.* parameters stand in')
        return mount_from_params(self._get_params()).optical_in_base()

    def camera_pose(self, stamp_ns: int, frame_id: str) -> np.ndarray | None:
        """The image frame's pose in the odometry frame at stamp_ns, or None where odometry has none."""
        with self._lock:
            base = self._buffer.at(stamp_ns)
        return None if base is None else base @ self.optical_in_base(frame_id)

    def ego_motion_flow(self, result, info, frame_id: str, mover_ids) -> tuple[np.ndarray | None, str]:
        """(the ego-motion flow of result, '') or (None, why the network's flow stays)."""
        if result.flow is None or result.flow_previous_stamp_ns is None:
            return None, 'no flow this frame'
        now = self.camera_pose(result.stamp_ns, frame_id)
        before = self.camera_pose(result.flow_previous_stamp_ns, frame_id)
        if now is None or before is None:
            return None, 'no odometry at both frames\' stamps'
        if result.depth is None:
            return None, 'depth is not enabled'
        if info is None:
            return None, 'no camera_info (the rigid flow needs the intrinsics)'
        h, w = result.flow.shape[:2]
        if result.depth.shape != (h, w):
            return None, f'depth {result.depth.shape} and flow {(h, w)} grids differ'
        k = Intrinsics.from_camera_info(info.k, info.p, h, w)
        labels = result.segmentation
        if mover_ids and (labels is None or labels.shape != (h, w)):
            return None, 'no segmentation on the flow grid (it tells movers from the static scene)'
        return ego_motion_flow(result.flow, result.depth, labels, k, np.linalg.inv(before) @ now, mover_ids), ''

    def describe(self) -> str:
        with self._lock:
            n, child = self.received, self.child_frame
        if not n:
            return 'none received'
        mount = 'tf' if self._tf is not None else 'mount.* parameters'
        return f'{n} messages, base {child or "(no child_frame_id)"}, mount from {mount}'

    def close(self):
        self._node.destroy_subscription(self._sub)
        self._tf_listener = None
        self._tf = None
