"""The camera's own motion from odometry, and the optical flow a static scene has under it.

Odometry gives the pose of the robot's base (its child frame, e.g. base_link) in a fixed frame
(odom); the camera's mount gives the camera's pose on the base. Together they give the optical
frame's pose at any stamp the odometry covers (interpolated between messages), hence the camera's
motion between two frames. Two things follow from it:

- `ego_motion_flow`: the flow of every pixel whose scene point is static is fixed by its depth and
  the camera's motion (the rigid flow: back-project with depth, move into the previous camera,
  project). The label-free study (docs/MODEL.md) measured that this rigid flow on static pixels,
  with the flow head kept on pixels the segmentation calls movers, takes 24-43% off every
  network's flow error. Pixels without a usable depth keep the network's flow.
- velocity over the ground (`spatial.motion.MotionEstimator` takes the optical frame's pose).

Frames: the mount is the camera body's pose on the base in REP 103 axes (x forward, y left, z up),
as a URDF's camera_link; the optical frame (x right, y down, z forward) is that body turned by the
fixed REP 103 rotation. ROS-free: numpy in and out, metres, radians, nanoseconds.
"""
from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass

import numpy as np

from hydranet_ros.spatial.cloud import Intrinsics, label_mask

#: the optical frame's axes in the camera body's (columns: x right = -y, y down = -z, z forward = x)
OPTICAL_IN_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """3x3 rotation of fixed-axis roll, pitch, yaw (radians), as URDF and tf2 use: Rz Ry Rx."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def quaternion_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """3x3 rotation of a quaternion (x, y, z, w); ValueError unless it is finite with norm near 1."""
    q = np.array([x, y, z, w], np.float64)
    n = float(np.linalg.norm(q))
    if not np.isfinite(q).all() or abs(n - 1.0) > 0.01:
        raise ValueError(f'orientation must be a unit quaternion, got (x, y, z, w) = '
                         f'({", ".join(f"{v:g}" for v in q)}) (norm {n:.3g})')
    x, y, z, w = q / n
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def pose_matrix(position, quaternion) -> np.ndarray:
    """4x4 pose from a position (x, y, z) and a unit quaternion (x, y, z, w)."""
    p = np.asarray(position, np.float64)
    if p.shape != (3,) or not np.isfinite(p).all():
        raise ValueError(f'position must be 3 finite values, got ({", ".join(f"{v:g}" for v in np.ravel(p))})')
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = quaternion_matrix(*quaternion), p
    return out


def matrix_quaternion(r: np.ndarray) -> np.ndarray:
    """(x, y, z, w) of a 3x3 rotation (the largest-diagonal branch, so it is stable everywhere)."""
    m = r
    t = np.trace(m)
    if t > 0:
        s = 2.0 * np.sqrt(t + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
        q[i], q[j], q[k] = 0.25 * s, (m[j, i] + m[i, j]) / s, (m[k, i] + m[i, k]) / s
    return np.array(q)


def interpolate_pose(a: np.ndarray, b: np.ndarray, f: float) -> np.ndarray:
    """The pose a fraction f of the way from a to b: position linear, rotation by slerp."""
    qa, qb = matrix_quaternion(a[:3, :3]), matrix_quaternion(b[:3, :3])
    dot = float(qa @ qb)
    if dot < 0:                       # the shorter way round
        qb, dot = -qb, -dot
    if dot > 0.9995:
        q = qa + f * (qb - qa)
    else:
        theta = np.arccos(min(dot, 1.0))
        q = (np.sin((1 - f) * theta) * qa + np.sin(f * theta) * qb) / np.sin(theta)
    out = np.eye(4)
    out[:3, :3] = quaternion_matrix(*(q / np.linalg.norm(q)))
    out[:3, 3] = (1 - f) * a[:3, 3] + f * b[:3, 3]
    return out


@dataclass(frozen=True)
class Mount:
    """The camera body's pose on the base (m, radians; REP 103 axes, as a URDF camera_link)."""
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0

    def optical_in_base(self) -> np.ndarray:
        """4x4: optical-frame coordinates -> base coordinates."""
        out = np.eye(4)
        out[:3, :3] = rpy_matrix(self.roll, self.pitch, self.yaw) @ OPTICAL_IN_BODY
        out[:3, 3] = (self.x, self.y, self.z)
        return out


