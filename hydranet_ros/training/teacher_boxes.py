"""Box teachers as they come: a raw YOLOX head decoded, non-maximum suppression per class, and
tiled inference whose boxes are merged across the tiles' seams.

YOLOX (Ge et al. 2021, the published ONNX export without decoding): one row per grid cell of the
strides 8, 16 and 32 in turn, row-major within each, holding (x, y, log w, log h, objectness,
class probabilities...); a box's centre is (x + column, y + row) * stride, its size exp(.) * stride,
its score objectness x class probability (both already sigmoids in the export).

Tiles: a small, far object fills more of a tile's network input than of the whole frame's. The
frame is cut into overlapping tiles, each run on its own (and the whole frame too, for the large
objects a tile cuts), and the boxes come back into frame pixels. An object cut by a tile's inner
edge (a seam) yields a partial box in that tile; a partial box and any box of the same class it
overlaps (intersection over the smaller box) are one object: merged into their union. Then boxes
of one class overlapping by IoU are suppressed as usual, the best scored kept. ROS-free.
"""
from __future__ import annotations

import cv2
import numpy as np

YOLOX_STRIDES = (8, 16, 32)
#: a box edge this close (pixels) to a tile's inner edge was cut there
SEAM_PX = 2.0
#: a cut box and another of its class overlapping this much of the smaller one are one object
SEAM_OVERLAP = 0.3


def decode_yolox(raw: np.ndarray, input_hw, strides=YOLOX_STRIDES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """raw [1, N, 5 + C] or [N, 5 + C] -> (boxes [N, 4] x1 y1 x2 y2 in input pixels, scores [N], classes [N])."""
    raw = np.asarray(raw, np.float32)
    raw = raw.reshape(-1, raw.shape[-1])
    h, w = (int(v) for v in input_hw)
    cells = [(h // s, w // s, s) for s in strides]
    expected = sum(gh * gw for gh, gw, _ in cells)
    if raw.shape[0] != expected or raw.shape[1] < 6:
        raise ValueError(f'a YOLOX head at {w}x{h} with strides {list(strides)} has {expected} rows of 5 + classes, '
                         f'got {list(raw.shape)}')
    grid = np.concatenate([np.stack(np.meshgrid(np.arange(gw), np.arange(gh)), -1).reshape(-1, 2)
                           for gh, gw, _ in cells]).astype(np.float32)
    stride = np.concatenate([np.full(gh * gw, s, np.float32) for gh, gw, s in cells])[:, None]
    centre = (raw[:, :2] + grid) * stride
    size = np.exp(np.clip(raw[:, 2:4], -10, 10)) * stride
    cls_prob = raw[:, 5:]
    classes = cls_prob.argmax(axis=1)
    scores = raw[:, 4] * cls_prob[np.arange(len(raw)), classes]
    return np.concatenate([centre - size / 2, centre + size / 2], 1), scores.astype(np.float32), classes


def nms(boxes, scores, classes, iou: float, score_threshold: float = 0.0) -> np.ndarray:
    """Indices kept by non-maximum suppression within each class, best score first."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if not len(boxes):
        return np.zeros(0, np.int64)
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], 1)
    kept = cv2.dnn.NMSBoxesBatched(xywh.tolist(), np.asarray(scores, np.float32).tolist(),
                                   np.asarray(classes, np.int64).tolist(), float(score_threshold), float(iou))
    kept = np.asarray(kept, np.int64).reshape(-1)
    return kept[np.argsort(-np.asarray(scores)[kept], kind='stable')]


def tile_windows(h: int, w: int, rows: int, cols: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of rows x cols tiles covering an h x w frame, neighbours sharing `overlap`
    of a tile's side."""
    if rows < 1 or cols < 1 or not 0.0 <= overlap < 1.0:
        raise ValueError(f'tiles: rows and cols >= 1 and overlap in [0, 1), got {rows}, {cols}, {overlap}')

    def spans(n, length):
        size = length / (n - (n - 1) * overlap)
        starts = [round(k * size * (1 - overlap)) for k in range(n)]
        return [(s, min(length, round(s + size))) for s in starts]
    return [(x0, y0, x1, y1) for y0, y1 in spans(rows, h) for x0, x1 in spans(cols, w)]


def _cut_at_seam(box, window, frame_hw) -> bool:
    x0, y0, x1, y1 = window
    h, w = frame_hw
    return bool((x0 > 0 and box[0] - x0 <= SEAM_PX) or (y0 > 0 and box[1] - y0 <= SEAM_PX)
                or (x1 < w and x1 - box[2] <= SEAM_PX) or (y1 < h and y1 - box[3] <= SEAM_PX))


def _overlap_of_smaller(a, b) -> np.ndarray:
    """Intersection of box a with each of boxes b, over the smaller of the two areas."""
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])   # noqa: E731
    return ix * iy / np.maximum(np.minimum(area(a), area(b)), 1e-6)


def merge_tiles(parts, frame_hw, iou: float):
    """parts: [(window or None for the whole frame, boxes [N, 4] in frame pixels, scores, classes)]
    -> (boxes, scores, classes) of the frame: seam-cut boxes merged with what overlaps them, then
    suppression per class."""
    boxes, scores, classes, cut = [], [], [], []
    for window, b, s, c in parts:
        b = np.asarray(b, np.float32).reshape(-1, 4)
        boxes.append(b)
        scores.append(np.asarray(s, np.float32).reshape(-1))
        classes.append(np.asarray(c, np.int64).reshape(-1))
        cut.append(np.array([window is not None and _cut_at_seam(x, window, frame_hw) for x in b], bool))
    boxes, scores, classes, cut = (np.concatenate(v) if v else np.zeros(0) for v in (boxes, scores, classes, cut))
    if not len(boxes):
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    boxes, classes, cut = boxes.reshape(-1, 4).copy(), classes.astype(np.int64), cut.astype(bool)
    alive = np.ones(len(boxes), bool)
    order = np.argsort(-scores, kind='stable')
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    for i in order:                     # a box absorbs the lower scored ones it joins
        if not alive[i]:
            continue
        others = np.flatnonzero(alive & (classes == classes[i]) & (rank > rank[i]))
        if not len(others):
            continue
        joined = others[(_overlap_of_smaller(boxes[i], boxes[others]) >= SEAM_OVERLAP) & (cut[others] | cut[i])]
        if len(joined):
            group = np.concatenate([[i], joined])
            boxes[i] = [boxes[group, 0].min(), boxes[group, 1].min(), boxes[group, 2].max(), boxes[group, 3].max()]
            alive[joined] = False
    idx = np.flatnonzero(alive)
    keep = idx[nms(boxes[idx], scores[idx], classes[idx], iou)]
    return boxes[keep], scores[keep], classes[keep]
