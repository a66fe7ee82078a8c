"""3D boxes for 2D detections from the aligned depth and segmentation.

For each detection box, the pixels inside it that the segmentation gives to the detection's
class (a car box keeps its car pixels, not the road behind) are back-projected, and the box
spans the lo-hi percentiles of those points on each axis: robust to the few pixels of
background at the edges that a box average would mix in. A camera sees an object's near
surface only, so the box is that of the visible surface: its near face (z_min) is where the
object begins, its depth extent is what shows (tested against the synthetic world's objects).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hydranet_ros.spatial.cloud import Intrinsics


@dataclass
class Object3D:
    """A detection in 3D, camera optical frame, metres: centre (x, y, z), size (dx, dy, dz) and
    the number of points it rests on. index: the detection it lifts."""
    index: int
    center: tuple
    size: tuple
    points: int

    @property
    def near_z(self) -> float:
        return float(self.center[2] - self.size[2] / 2)


def class_label_map(detection_classes, segmentation_names) -> dict[int, tuple[int, ...]]:
    """Detection class id -> segmentation ids of the same name (empty: no such class, any pixel
    with depth in the box counts)."""
    seg = {str(n): i for i, n in enumerate(segmentation_names)}
    return {i: ((seg[str(n)],) if str(n) in seg else ()) for i, n in enumerate(detection_classes)}


def lift_detections(boxes, class_ids, depth: np.ndarray, intrinsics: Intrinsics, labels: np.ndarray | None = None,
                    class_labels: dict | None = None, min_points: int = 10, percentiles=(10.0, 90.0),
                    max_m: float = float('inf')) -> list[Object3D]:
    """boxes [N, 4] (x1, y1, x2, y2) in depth-image pixels, class_ids [N]. Returns one Object3D
    per detection with at least min_points usable pixels (others are left out)."""
    depth = np.asarray(depth, dtype=np.float32)
    h, w = depth.shape
    lo_p, hi_p = percentiles
    objects = []
    for index, (box, cls) in enumerate(zip(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), class_ids)):
        x1, y1 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
        x2, y2 = min(int(np.ceil(box[2])), w), min(int(np.ceil(box[3])), h)
        if x2 <= x1 or y2 <= y1:
            continue
        z = depth[y1:y2, x1:x2]
        keep = np.isfinite(z) & (z > 0) & (z <= max_m)
        wanted = (class_labels or {}).get(int(cls), ())
        if labels is not None and wanted:
            keep &= np.isin(labels[y1:y2, x1:x2], wanted)
        rr, cc = np.nonzero(keep)
        if rr.size < min_points:
            continue
        zz = z[rr, cc].astype(np.float64)
        xx = (cc + x1 - intrinsics.cx) * zz / intrinsics.fx
        yy = (rr + y1 - intrinsics.cy) * zz / intrinsics.fy
        lo = np.percentile(np.stack([xx, yy, zz]), lo_p, axis=1)
        hi = np.percentile(np.stack([xx, yy, zz]), hi_p, axis=1)
        objects.append(Object3D(index, tuple(float(v) for v in (lo + hi) / 2),
                                tuple(float(v) for v in hi - lo), int(rr.size)))
    return objects