class PoseBuffer:
    """The base's recent poses by stamp; `at(stamp)` interpolates between the two around it, or
    takes the nearest within tolerance_s past either end. A stamp older than the last one (a bag
    played again, a clock reset) starts the buffer afresh."""

    def __init__(self, horizon_s: float = 10.0, tolerance_s: float = 0.05):
        self.horizon_ns, self.tolerance_ns = int(horizon_s * 1e9), int(tolerance_s * 1e9)
        self._stamps: list[int] = []
        self._poses: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._stamps)

    def clear(self):
        self._stamps.clear()
        self._poses.clear()

    def add(self, stamp_ns: int, pose: np.ndarray):
        if self._stamps and stamp_ns < self._stamps[-1]:
            self.clear()
        if self._stamps and stamp_ns == self._stamps[-1]:
            self._poses[-1] = np.asarray(pose, np.float64)
            return
        self._stamps.append(int(stamp_ns))
        self._poses.append(np.asarray(pose, np.float64))
        cut = bisect.bisect_left(self._stamps, stamp_ns - self.horizon_ns)
        if cut:
            del self._stamps[:cut], self._poses[:cut]

    def at(self, stamp_ns: int) -> np.ndarray | None:
        """The base's pose at stamp_ns, or None where the odometry does not cover it."""
        s = self._stamps
        if not s:
            return None
        i = bisect.bisect_left(s, stamp_ns)
        if i < len(s) and s[i] == stamp_ns:
            return self._poses[i]
        if i == 0:
            return self._poses[0] if s[0] - stamp_ns <= self.tolerance_ns else None
        if i == len(s):
            return self._poses[-1] if stamp_ns - s[-1] <= self.tolerance_ns else None
        return interpolate_pose(self._poses[i - 1], self._poses[i], (stamp_ns - s[i - 1]) / (s[i] - s[i - 1]))


def camera_motion(base_previous: np.ndarray, base_current: np.ndarray, mount: Mount) -> np.ndarray:
    """4x4 transform from the current optical frame to the previous one (what rigid flow needs)."""
    m = mount.optical_in_base()
    return np.linalg.inv(base_previous @ m) @ (base_current @ m)


@functools.lru_cache(maxsize=8)
def _rays(k: Intrinsics, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """u [1, W], v [H, 1] (float32) and the ray (u - cx) / fx [1, W], (v - cy) / fy [H, 1], cached
    per grid: a row and a column, broadcast where they meet a full plane."""
    u = np.arange(w, dtype=np.float32)[None, :]
    v = np.arange(h, dtype=np.float32)[:, None]
    return u, v, (u - np.float32(k.cx)) / np.float32(k.fx), (v - np.float32(k.cy)) / np.float32(k.fy)


def _rigid_uv(depth: np.ndarray, k: Intrinsics, current_to_previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """rigid_flow's two channels as contiguous [H, W] arrays. Written pass by pass into a few
    buffers (a fresh full-frame temporary per operation costs more than the arithmetic)."""
    h, w = depth.shape
    u, v, rx, ry = _rays(k, h, w)
    r, t = current_to_previous[:3, :3].astype(np.float32), current_to_previous[:3, 3].astype(np.float32)
    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):   # sky (inf) and holes (NaN): NaN out
        z = np.asarray(depth, np.float32)
        z = np.where(z > 0, z, np.float32(np.nan))
        zp, inv, fu, fv = (np.empty((h, w), np.float32) for _ in range(4))

        def moved(i, out):       # z * (R[i] @ ray) + t[i], ray = (rx, ry, 1)
            np.add(r[i, 0] * rx, r[i, 1] * ry, out=out)
            out += r[i, 2]
            out *= z
            out += t[i]
            return out
        # behind the previous camera, or no depth: NaN; an infinite depth (sky) gives inf * 0 = NaN below
        moved(2, zp)
        np.divide(np.float32(1.0), zp, out=inv)
        inv[~(zp > 1e-3)] = np.float32(np.nan)
        for i, f, focal, centre, pixel in ((0, fu, k.fx, k.cx, u), (1, fv, k.fy, k.cy, v)):
            moved(i, f)
            f *= np.float32(focal)
            f *= inv
            f += np.float32(centre)
            np.subtract(pixel, f, out=f)
    return fu, fv


def rigid_flow(depth: np.ndarray, k: Intrinsics, current_to_previous: np.ndarray) -> np.ndarray:
    """[H, W, 2] flow (previous -> current, pixels) a static scene has: each pixel back-projected
    with its depth, moved into the previous camera and projected there; NaN where the depth is
    not positive and finite or the point falls behind the previous camera."""
    return np.stack(_rigid_uv(depth, k, current_to_previous), axis=-1)


def ego_motion_flow(network_flow: np.ndarray, depth: np.ndarray, labels: np.ndarray | None, k: Intrinsics,
                    current_to_previous: np.ndarray, mover_ids=()) -> np.ndarray:
    """The rigid flow of depth and the camera's motion where the scene is static, the network's
    flow on pixels whose class is a mover (labels in mover_ids) and wherever the rigid flow is
    undefined. All on one grid: flow [H, W, 2], depth and labels [H, W], k for that grid."""
    if network_flow.shape[:2] != depth.shape or (labels is not None and labels.shape != depth.shape):
        raise ValueError(f'flow {network_flow.shape[:2]}, depth {depth.shape} and labels '
                         f'{None if labels is None else labels.shape} must share one grid')
    fu, fv = _rigid_uv(depth, k, current_to_previous)
    keep = np.isnan(fu)
    if labels is not None and len(mover_ids):
        keep |= label_mask(labels, mover_ids)
    # channel by channel on contiguous planes (masking the interleaved [H, W, 2] is several times slower)
    return np.stack([np.where(keep, network_flow[..., 0], fu), np.where(keep, network_flow[..., 1], fv)], axis=-1)
