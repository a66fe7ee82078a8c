"""A relative depth made metric by the camera's height over a flat road (its mount height and
pitch known): each road pixel's ray meets the road at a known depth, the median ratio is the
scale (or, for comparison, a RANSAC road plane)."""
from __future__ import annotations


import numpy as np


GROUND_FITS = ('rays', 'plane')


def scale_from_camera_height(depth_rel: np.ndarray, road: np.ndarray, k, camera_height: float,
                             pitch: float = 0.0, method: str = 'rays', max_distance: float = 40.0,
                             min_points: int = 200, seed: int = 0) -> float | None:
    """The factor that makes relative depth metric from the camera's known height above a flat
    road; None when too little road is seen. Two ways (docs/MODEL.md measures both):

    - 'rays' (default): every road pixel's ray meets a flat road, at the camera's height below it
      and tilted by the mount's pitch (radians, positive looks down: a positive pitch about
      base_link's y axis, REP 103), at a known depth; the factor is the median over road pixels of
      that depth over the given one. Only rays that meet the road within max_distance metres count
      (near the horizon a small pitch error moves the meeting point far). Robust to depth whose
      shape is distorted, as a network's own depth is: only the ratio's median matters.
    - 'plane': the road's pixels back-projected with the given depth are fitted by a plane (RANSAC)
      whose distance from the camera must be the height. Needs no pitch, but a depth whose shape
      is off (near road too far, far road too near) tilts the plane, and the factor with it."""
    if method not in GROUND_FITS:
        raise ValueError(f'unknown ground fit {method!r} (one of {", ".join(GROUND_FITS)})')
    valid = road & np.isfinite(depth_rel) & (depth_rel > 0)
    fx, cx, fy, cy = float(k[0]), float(k[2]), float(k[4]), float(k[5])
    if method == 'rays':
        rows = (np.arange(depth_rel.shape[0], dtype=np.float64) - cy) / fy
        # the camera's optical frame (y down, z forward): the road lies where up . X = -height, with
        # up = (0, -cos pitch, -sin pitch), so a ray of row v meets it at z = h / (y cos + sin)
        slope = rows * np.cos(pitch) + np.sin(pitch)
        with np.errstate(divide='ignore'):
            ground = np.where(slope > 0, camera_height / np.where(slope > 0, slope, 1.0), np.inf)
        ground = np.broadcast_to(ground[:, None], depth_rel.shape)
        ys, xs = np.nonzero(valid & (ground <= max_distance))
        if xs.size < min_points:
            return None
        return float(np.median(ground[ys, xs] / depth_rel[ys, xs].astype(np.float64)))
    ys, xs = np.nonzero(valid)
    if xs.size < min_points:
        return None
    z = depth_rel[ys, xs].astype(np.float64)
    pts = np.stack([(xs - cx) / fx * z, (ys - cy) / fy * z, z], axis=1)
    rng = np.random.default_rng(seed)
    best, best_inliers = None, -1
    tol = 0.02 * np.median(z)
    for _ in range(60):
        a, b, c = pts[rng.choice(len(pts), 3, replace=False)]
        n = np.cross(b - a, c - a)
        if np.linalg.norm(n) < 1e-12:
            continue
        n /= np.linalg.norm(n)
        inliers = np.abs((pts - a) @ n) < tol
        if inliers.sum() > best_inliers:
            best, best_inliers = inliers, int(inliers.sum())
    if best is None or best_inliers < min_points // 2:
        return None
    p = pts[best]
    centre = p.mean(axis=0)
    normal = np.linalg.svd(p - centre, full_matrices=False)[2][-1]
    distance = abs(float(centre @ normal))
    if distance <= 1e-9:
        return None
    return float(camera_height / distance)
