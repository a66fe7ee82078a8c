"""Stable object ids across frames, associating boxes by where the flow head says they came from.

The flow of a frame maps each of its pixels back to the previous frame (flow = previous ->
current displacement, so a pixel p came from p - flow(p)). Each new detection is moved back by
the median flow of the central half of its box, and the moved box is matched to the tracks'
last boxes by IoU (same class, greedy by IoU). A fast-moving or panning object therefore keeps
its id where plain IoU between consecutive boxes would lose it. Without flow (a camera's first
frame, a gap) the boxes are matched where they are. Tracks not seen for max_age_s end.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Track:
    """One object's id, its last box (image pixels), class and when it was last seen."""
    id: int
    box: np.ndarray
    class_id: int
    last_seen_ns: int
    age: int = 1


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a [N, 4] with every box in b [M, 4] (x1, y1, x2, y2)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_motion(boxes: np.ndarray, flow: np.ndarray, image_size) -> np.ndarray:
    """[N, 2] median (u, v) of the flow over the central half of each box, in image pixels
    (flow [h, w, 2] may be at another resolution than the image (H, W) the boxes are in)."""
    fh, fw = flow.shape[:2]
    sx, sy = fw / image_size[1], fh / image_size[0]
    motion = np.zeros((len(boxes), 2))
    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
        cx, cy, hw, hh = (x1 + x2) / 2 * sx, (y1 + y2) / 2 * sy, (x2 - x1) / 4 * sx, (y2 - y1) / 4 * sy
        c0, c1 = int(np.clip(np.floor(cx - hw), 0, fw - 1)), int(np.clip(np.ceil(cx + hw), 1, fw))
        r0, r1 = int(np.clip(np.floor(cy - hh), 0, fh - 1)), int(np.clip(np.ceil(cy + hh), 1, fh))
        patch = flow[r0:max(r1, r0 + 1), c0:max(c1, c0 + 1)].reshape(-1, 2)
        patch = patch[np.isfinite(patch).all(axis=1)]
        if len(patch):
            u, v = np.median(patch, axis=0)
            motion[i] = (u / sx, v / sy)
    return motion


class FlowTracker:
    """update(boxes, class_ids, stamp_ns, flow) -> one id per box, stable while an object is
    matched; ids are never reused within a tracker's life."""

    def __init__(self, max_age_s: float = 1.0, iou_threshold: float = 0.3):
        if max_age_s <= 0 or not 0 < iou_threshold <= 1:
            raise ValueError(f'max_age_s must be > 0 and iou_threshold in (0, 1], got {max_age_s}, {iou_threshold}')
        self.max_age_s, self.iou_threshold = float(max_age_s), float(iou_threshold)
        self.tracks: list[Track] = []
        self._next_id = 1
        self._last_stamp = None

    def reset(self):
        """Forget every track (ids keep counting up)."""
        self.tracks = []
        self._last_stamp = None

    def update(self, boxes, class_ids, stamp_ns: int, flow: np.ndarray | None = None,
               image_size=None) -> list[int]:
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        class_ids = [int(c) for c in class_ids]
        if self._last_stamp is not None and stamp_ns < self._last_stamp:
            self.reset()                                  # time went backwards: a new sequence
        elif stamp_ns == self._last_stamp:
            flow = None                                   # the same frame again (a duplicate): nothing moved
        self._last_stamp = stamp_ns
        self.tracks = [t for t in self.tracks if (stamp_ns - t.last_seen_ns) / 1e9 <= self.max_age_s]
        origin = boxes.copy()
        if flow is not None and len(boxes):
            motion = box_motion(boxes, flow, image_size or flow.shape[:2])
            origin[:, [0, 2]] -= motion[:, :1]
            origin[:, [1, 3]] -= motion[:, 1:]
        ids = [0] * len(boxes)
        if self.tracks and len(boxes):
            iou = iou_matrix(origin, np.stack([t.box for t in self.tracks]))
            same = np.array(class_ids)[:, None] == np.array([t.class_id for t in self.tracks])[None, :]
            iou = np.where(same, iou, 0.0)
            used_d, used_t = set(), set()
            for flat in np.argsort(-iou, axis=None):
                d, t = divmod(int(flat), iou.shape[1])
                if iou[d, t] < self.iou_threshold:
                    break
                if d in used_d or t in used_t:
                    continue
                used_d.add(d)
                used_t.add(t)
                track = self.tracks[t]
                track.box, track.last_seen_ns, track.age = boxes[d], stamp_ns, track.age + 1
                ids[d] = track.id
        for d in range(len(boxes)):
            if not ids[d]:
                track = Track(self._next_id, boxes[d], class_ids[d], stamp_ns)
                self._next_id += 1
                self.tracks.append(track)
                ids[d] = track.id
        return ids


#: instances that no tracked detection matches count down from here (not stable over frames)
UNTRACKED_INSTANCE_ID = 65535


def track_instance_ids(instances: np.ndarray, boxes, track_ids, iou_threshold: float = 0.5) -> np.ndarray:
    """The instance id image relabelled with the track ids: an instance whose pixels' box overlaps
    a detection's box (same grid, x1 y1 x2 y2) by iou_threshold or more takes that detection's
    track id (greedy by IoU, one to one; ids kept to 1..65000), the others count down from
    UNTRACKED_INSTANCE_ID. 0 stays 0."""
    from hydranet_ros.inference.instances import instance_boxes
    found = instance_boxes(instances)
    if not found:
        return np.zeros_like(instances, dtype=np.uint16)
    keys = list(found)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    iou = iou_matrix(np.array([found[k] for k in keys]), boxes) if len(boxes) else np.zeros((len(keys), 0))
    lut = np.zeros(max(keys) + 1, np.uint16)
    taken_rows, taken_cols = set(), set()
    for flat in np.argsort(-iou, axis=None):
        row, col = divmod(int(flat), iou.shape[1])
        if iou[row, col] < iou_threshold:
            break
        if row not in taken_rows and col not in taken_cols:
            taken_rows.add(row)
            taken_cols.add(col)
            lut[keys[row]] = (int(track_ids[col]) - 1) % 65000 + 1
    untracked = UNTRACKED_INSTANCE_ID
    for row, key in enumerate(keys):
        if row not in taken_rows:
            lut[key] = untracked
            untracked -= 1
    return lut[instances]
