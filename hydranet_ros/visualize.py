"""Colour images for people: segmentation overlay, depth colour map, flow wheel, boxes.

ROS-free (numpy + OpenCV); the node's debug topics and the evaluator's plots use these.
"""
from __future__ import annotations

import cv2
import numpy as np


def palette(colors) -> np.ndarray:
    """[256, 3] uint8 RGB lookup table for class ids 0-255 from [[r, g, b], ...]; ids without a
    colour get grey (a uint8 class map can index it without bounds checks)."""
    lut = np.full((256, 3), 128, np.uint8)
    for i, c in enumerate(colors[:256]):
        lut[i] = np.clip(np.asarray(c, dtype=np.int64), 0, 255)
    return lut


def segmentation_overlay(seg: np.ndarray, colors, image: np.ndarray | None = None, alpha: float = 0.5) -> np.ndarray:
    """Class ids [H, W] -> RGB, blended over the image when given (resized to seg's size)."""
    colored = palette(colors)[seg]
    if image is None:
        return colored
    if image.shape[:2] != seg.shape:
        image = cv2.resize(image, (seg.shape[1], seg.shape[0]), interpolation=cv2.INTER_LINEAR)
    return cv2.addWeighted(np.ascontiguousarray(image), 1 - alpha, colored, alpha, 0)


def instance_overlay(ids: np.ndarray, image: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Each instance id its own colour (hues spread by the golden ratio, so neighbouring ids
    differ) over the image; 0 (no instance) shows the image darkened."""
    import cv2
    ids = np.asarray(ids)
    hue = ((ids.astype(np.float64) * 0.618034) % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hue, np.full_like(hue, 220), np.full_like(hue, 255)], axis=-1)
    colour = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    base = (np.asarray(image, np.float32) * 0.5)
    on = ids > 0
    out = base.copy()
    out[on] = (1 - alpha) * np.asarray(image, np.float32)[on] + alpha * colour[on]
    return out.clip(0, 255).astype(np.uint8)


def depth_colormap(depth: np.ndarray, d_min: float | None = None, d_max: float | None = None) -> np.ndarray:
    """Metres [H, W] -> RGB (near warm, far cool, log scale); non-finite pixels black."""
    finite = np.isfinite(depth)
    out = np.zeros((*depth.shape, 3), np.uint8)
    if not finite.any():
        return out
    vals = depth[finite]
    lo = d_min if d_min else max(float(vals.min()), 1e-3)
    hi = d_max if d_max else max(float(vals.max()), lo * 1.001)
    norm = (np.log(np.clip(depth, lo, hi)) - np.log(lo)) / max(np.log(hi) - np.log(lo), 1e-6)
    gray = (255 * (1 - np.nan_to_num(norm, nan=0.0))).astype(np.uint8)
    colored = cv2.cvtColor(cv2.applyColorMap(gray, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    out[finite] = colored[finite]
    return out


def flow_to_color(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """[H, W, 2] flow -> RGB colour wheel: hue = direction, saturation = magnitude."""
    u, v = flow[..., 0], flow[..., 1]
    mag, ang = cv2.cartToPolar(np.nan_to_num(u).astype(np.float32), np.nan_to_num(v).astype(np.float32))
    top = max_magnitude or max(float(np.percentile(mag, 99)), 1e-6)
    hsv = np.zeros((*flow.shape[:2], 3), np.uint8)
    hsv[..., 0] = (ang * 90 / np.pi).astype(np.uint8)          # OpenCV hue is 0..179
    hsv[..., 1] = np.clip(mag / top * 255, 0, 255).astype(np.uint8)
    hsv[..., 2] = 255
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def draw_detections(image: np.ndarray, detections, colors=None, ids=None) -> np.ndarray:
    """Boxes with 'name score' labels (and '#id' with track ids) drawn on a copy of the RGB image."""
    out = np.ascontiguousarray(image).copy()
    for k, det in enumerate(detections):
        color = tuple(int(c) for c in (colors[det.class_id] if colors else (255, 64, 0)))
        p1, p2 = (int(round(det.x1)), int(round(det.y1))), (int(round(det.x2)), int(round(det.y2)))
        cv2.rectangle(out, p1, p2, color, 2)
        label = f'{det.class_name} {det.score:.2f}' + (f' #{ids[k]}' if ids is not None else '')
        cv2.putText(out, label, (p1[0], max(p1[1] - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1,
                    cv2.LINE_AA)
    return out


def birds_eye(xyz: np.ndarray, rgb: np.ndarray | None, boxes, size_hw, x_range=(-20.0, 20.0),
              z_range=(0.0, 60.0)) -> np.ndarray:
    """A top view of a camera-frame point cloud (x right, z forward; the camera at the bottom
    centre) with 3D boxes as rectangles: boxes are (center, size, color, label) tuples."""
    h, w = int(size_hw[0]), int(size_hw[1])
    out = np.full((h, w, 3), 24, np.uint8)
    def to_px(x, z):
        u = (np.asarray(x) - x_range[0]) / (x_range[1] - x_range[0]) * (w - 1)
        v = (1 - (np.asarray(z) - z_range[0]) / (z_range[1] - z_range[0])) * (h - 1)
        return u, v
    for z in np.arange(10, z_range[1], 10):        # range rings every 10 m
        _, v = to_px(0, z)
        cv2.line(out, (0, int(v)), (w - 1, int(v)), (60, 60, 60), 1)
        cv2.putText(out, f'{z:.0f} m', (2, int(v) - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (120, 120, 120), 1)
    if len(xyz):
        u, v = to_px(xyz[:, 0], xyz[:, 2])
        keep = (u >= 0) & (u < w) & (v >= 0) & (v < h)
        colors = rgb[keep] if rgb is not None else np.full((int(keep.sum()), 3), 200, np.uint8)
        out[v[keep].astype(int), u[keep].astype(int)] = colors
    for center, box_size, color, label in boxes:
        (u0, u1), (v1, v0) = (to_px([center[0] - box_size[0] / 2, center[0] + box_size[0] / 2],
                                    [center[2] - box_size[2] / 2, center[2] + box_size[2] / 2]))
        p1, p2 = (int(u0), int(v0)), (int(max(u1, u0 + 2)), int(max(v1, v0 + 2)))
        cv2.rectangle(out, p1, p2, tuple(int(c) for c in color), 2)
        cv2.putText(out, label, (p1[0], max(p1[1] - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    tuple(int(c) for c in color), 1, cv2.LINE_AA)
    cam_u, cam_v = to_px(0, 0)
    cv2.circle(out, (int(cam_u), int(cam_v) - 3), 4, (255, 255, 255), -1)
    return out
