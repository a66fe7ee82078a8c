"""Task metrics shared by training evaluation and the offline evaluator (numpy, no ROS).

Each metric accumulates over images with update(...) and reports with compute().
"""
from __future__ import annotations

import numpy as np
from hydranet_ros import IGNORE



class SegmentationMetric:
    """Confusion matrix -> per-class IoU and mIoU (over classes present in labels or predictions)."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE):
        self.n = num_classes
        self.ignore = ignore_index
        self.confusion = np.zeros((num_classes, num_classes), np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray):
        keep = target != self.ignore
        t, p = target[keep].astype(np.int64), pred[keep].astype(np.int64)
        if t.size and (t.max() >= self.n or p.max() >= self.n):
            raise ValueError(f'class id out of range for {self.n} classes')
        self.confusion += np.bincount(t * self.n + p, minlength=self.n * self.n).reshape(self.n, self.n)

    def merge(self, other: 'SegmentationMetric'):
        """Add another accumulator's counts (e.g. from another process)."""
        self.confusion += other.confusion

    def compute(self) -> dict:
        tp = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - tp
        present = union > 0
        iou = np.full(self.n, np.nan)
        iou[present] = tp[present] / union[present]
        acc = tp.sum() / max(self.confusion.sum(), 1)
        return {'miou': float(np.nanmean(iou)) if present.any() else float('nan'),
                'per_class_iou': iou.tolist(), 'pixel_accuracy': float(acc)}


class DepthMetric:
    """AbsRel, RMSE (m) and delta < 1.25 over pixels with finite ground truth in [min, max]."""

    def __init__(self, min_depth: float = 1e-3, max_depth: float = 80.0):
        self.min, self.max = min_depth, max_depth
        self.abs_rel = self.sq = self.delta = 0.0
        self.count = 0

    def update(self, pred: np.ndarray, target: np.ndarray):
        valid = np.isfinite(target) & (target >= self.min) & (target <= self.max) & np.isfinite(pred)
        p, t = np.clip(pred[valid].astype(np.float64), self.min, self.max), target[valid].astype(np.float64)
        self.abs_rel += float(np.sum(np.abs(p - t) / t))
        self.sq += float(np.sum((p - t) ** 2))
        self.delta += float(np.sum(np.maximum(p / t, t / p) < 1.25))
        self.count += int(t.size)

    def merge(self, other: 'DepthMetric'):
        self.abs_rel += other.abs_rel
        self.sq += other.sq
        self.delta += other.delta
        self.count += other.count

    def compute(self) -> dict:
        c = max(self.count, 1)
        return {'abs_rel': self.abs_rel / c, 'rmse': float(np.sqrt(self.sq / c)), 'delta1': self.delta / c,
                'pixels': self.count}


