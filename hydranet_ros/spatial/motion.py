"""How fast tracked objects approach: velocity relative to the camera and time to contact.

Per track id, the near-face centre of its 3D box (detections_3d) over the last `window_s`
seconds; the velocity is the least-squares slope of that history (robust to the frame-to-frame
jitter of monocular depth that a two-frame difference would pass straight on). A track needs
`min_samples` positions spanning at least `min_span_s` before its velocity counts. Closing speed
is how fast the range shrinks, -d|p|/dt = -(p . v) / |p|; time to contact is range / closing
speed while approaching, +Inf otherwise.

With the camera's motion between frames (odometry and the camera's mount), past positions are
first carried into the current camera frame, so the same slope is the object's own velocity over
the ground. ROS-free: numpy in, dataclasses out; optical frame, metres, seconds.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ObjectMotion:
    """One tracked object at one frame (units: m, m/s, s; optical frame of that frame)."""
    id: str
    position: np.ndarray                 # near-face centre
    range_m: float
    velocity: np.ndarray                 # relative to the camera; zeros when not valid
    velocity_valid: bool
    closing_speed: float                 # > 0 approaching
    time_to_contact: float               # +inf when not approaching or not valid
    velocity_over_ground: np.ndarray     # zeros when not valid
    over_ground_valid: bool
    velocity_from_flow: np.ndarray = field(default_factory=lambda: np.zeros(3))   # flow_velocity(); zeros if not
    flow_velocity_valid: bool = False

    def use_flow_velocity(self, v: np.ndarray):
        """Take the frame pair's velocity (flow_velocity): closing speed and time to contact follow
        from it, as it is the more accurate (docs/MODEL.md); velocity stays the track's slope."""
        self.velocity_from_flow, self.flow_velocity_valid = np.asarray(v, np.float64), True
        self.closing_speed, self.time_to_contact = closing(self.position, self.velocity_from_flow)


def closing(position: np.ndarray, velocity: np.ndarray) -> tuple[float, float]:
    """(closing speed m/s, time to contact s) of an object at position moving at velocity."""
    rng = float(np.linalg.norm(position))
    if rng <= 0:
        return 0.0, math.inf
    speed = -float(position @ velocity) / rng
    return speed, (rng / speed if speed > 1e-6 else math.inf)


