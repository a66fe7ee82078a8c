"""Metric depth from a flat road: a relative depth made metric by the camera's height over the road
(its mount height and pitch known): each road pixel's ray meets the road at a known depth, the
median ratio is the scale (or, for comparison, a RANSAC road plane). The same rays give a real
video's road pixels metric depth labels (`road-depth`), and the mount itself is found from the
standard lane width seen in the rectified frames (`mount`):

    python -m hydranet_ros.training.depth_scale mount FOLDER... [--lane-width 3.7]
    python -m hydranet_ros.training.depth_scale road-depth FOLDER... --camera-height H --camera-pitch DEG

FOLDER: pseudo-labelled dataset folders (pseudo-label's output) whose segmentation has `road`
and `lane_marking`, and camera.json with K.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from hydranet_ros import dataset_folder as folder_io


GROUND_FITS = ('rays', 'plane')
#: the width of a motorway lane, centre to centre of its markings (12 ft, US Interstate standard)
LANE_WIDTH_M = 3.7


def road_ray_depth(height_px: int, k, camera_height: float, pitch: float = 0.0) -> np.ndarray:
    """[rows] the depth (z, metres) at which each image row's ray meets a flat road `camera_height`
    below the camera, tilted by `pitch` (radians, positive looks down); inf above the horizon."""
    rows = (np.arange(height_px, dtype=np.float64) - float(k[5])) / float(k[4])
    # the camera's optical frame (y down, z forward): the road lies where up . X = -height, with
    # up = (0, -cos pitch, -sin pitch), so a ray of row v meets it at z = h / (y cos + sin)
    slope = rows * np.cos(pitch) + np.sin(pitch)
    with np.errstate(divide='ignore'):
        return np.where(slope > 0, camera_height / np.where(slope > 0, slope, 1.0), np.inf)


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
        ground = np.broadcast_to(road_ray_depth(depth_rel.shape[0], k, camera_height, pitch)[:, None],
                                 depth_rel.shape)
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


# --- the mount from the lane width ----------------------------------------------------------------

def lane_widths(marking: np.ndarray, cx: float, min_row: int) -> dict:
    """{row: pixels between the ego lane's two markings} of one frame: per row below min_row, the
    centres of the marking runs nearest the image centre on either side."""
    out = {}
    for v in range(min_row, marking.shape[0]):
        cols = np.flatnonzero(marking[v])
        if cols.size < 2:
            continue
        breaks = np.flatnonzero(np.diff(cols) > 1)
        starts, ends = np.r_[cols[0], cols[breaks + 1]], np.r_[cols[breaks], cols[-1]]
        centres = (starts + ends) / 2.0
        left, right = centres[centres < cx], centres[centres >= cx]
        if left.size and right.size:
            out[v] = float(right.min() - left.max())
    return out


def mount_from_lane_widths(widths: dict, k, lane_width_m: float = LANE_WIDTH_M) -> tuple[float, float]:
    """(camera height m, pitch rad) of a flat road whose lane is lane_width_m wide, from the lane's
    width in pixels per row (rectified, no roll). A row's width w gives the depth z = fx W / w there;
    flat ground says z (r cos + sin) = h with r = (v - cy) / fy: linear least squares in
    (cos / h, sin / h)."""
    rows = np.array(sorted(widths), np.float64)
    if rows.size < 5:
        raise ValueError(f'the lane was measured on {rows.size} rows; at least 5 are needed')
    z = float(k[0]) * lane_width_m / np.array([widths[v] for v in sorted(widths)], np.float64)
    r = (rows - float(k[5])) / float(k[4])
    (p, q), *_ = np.linalg.lstsq(np.stack([z * r, z], 1), np.ones_like(z), rcond=None)
    norm = float(np.hypot(p, q))
    if not norm > 0 or p <= 0:
        raise ValueError('the lane widths do not fit a flat road seen from above')
    return 1.0 / norm, float(np.arctan2(q, p))


def mount_of_folders(folders, lane_width_m: float = LANE_WIDTH_M, classes=('road', 'lane_marking')) -> dict:
    """The mount from every frame's lane: per row the median width over frames, then the fit."""
    per_row, frames = {}, 0
    k = None
    for folder in folders:
        folder = Path(folder)
        camera = folder_io.read_camera(folder)
        k = camera.get('k') or k
        names = camera.get('segmentation_classes') or []
        if classes[1] not in names or not camera.get('k'):
            raise ValueError(f'{folder}: camera.json needs K and segmentation_classes with {classes[1]!r}')
        mark = names.index(classes[1])
        for image in folder_io.sequence_images(folder)[0][1]:
            seg = folder_io.read_segmentation(folder, image.stem)
            if seg is None:
                continue
            frames += 1
            for v, w in lane_widths(seg == mark, float(camera['k'][2]), int(camera['k'][5]) + 8).items():
                per_row.setdefault(v, []).append(w)
    # rows seen in at least a fifth of the frames: a row seen rarely is a curve's or a wrong pair's
    widths = {v: float(np.median(ws)) for v, ws in per_row.items() if len(ws) >= max(3, frames // 5)}
    height, pitch = mount_from_lane_widths(widths, k, lane_width_m)
    return {'camera_height_m': height, 'pitch_deg': float(np.degrees(pitch)), 'rows': len(widths), 'frames': frames,
            'lane_width_m': lane_width_m}


# --- road pixels as metric depth labels -----------------------------------------------------------

def add_road_depth(folder, camera_height: float, pitch: float, max_distance: float = 30.0,
                   confidence: float = 0.5, road_classes=('road', 'lane_marking')) -> int:
    """Write depth labels where a frame's segmentation says road, from the flat-road rays (only
    within max_distance: near the horizon a pitch error moves the meeting point far), at the
    given confidence; depth a frame already has is kept. Returns the frames labelled."""
    folder = Path(folder)
    camera = folder_io.read_camera(folder)
    names, k = camera.get('segmentation_classes') or [], camera.get('k')
    if not k or not all(n in names for n in road_classes):
        raise ValueError(f'{folder}: camera.json needs K and segmentation_classes with {list(road_classes)}')
    ids = [names.index(n) for n in road_classes]
    writer = folder_io.FolderWriter(folder)
    done = 0
    for image in folder_io.sequence_images(folder)[0][1]:
        seg = folder_io.read_segmentation(folder, image.stem)
        if seg is None:
            continue
        ground = road_ray_depth(seg.shape[0], k, camera_height, pitch)[:, None]
        road = np.isin(seg, ids) & (ground <= max_distance)
        depth = folder_io.read_depth(folder, image.stem)
        have = np.zeros(seg.shape, bool) if depth is None else np.isfinite(depth)
        label = np.where(road & ~have, np.broadcast_to(ground, seg.shape), np.nan).astype(np.float32)
        conf = np.where(road & ~have, confidence, 0.0).astype(np.float32)
        if depth is not None:
            old_conf = folder_io.read_confidence(folder, image.stem, 'depth')
            label = np.where(have, depth, label).astype(np.float32)
            conf = np.where(have, 1.0 if old_conf is None else old_conf, conf).astype(np.float32)
        writer.depth(image.stem, label, conf)
        done += 1
    camera['road_depth'] = {'camera_height_m': camera_height, 'pitch_deg': float(np.degrees(pitch)),
                            'max_distance_m': max_distance, 'confidence': confidence}
    writer.camera(camera)
    return done


def main(argv=None) -> int:
    """The command line: `mount` prints (and records) the mount, `road-depth` writes the labels."""
    p = argparse.ArgumentParser(prog='python -m hydranet_ros.training.depth_scale', description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='command', required=True)
    m = sub.add_parser('mount', help='camera height and pitch from the lane width')
    m.add_argument('folders', nargs='+')
    m.add_argument('--lane-width', type=float, default=LANE_WIDTH_M, help='metres, marking centre to centre')
    r = sub.add_parser('road-depth', help='depth labels on road pixels from the mount')
    r.add_argument('folders', nargs='+')
    r.add_argument('--camera-height', type=float, required=True)
    r.add_argument('--camera-pitch', type=float, required=True, help='degrees, positive looks down')
    r.add_argument('--max-distance', type=float, default=30.0)
    r.add_argument('--confidence', type=float, default=0.5)
    args = p.parse_args(argv)
    try:
        if args.command == 'mount':
            found = mount_of_folders(args.folders, args.lane_width)
            print(f"camera height {found['camera_height_m']:.2f} m, pitch {found['pitch_deg']:.2f} deg "
                  f"(lane {found['lane_width_m']} m, {found['rows']} rows of {found['frames']} frames)")
        else:
            if not 0 < args.camera_height < 10 or not -60 < args.camera_pitch < 60:
                raise ValueError('--camera-height is metres (0-10), --camera-pitch degrees (-60 to 60)')
            for folder in args.folders:
                n = add_road_depth(folder, args.camera_height, float(np.radians(args.camera_pitch)),
                                   args.max_distance, args.confidence)
                print(f'{folder}: road depth on {n} frames')
    except (OSError, ValueError) as exc:
        print(f'depth_scale: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