class FlowMetric:
    """End-point error (px) and Fl-all (share of outliers: EPE > 3 px and > 5% of |gt|)."""

    def __init__(self):
        self.epe = 0.0
        self.outliers = 0
        self.count = 0

    def update(self, pred: np.ndarray, target: np.ndarray):
        valid = np.isfinite(target).all(axis=-1)
        err = np.linalg.norm(pred[valid].astype(np.float64) - target[valid], axis=-1)
        mag = np.linalg.norm(target[valid].astype(np.float64), axis=-1)
        self.epe += float(err.sum())
        self.outliers += int(np.sum((err > 3.0) & (err > 0.05 * mag)))
        self.count += int(err.size)

    def merge(self, other: 'FlowMetric'):
        self.epe += other.epe
        self.outliers += other.outliers
        self.count += other.count

    def compute(self) -> dict:
        c = max(self.count, 1)
        return {'epe': self.epe / c, 'fl_all': self.outliers / c, 'pixels': self.count}


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, 4] x [M, 4] (x1, y1, x2, y2) -> [N, M] IoU."""
    if a.size == 0 or b.size == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


class DetectionMetric:
    """mAP@0.5 and mAP@[.5:.95] (COCO-style 101-point interpolated AP, averaged over classes
    that have ground truth). Ground-truth boxes marked ignore are neither matched as misses
    nor count detections matched to them as false positives."""

    THRESHOLDS = np.round(np.arange(0.5, 0.96, 0.05), 2)

    def __init__(self, num_classes: int):
        self.n = num_classes
        self.records = {c: {t: [] for t in self.THRESHOLDS} for c in range(num_classes)}  # (score, tp)
        self.num_gt = np.zeros(num_classes, np.int64)

    def update(self, pred_boxes, pred_scores, pred_classes, gt_boxes, gt_classes, gt_ignore=None):
        pred_boxes = np.asarray(pred_boxes, np.float64).reshape(-1, 4)
        pred_scores = np.asarray(pred_scores, np.float64).reshape(-1)
        pred_classes = np.asarray(pred_classes, np.int64).reshape(-1)
        gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
        gt_classes = np.asarray(gt_classes, np.int64).reshape(-1)
        gt_ignore = np.zeros(len(gt_boxes), bool) if gt_ignore is None else np.asarray(gt_ignore, bool)
        for c in range(self.n):
            pm, gm = pred_classes == c, gt_classes == c
            pb, ps = pred_boxes[pm], pred_scores[pm]
            gb, gi = gt_boxes[gm], gt_ignore[gm]
            self.num_gt[c] += int((~gi).sum())
            order = np.argsort(-ps, kind='stable')
            pb, ps = pb[order], ps[order]
            iou = box_iou(pb, gb)
            for t in self.THRESHOLDS:
                taken = np.zeros(len(gb), bool)
                for i in range(len(pb)):
                    cand = np.where(~taken & (iou[i] >= t))[0] if len(gb) else np.array([], int)
                    if cand.size:
                        j = cand[np.argmax(iou[i, cand])]
                        taken[j] = True
                        if gi[j]:
                            continue           # matched an ignored box: neither TP nor FP
                        self.records[c][t].append((ps[i], 1))
                    else:
                        self.records[c][t].append((ps[i], 0))

    def merge(self, other: 'DetectionMetric'):
        for c in range(self.n):
            for t in self.THRESHOLDS:
                self.records[c][t].extend(other.records[c][t])
        self.num_gt += other.num_gt

    def precision_recall(self, class_id: int, threshold: float = 0.5):
        """(recall, precision) arrays along the score-sorted detections of one class."""
        t = self.THRESHOLDS[int(np.argmin(np.abs(self.THRESHOLDS - threshold)))]
        recs = sorted(self.records[class_id][t], key=lambda r: -r[0])
        if not recs or self.num_gt[class_id] == 0:
            return np.zeros(0), np.zeros(0)
        tp = np.cumsum([r[1] for r in recs])
        fp = np.cumsum([1 - r[1] for r in recs])
        return tp / self.num_gt[class_id], tp / np.maximum(tp + fp, 1e-9)

    def _ap(self, recs, num_gt):
        if num_gt == 0:
            return float('nan')
        if not recs:
            return 0.0
        recs = sorted(recs, key=lambda r: -r[0])
        tp = np.cumsum([r[1] for r in recs])
        fp = np.cumsum([1 - r[1] for r in recs])
        recall = tp / num_gt
        precision = tp / np.maximum(tp + fp, 1e-9)
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        points = np.linspace(0, 1, 101)
        idx = np.searchsorted(recall, points, side='left')
        return float(np.mean([precision[i] if i < len(precision) else 0.0 for i in idx]))

    def compute(self) -> dict:
        per_class = {}
        for c in range(self.n):
            per_class[c] = [self._ap(self.records[c][t], self.num_gt[c]) for t in self.THRESHOLDS]
        has = [c for c in range(self.n) if self.num_gt[c] > 0]
        if not has:
            return {'map50': float('nan'), 'map': float('nan'), 'per_class_ap50': [float('nan')] * self.n}
        return {'map50': float(np.mean([per_class[c][0] for c in has])),
                'map': float(np.mean([np.mean(per_class[c]) for c in has])),
                'per_class_ap50': [per_class[c][0] for c in range(self.n)],
                'num_gt': self.num_gt.tolist()}


class UncertaintyMetric:
    """How well a predicted Laplace scale b matches the depth error it stands for: the share of
    pixels with |error| <= b and <= 2b against what a Laplace distribution predicts (1 - e^-1,
    1 - e^-2), and the sparsification curve of AbsRel (pixels removed most uncertain first) with
    its oracle (largest error first) and the area between them, AUSE (Ilg et al. 2018; Poggi et al.
    2020: lower is better, 0 = uncertainty ranks pixels as their errors do). Pixels are kept as
    given (subsample before update for large sets)."""
    EXPECTED = {'within_1b': 1.0 - float(np.exp(-1.0)), 'within_2b': 1.0 - float(np.exp(-2.0))}

    def __init__(self, min_depth: float = 1e-3, max_depth: float = 80.0, steps: int = 20):
        self.min_depth, self.max_depth, self.steps = min_depth, max_depth, steps
        self._err, self._rel, self._scale = [], [], []

    def update(self, depth: np.ndarray, scale: np.ndarray, target: np.ndarray):
        depth, scale, target = (np.asarray(a, np.float64).ravel() for a in (depth, scale, target))
        valid = np.isfinite(target) & (target >= self.min_depth) & (target <= self.max_depth) & np.isfinite(depth) \
            & np.isfinite(scale) & (scale > 0)
        err = np.abs(depth[valid] - target[valid])
        self._err.append(err)
        self._rel.append(err / target[valid])
        self._scale.append(scale[valid])

    def compute(self) -> dict:
        err, rel, scale = (np.concatenate(a) if a else np.zeros(0) for a in (self._err, self._rel, self._scale))
        if not len(err):
            return {}
        fractions = np.arange(self.steps) / self.steps
        curve = _sparsification(rel, np.argsort(-scale, kind='stable'), fractions)
        oracle = _sparsification(rel, np.argsort(-rel, kind='stable'), fractions)
        return {'within_1b': float((err <= scale).mean()), 'within_2b': float((err <= 2 * scale).mean()),
                'expected_within_1b': self.EXPECTED['within_1b'], 'expected_within_2b': self.EXPECTED['within_2b'],
                'fractions_removed': fractions.tolist(), 'abs_rel_sparsification': curve.tolist(),
                'abs_rel_oracle': oracle.tolist(), 'ause_abs_rel': float(np.mean(curve - oracle)),
                'pixels': int(len(err))}


def _sparsification(values: np.ndarray, order: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Mean of values after removing the first fraction of `order` (most uncertain first)."""
    ranked = values[order]
    # mean of ranked[k:] for each k, from a reversed cumulative sum
    tail = np.cumsum(ranked[::-1])[::-1]
    n = len(ranked)
    ks = np.minimum((fractions * n).astype(np.int64), n - 1)
    return tail[ks] / (n - ks)