def _slope(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Least-squares velocity [3] of positions p [N, 3] at times t [N] (s)."""
    t = t - t.mean()
    return (t[:, None] * (p - p.mean(axis=0))).sum(axis=0) / float((t ** 2).sum())


class MotionEstimator:
    """update(stamp_ns, {id: near-face position}, camera motion) -> [ObjectMotion] per id."""

    def __init__(self, window_s: float = 0.6, min_samples: int = 3, min_span_s: float = 0.15,
                 max_age_s: float = 1.0):
        self.window_s, self.min_samples, self.min_span_s, self.max_age_s = window_s, min_samples, min_span_s, max_age_s
        self._tracks: dict[str, deque] = {}      # id -> (stamp s, position in that frame's camera frame)
        self._poses: deque = deque()             # (stamp s, camera pose 4x4 in a fixed frame) with odometry

    def reset(self):
        self._tracks.clear()
        self._poses.clear()

    def update(self, stamp_ns: int, positions: dict, camera_pose: np.ndarray | None = None) -> list[ObjectMotion]:
        """positions: {track id: [3] near-face centre (m, optical frame)}. camera_pose: the optical
        frame's pose at this stamp in a fixed (odometry) frame, 4x4, or None without odometry."""
        now = stamp_ns * 1e-9
        for tid in [k for k, h in self._tracks.items() if now - h[-1][0] > self.max_age_s or now < h[-1][0]]:
            del self._tracks[tid]
        if camera_pose is not None:
            self._poses.append((now, np.asarray(camera_pose, np.float64)))
            while self._poses and now - self._poses[0][0] > self.window_s + self.max_age_s:
                self._poses.popleft()
        else:
            self._poses.clear()
        poses = dict(self._poses)
        out = []
        for tid, position in positions.items():
            p = np.asarray(position, np.float64)
            history = self._tracks.setdefault(str(tid), deque())
            history.append((now, p))
            while history and now - history[0][0] > self.window_s:
                history.popleft()
            out.append(self._motion(str(tid), history, p, poses, camera_pose))
        return out

    def _motion(self, tid, history, p, poses, camera_pose) -> ObjectMotion:
        zero = np.zeros(3)
        t = np.array([h[0] for h in history])
        enough = len(history) >= self.min_samples and t[-1] - t[0] >= self.min_span_s
        velocity, valid = (_slope(t, np.stack([h[1] for h in history])), True) if enough else (zero, False)
        speed, ttc = closing(p, velocity) if valid else (0.0, math.inf)
        ground, ground_valid = zero, False
        if enough and camera_pose is not None and all(s in poses for s in t):
            # past positions carried into the current camera frame: what moves there moves over the ground
            to_now = np.linalg.inv(camera_pose)
            carried = [(to_now @ poses[s] @ np.append(q, 1.0))[:3] for s, q in history]
            ground, ground_valid = _slope(t, np.stack(carried)), True
        return ObjectMotion(tid, p, float(np.linalg.norm(p)), velocity, valid, speed, ttc, ground, ground_valid)


def near_face_centre(center, size) -> np.ndarray:
    """A 3D box's visible near face centre: where the object begins along the optical axis."""
    c = np.asarray(center, np.float64)
    return np.array([c[0], c[1], c[2] - float(size[2]) / 2])


def flow_velocity(box, depth: np.ndarray, flow: np.ndarray, k, dt: float, labels: np.ndarray | None = None,
                  wanted=(), min_points: int = 10, keep_fraction: float = 0.8,
                  max_points: int = 5000) -> np.ndarray | None:
    """An object's velocity relative to the camera (m/s, optical frame) from one frame pair: this
    frame's depth and the flow (previous -> this) over its pixels (those of its class inside box,
    x1 y1 x2 y2 on the depth grid). Each pixel's point P = (X, Y, Z) now, moved back by the object's
    displacement D = V dt, must project where the flow says the pixel was, (u', v'):
    fx Dx - (u' - cx) Dz = fx X - (u' - cx) Z, and alike in y: linear in D, solved by least squares
    over the pixels, once more on the keep_fraction that fit best (pixels of the background a mask
    let in). Depth's error enters as a scale (10% too far: a 10% larger velocity), never as the
    difference of two noisy depths. None with fewer than min_points pixels that have depth and
    flow."""
    h, w = depth.shape
    x1, y1 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x2, y2 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
    if x2 <= x1 or y2 <= y1 or dt <= 0:
        return None
    z = depth[y1:y2, x1:x2]
    keep = np.isfinite(z) & (z > 0) & np.isfinite(flow[y1:y2, x1:x2]).all(axis=-1)
    if labels is not None and len(wanted):
        keep &= np.isin(labels[y1:y2, x1:x2], wanted)
    rr, cc = np.nonzero(keep)
    if rr.size < min_points:
        return None
    if rr.size > max_points:               # a near object: an even subsample says as much
        step = -(-rr.size // max_points)
        rr, cc = rr[::step], cc[::step]
    zz = z[rr, cc].astype(np.float64)
    u, v = (cc + x1).astype(np.float64), (rr + y1).astype(np.float64)
    f = flow[rr + y1, cc + x1].astype(np.float64)
    du, dv = u - f[:, 0] - k.cx, v - f[:, 1] - k.cy            # where each pixel was, about the centre
    x, y = (u - k.cx) * zz / k.fx, (v - k.cy) * zz / k.fy
    bx, by = k.fx * x - du * zz, k.fy * y - dv * zz           # the two equations' right-hand sides

    def solve(sel):
        # normal equations of rows [fx, 0, -du] = bx and [0, fy, -dv] = by (3 x 3, no 2n x 3 matrix)
        u_, v_, x_, y_ = du[sel], dv[sel], bx[sel], by[sel]
        m = len(u_)
        ata = np.array([[m * k.fx ** 2, 0.0, -k.fx * u_.sum()], [0.0, m * k.fy ** 2, -k.fy * v_.sum()],
                        [-k.fx * u_.sum(), -k.fy * v_.sum(), (u_ * u_).sum() + (v_ * v_).sum()]])
        atb = np.array([k.fx * x_.sum(), k.fy * y_.sum(), -(u_ * x_).sum() - (v_ * y_).sum()])
        return np.linalg.solve(ata, atb)
    try:
        d = solve(slice(None))
        residual = np.maximum(np.abs(k.fx * d[0] - du * d[2] - bx), np.abs(k.fy * d[1] - dv * d[2] - by))
        kth = min(len(zz) - 1, max(min_points, int(keep_fraction * len(zz))) - 1)
        d = solve(residual <= np.partition(residual, kth)[kth])       # the best-fitting share, O(n)
    except np.linalg.LinAlgError:          # all pixels on one ray: no translation to solve for
        return None
    return d / dt
