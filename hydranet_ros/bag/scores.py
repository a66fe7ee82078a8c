"""Accumulated scores of evaluated bags: metrics, report data, the summary and its table.

Shared by the evaluator (which fills them, in parallel processes, and merges them) and the
report (which draws them); ROS-free.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hydranet_ros.bag.storage import BagError
from hydranet_ros.metrics import DepthMetric, DetectionMetric, FlowMetric, PanopticQuality, SegmentationMetric

#: Relative depth error histogram bins and distance bins (metres) of the report.
REL_ERROR_BINS = np.linspace(-1.0, 1.0, 81)
DISTANCE_BINS = np.array([0.5, 5, 10, 15, 20, 30, 40, 60, 80])


@dataclass
class Scores:
    """Accumulated metrics and report data of one or more bags (mergeable across processes)."""

    bags: list = field(default_factory=list)
    seg_classes: list = field(default_factory=list)
    det_classes: list = field(default_factory=list)
    seg: SegmentationMetric | None = None
    depth: DepthMetric | None = None
    flow: FlowMetric | None = None
    det: DetectionMetric | None = None
    pq: PanopticQuality | None = None               # instances over the thing classes
    depth_rel_hist: np.ndarray = field(default_factory=lambda: np.zeros(len(REL_ERROR_BINS) - 1, np.int64))
    depth_by_distance: np.ndarray = field(default_factory=lambda: np.zeros((len(DISTANCE_BINS) - 1, 2)))
    flow_epe_map: np.ndarray | None = None        # [H, W, 2]: EPE sum, count
    latency: list = field(default_factory=list)   # (bag index, stamp s, total ms, inference ms, queue ms)
    frames: int = 0                                # input frames (camera images) in the bags
    scored: dict = field(default_factory=dict)     # task -> frames scored
    missing: dict = field(default_factory=dict)    # task -> input frames without that output
    duplicates: dict = field(default_factory=dict)  # task -> extra outputs for one stamp
    flow_gap_mismatch: int = 0                     # flow outputs spanning other frames than the ground truth

    def merge(self, other: 'Scores'):
        offset = len(self.bags)
        self.bags += other.bags
        self.seg_classes = self.seg_classes or other.seg_classes
        self.det_classes = self.det_classes or other.det_classes
        for name in ('seg', 'depth', 'flow', 'det', 'pq'):
            mine, theirs = getattr(self, name), getattr(other, name)
            if theirs is None:
                continue
            if mine is None:
                setattr(self, name, theirs)
            elif name in ('seg', 'det') and mine.n != theirs.n:
                raise BagError(f'bags disagree on the number of {name} classes ({mine.n} vs {theirs.n})')
            else:
                mine.merge(theirs)
        self.depth_rel_hist += other.depth_rel_hist
        self.depth_by_distance += other.depth_by_distance
        if other.flow_epe_map is not None:
            if self.flow_epe_map is None:
                self.flow_epe_map = other.flow_epe_map
            elif self.flow_epe_map.shape == other.flow_epe_map.shape:
                self.flow_epe_map += other.flow_epe_map
        self.latency += [(b + offset, *rest) for b, *rest in other.latency]
        self.frames += other.frames
        for name in ('scored', 'missing', 'duplicates'):
            for k, v in getattr(other, name).items():
                getattr(self, name)[k] = getattr(self, name).get(k, 0) + v
        self.flow_gap_mismatch += other.flow_gap_mismatch

    def summary(self) -> dict:
        out = {'bags': self.bags, 'frames': self.frames, 'scored_frames': self.scored,
               'missing_outputs': self.missing, 'duplicate_outputs': self.duplicates,
               'flow_gap_mismatch': self.flow_gap_mismatch}
        if self.seg is not None and self.scored.get('segmentation'):
            m = self.seg.compute()
            names = self.seg_classes or [str(i) for i in range(self.seg.n)]
            out['segmentation'] = {'miou': m['miou'], 'pixel_accuracy': m['pixel_accuracy'],
                                   'per_class_iou': dict(zip(names, m['per_class_iou']))}
        if self.depth is not None and self.scored.get('depth'):
            out['depth'] = self.depth.compute()
        if self.flow is not None and self.scored.get('flow'):
            out['flow'] = self.flow.compute()
        if self.det is not None and self.scored.get('detection'):
            m = self.det.compute()
            names = self.det_classes or [str(i) for i in range(self.det.n)]
            out['detection'] = {'map50': m['map50'], 'map': m['map'],
                                'per_class_ap50': dict(zip(names, m['per_class_ap50']))}
        if self.pq is not None and self.scored.get('instances'):
            out['instances'] = self.pq.compute()
        if self.latency:
            lat = np.array([r[2:] for r in self.latency], np.float64)
            out['latency_ms'] = {'total_p50': float(np.median(lat[:, 0])),
                                 'total_p95': float(np.percentile(lat[:, 0], 95)),
                                 'inference_p50': float(np.median(lat[:, 1])), 'messages': len(lat)}
        return _clean(out)


def _clean(value):
    """JSON-safe: NaN -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def headline(summary: dict) -> dict:
    """The four numbers of the model card (None where the task was not evaluated)."""
    return {'miou': summary.get('segmentation', {}).get('miou'), 'abs_rel': summary.get('depth', {}).get('abs_rel'),
            'epe': summary.get('flow', {}).get('epe'), 'map50': summary.get('detection', {}).get('map50')}


def format_table(summary: dict) -> str:
    """The summary as the aligned text table the tools print."""
    rows = []
    if 'segmentation' in summary:
        rows += [('segmentation mIoU', summary['segmentation']['miou']),
                 ('segmentation pixel accuracy', summary['segmentation']['pixel_accuracy'])]
    if 'depth' in summary:
        d = summary['depth']
        rows += [('depth AbsRel', d['abs_rel']), ('depth RMSE (m)', d['rmse']), ('depth delta<1.25', d['delta1'])]
    if 'flow' in summary:
        rows += [('flow EPE (px)', summary['flow']['epe']), ('flow Fl-all', summary['flow']['fl_all'])]
    if 'detection' in summary:
        rows += [('detection mAP@0.5', summary['detection']['map50']),
                 ('detection mAP@[.5:.95]', summary['detection']['map'])]
    if 'instances' in summary and 'pq' in summary['instances']:
        rows += [('instances PQ', summary['instances']['pq']), ('instances SQ', summary['instances']['sq']),
                 ('instances RQ', summary['instances']['rq'])]
    if 'latency_ms' in summary:
        lat = summary['latency_ms']
        rows += [('latency p50 (ms)', lat['total_p50']), ('latency p95 (ms)', lat['total_p95'])]
    lines = [f"{len(summary['bags'])} bag(s), {summary['frames']} input frames; scored frames: "
             + ', '.join(f'{k} {v}' for k, v in summary['scored_frames'].items())]
    missing = {k: v for k, v in summary['missing_outputs'].items() if v}
    if missing:
        lines.append('input frames without output: ' + ', '.join(f'{k} {v}' for k, v in missing.items()))
    if summary['flow_gap_mismatch']:
        lines.append(f"flow outputs not scored (they span other frames than the ground truth, e.g. after a "
                     f"dropped frame): {summary['flow_gap_mismatch']}")
    lines.append(f"{'metric':<30} {'value':>10}")
    lines += [f'{name:<30} {"n/a" if v is None else format(v, ".3f"):>10}' for name, v in rows]
    return '\n'.join(lines)