class PanopticQuality:
    """PQ, SQ, RQ over the thing classes (Kirillov et al., "Panoptic Segmentation", 2019).

    update(pred_ids, pred_classes, true_ids, true_classes): id images [H, W] (0 = no instance) and
    per-pixel class ids; an instance's class is its pixels' most common one. A predicted and a true
    instance of one class match when their IoU exceeds 0.5 (then the match is unique); PQ =
    sum of matched IoUs / (TP + FP / 2 + FN / 2) = SQ (mean matched IoU) x RQ (an F1 of the matching),
    per class, then averaged over the classes that occur. True instances under min_area pixels are
    left out, and so is a prediction that covers mostly (> 50%) such ignored pixels."""

    def __init__(self, classes: dict, min_area: int = 16):
        self.classes = dict(classes)               # class id -> name
        self.min_area = int(min_area)
        self.tp = {c: 0 for c in self.classes}
        self.fp = {c: 0 for c in self.classes}
        self.fn = {c: 0 for c in self.classes}
        self.iou = {c: 0.0 for c in self.classes}

    @staticmethod
    def _segments(ids, classes):
        out = {}
        for i in np.unique(ids):
            if i == 0:
                continue
            mask = ids == i
            values, counts = np.unique(classes[mask], return_counts=True)
            out[int(i)] = (mask, int(values[np.argmax(counts)]), int(mask.sum()))
        return out

    def update(self, pred_ids, pred_classes, true_ids, true_classes):
        pred = self._segments(np.asarray(pred_ids), np.asarray(pred_classes))
        true = self._segments(np.asarray(true_ids), np.asarray(true_classes))
        ignored = np.zeros(np.asarray(true_ids).shape, bool)
        for i, (mask, _, area) in list(true.items()):
            if area < self.min_area:
                ignored |= mask
                del true[i]
        matched_pred, matched_true = set(), set()
        for pi, (pm, pc, pa) in pred.items():
            for ti, (tm, tc, ta) in true.items():
                if pc != tc or tc not in self.classes or ti in matched_true:
                    continue
                inter = int((pm & tm).sum())
                iou = inter / (pa + ta - inter) if inter else 0.0
                if iou > 0.5:
                    self.tp[tc] += 1
                    self.iou[tc] += iou
                    matched_pred.add(pi)
                    matched_true.add(ti)
                    break
        for pi, (pm, pc, pa) in pred.items():
            if pi not in matched_pred and pc in self.classes and (pm & ignored).sum() <= 0.5 * pa:
                self.fp[pc] += 1
        for ti, (_, tc, _) in true.items():
            if ti not in matched_true and tc in self.classes:
                self.fn[tc] += 1

    def merge(self, other: 'PanopticQuality'):
        """Add another's counts (bags scored in other processes); the same classes."""
        if other.classes != self.classes:
            raise ValueError(f'panoptic classes differ: {other.classes} vs {self.classes}')
        for name in ('tp', 'fp', 'fn', 'iou'):
            mine = getattr(self, name)
            for c, v in getattr(other, name).items():
                mine[c] += v

    def compute(self) -> dict:
        out, pqs, sqs, rqs = {}, [], [], []
        for c, name in self.classes.items():
            tp, fp, fn = self.tp[c], self.fp[c], self.fn[c]
            if tp + fp + fn == 0:
                continue
            sq = self.iou[c] / tp if tp else 0.0
            rq = tp / (tp + 0.5 * fp + 0.5 * fn)
            out[name] = {'pq': round(sq * rq, 4), 'sq': round(sq, 4), 'rq': round(rq, 4), 'tp': tp, 'fp': fp, 'fn': fn}
            pqs.append(sq * rq)
            sqs.append(sq)
            rqs.append(rq)
        if pqs:
            out.update({'pq': round(float(np.mean(pqs)), 4), 'sq': round(float(np.mean(sqs)), 4),
                        'rq': round(float(np.mean(rqs)), 4)})
        return out
