"""Instance ids from the instance head's centre heatmap and offsets, and the segmentation.

Panoptic-DeepLab's grouping: the heatmap's peaks (local maxima over a window, above a threshold,
the top_k strongest) are the object centres; every pixel of a "thing" class (one that has
instances: car, pedestrian) goes to the centre nearest to where its offset points. Ids are 1..n
in order of peak strength, 0 where there is no instance. numpy and OpenCV, no torch. The default
threshold 0.5 and window 5 scored best on validation drives (experiments/instance_grouping.py,
docs/MODEL.md).
"""
from __future__ import annotations

import cv2
import numpy as np


def centre_peaks(heat: np.ndarray, threshold: float = 0.5, window: int = 5, top_k: int = 64) -> np.ndarray:
    """[N, 2] (x, y) cells of the heatmap's local maxima above threshold, strongest first."""
    h = np.ascontiguousarray(heat, np.float32)
    local_max = cv2.dilate(h, np.ones((window, window), np.uint8))
    ys, xs = np.nonzero((h >= local_max) & (h > threshold))
    order = np.argsort(-h[ys, xs], kind='stable')[:top_k]
    return np.stack([xs[order], ys[order]], axis=1).astype(np.float32)


def group_instances(heat: np.ndarray, offsets: np.ndarray, things: np.ndarray, stride: int = 4,
                    threshold: float = 0.5, window: int = 5, top_k: int = 64) -> np.ndarray:
    """uint16 [H, W] instance ids at the resolution of offsets and things.

    heat [h, w]: centre probability on the head's grid (cells of `stride` pixels); offsets
    [2, H, W]: (dx, dy) to the centre in pixels, at full resolution (the head's, upsampled);
    things [H, W] bool: pixels whose class has instances. Grouping at full resolution keeps two
    objects that share a cell apart."""
    ids = np.zeros(things.shape, np.uint16)
    peaks = centre_peaks(heat, threshold, window, top_k) * stride
    ys, xs = np.nonzero(things)
    if not len(peaks) or not len(ys):
        return ids
    tx, ty = xs + offsets[0, ys, xs], ys + offsets[1, ys, xs]        # where each pixel's offset points
    d2 = (tx[:, None] - peaks[None, :, 0]) ** 2 + (ty[:, None] - peaks[None, :, 1]) ** 2
    ids[ys, xs] = (np.argmin(d2, axis=1) + 1).astype(np.uint16)
    return ids


def upsample_offsets(offsets: np.ndarray, size_hw) -> np.ndarray:
    """[2, h, w] offsets of the head's grid -> [2, H, W] (bilinear; values stay in pixels)."""
    h, w = size_hw
    return np.stack([cv2.resize(np.ascontiguousarray(o, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
                     for o in offsets])


def instance_boxes(ids: np.ndarray) -> dict[int, tuple[int, int, int, int]]:
    """{id: (x1, y1, x2, y2)} pixel boxes (x2, y2 exclusive) of each instance of an id image: one
    pass over the instance pixels (which rows and columns each id occupies), not one per id."""
    ys, xs = np.nonzero(ids)
    if not len(ys):
        return {}
    values = ids[ys, xs].astype(np.int64)
    labels = None
    if values.max() >= 4096:                       # large ids (track ids): number them 0..n-1 first
        labels, values = np.unique(values, return_inverse=True)
    n = int(values.max()) + 1
    h, w = ids.shape
    rows, cols = np.zeros((n, h), bool), np.zeros((n, w), bool)
    rows[values, ys] = True
    cols[values, xs] = True
    y1, y2 = rows.argmax(1), h - rows[:, ::-1].argmax(1)
    x1, x2 = cols.argmax(1), w - cols[:, ::-1].argmax(1)
    return {int(labels[i]) if labels is not None else int(i): (int(x1[i]), int(y1[i]), int(x2[i]), int(y2[i]))
            for i in np.nonzero(rows.any(1))[0]}
