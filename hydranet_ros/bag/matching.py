"""Ground truth and predictions of a bag matched by header stamp: messages decoded into the arrays
the metrics take, held until both sides of a stamp have arrived, then scored (evaluate.py reads
the bags and drives this)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hydranet_ros.bag import convert
from hydranet_ros.bag.scores import DISTANCE_BINS, REL_ERROR_BINS, Scores
from hydranet_ros.bag.storage import BagError


def resize(array: np.ndarray, shape, nearest: bool) -> np.ndarray:
    """array at shape (h, w): nearest for labels, bilinear for values."""
    import cv2
    if array.shape[:2] == tuple(shape):
        return array
    return cv2.resize(array, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)


def decode(kind: str, msg):
    """A ground-truth or prediction message as the arrays the metrics take."""
    from hydranet_ros.image_codec import ImageConversionError, image_to_numpy
    try:
        if kind in ('segmentation', 'depth', 'instances'):
            return image_to_numpy(msg)   # a view on the message buffer; metrics only read it
        if kind == 'flow':
            return image_to_numpy(msg.flow), convert.stamp_ns(msg.previous_stamp)
        if kind == 'detection':
            return convert.detection_boxes(msg)
    except ImageConversionError as exc:
        raise BagError(f'a {kind} image in the bag is malformed: {exc}') from None
    raise KeyError(kind)


#: where a side's segmentation waits for its instances (their classes)
CLASSES_OF_INSTANCES = '_classes_of_instances'


@dataclass
class Pending:
    """What waits at one stamp: decoded ground truth and outputs per task, tasks settled."""
    gt: dict = field(default_factory=dict)
    pred: dict = field(default_factory=dict)
    done: set = field(default_factory=set)


class Matcher:
    """Pairs ground truth with predictions per stamp and scores complete pairs.

    The node answers frames in stamp order and ground truth comes in stamp order, so once a
    task's output (or ground truth) for a stamp arrives, whatever of that task still waits at an
    earlier stamp will never be paired: it is let go at once, so memory stays bounded however
    many frames the node dropped."""

    def __init__(self, scores: Scores, tasks, opts):
        self.s, self.tasks, self.opts = scores, tasks, opts
        self.pending: dict[int, Pending] = {}
        self.inputs = set()
        self.seen_pred = {t: set() for t in tasks}
        self.abandoned_flow = 0   # flow ground truth let go without an output

    def add_ground_truth(self, stamp: int, task: str, value):
        self._add(stamp, task, value, prediction=False)

    def add_prediction(self, stamp: int, task: str, value):
        if stamp in self.seen_pred[task]:
            self.s.duplicates[task] = self.s.duplicates.get(task, 0) + 1
            return
        self.seen_pred[task].add(stamp)
        self._add(stamp, task, value, prediction=True)

    def _add(self, stamp: int, task: str, value, prediction: bool):
        entry = self.pending.setdefault(stamp, Pending())
        side = entry.pred if prediction else entry.gt
        side[task] = value
        if task == 'segmentation' and 'instances' in self.tasks:
            side[CLASSES_OF_INSTANCES] = value          # an instance's class: its pixels' most common one
        if task != 'instances' and task in entry.gt and task in entry.pred:
            self.score(task, entry.gt.pop(task), entry.pred.pop(task))
            entry.done.add(task)
        self._score_instances(entry)
        self._settle(stamp)
        # Both streams come in stamp order: what waits at an earlier stamp for the other side
        # (ground truth for an output, an output for ground truth) will never be paired.
        for earlier in [st for st, e in self.pending.items()
                        if st < stamp and task in (e.gt if prediction else e.pred)]:
            waiting = self.pending[earlier]
            (waiting.gt if prediction else waiting.pred).pop(task)
            waiting.done.add(task)
            self.abandoned_flow += task == 'flow' and prediction
            self._settle(earlier)

    def _score_instances(self, entry: Pending):
        """Instances are scored once both sides have their ids and their segmentation."""
        keys = ('instances', CLASSES_OF_INSTANCES)
        if 'instances' in entry.done or not all(k in entry.gt and k in entry.pred for k in keys):
            return
        self.score('instances', tuple(entry.gt.pop(k) for k in keys), tuple(entry.pred.pop(k) for k in keys))
        entry.done.add('instances')

    def _settle(self, stamp):
        if self.pending[stamp].done >= set(self.tasks):
            del self.pending[stamp]

    def score(self, task, gt, pred):
        s = self.s
        if task == 'segmentation':
            s.seg.update(resize(pred, gt.shape, True), gt)
        elif task == 'depth':
            pred = resize(pred.astype(np.float32), gt.shape, True)
            s.depth.update(pred, gt)
            lo, hi = self.opts.depth_range
            valid = np.isfinite(gt) & (gt >= lo) & (gt <= hi) & np.isfinite(pred)
            p, t = np.clip(pred[valid], lo, hi), gt[valid]
            rel = (p - t) / t
            s.depth_rel_hist += np.histogram(np.clip(rel, -1, 1), REL_ERROR_BINS)[0]
            idx = np.clip(np.digitize(t, DISTANCE_BINS) - 1, 0, len(DISTANCE_BINS) - 2)
            s.depth_by_distance[:, 0] += np.bincount(idx, np.abs(rel), len(DISTANCE_BINS) - 1)
            s.depth_by_distance[:, 1] += np.bincount(idx, None, len(DISTANCE_BINS) - 1)
        elif task == 'flow':
            (gflow, gprev), (pflow, pprev) = gt, pred
            if gprev != pprev:             # the node's flow spans other frames (a dropped frame)
                s.flow_gap_mismatch += 1
                return
            if pflow.shape[:2] != gflow.shape[:2]:
                sy, sx = gflow.shape[0] / pflow.shape[0], gflow.shape[1] / pflow.shape[1]
                pflow = resize(pflow, gflow.shape[:2], False) * np.array([sx, sy], np.float32)
            s.flow.update(pflow, gflow)
            valid = np.isfinite(gflow).all(-1)
            err = np.where(valid, np.linalg.norm(np.nan_to_num(pflow - gflow), axis=-1), 0.0)
            if s.flow_epe_map is None:
                s.flow_epe_map = np.zeros((*gflow.shape[:2], 2))
            if s.flow_epe_map.shape[:2] == gflow.shape[:2]:
                s.flow_epe_map[..., 0] += err
                s.flow_epe_map[..., 1] += valid
        elif task == 'instances':
            (gids, gseg), (pids, pseg) = gt, pred
            s.pq.update(resize(pids, gids.shape, True), resize(pseg, gseg.shape, True), gids, gseg)
        elif task == 'detection':
            (gb, gs, gc), (pb, ps, pc) = gt, pred
            keep = pc >= 0
            s.det.update(pb[keep], ps[keep], pc[keep], gb, gc, gs <= 0.0)
        s.scored[task] = s.scored.get(task, 0) + 1

    def finish(self):
        """Input frames whose output never came: counted as missing per task."""
        for task in self.tasks:
            if task == 'flow':   # the first frame of a drive has no flow ground truth nor output
                missing = self.abandoned_flow + sum(1 for e in self.pending.values()
                                                    if 'flow' in e.gt and 'flow' not in e.pred)
            else:
                missing = sum(1 for st in self.inputs if st not in self.seen_pred[task])
            self.s.missing[task] = self.s.missing.get(task, 0) + missing


def label_names(msg) -> list:
    """A LabelInfo's class names by class id."""
    return [c.class_name for c in sorted(msg.class_map, key=lambda c: c.class_id)]
