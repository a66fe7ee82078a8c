"""`evaluate`: score the node's outputs in a bag against the bag's ground truth.

Ground truth and predictions are matched by header stamp; the metrics are the ones training
uses (hydranet_ros.metrics). Prints a table, writes metrics.json and a report (report.html
with PNG plots) to --output. With --offline, a checkpoint runs directly on the bag's camera
images (no ROS), for quick regression checks of a model. Several bags (directories, globs or a
folder of bags) are evaluated in parallel processes and aggregated.

Topics: ground truth under --ground-truth-prefix (default /ground_truth, as make-bag writes),
outputs under --prediction-prefix (default /hydranet, as the node publishes), camera under
--camera-prefix (default /camera). See docs/BAGS.md.
"""
from __future__ import annotations

import argparse
import glob
import heapq
import json
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from hydranet_ros.bag import convert
from hydranet_ros.bag.storage import BagError, deserialize, open_reader, read_messages
from hydranet_ros.topics import LABEL_INFO, NODE_NAMESPACE, STATS, TASK_TOPICS
from hydranet_ros.metrics import DepthMetric, DetectionMetric, FlowMetric, SegmentationMetric

#: Relative depth error histogram bins and distance bins (metres) of the report.
REL_ERROR_BINS = np.linspace(-1.0, 1.0, 81)
DISTANCE_BINS = np.array([0.5, 5, 10, 15, 20, 30, 40, 60, 80])


@dataclass
class Options:
    gt_prefix: str = '/ground_truth'
    pred_prefix: str = f'/{NODE_NAMESPACE}'
    camera_prefix: str = '/camera'
    depth_range: tuple = (0.5, 80.0)
    offline_model: str | None = None
    offline_sha256: str | None = None    # the pin of a known model (model.registry)
    device: str = 'cpu'
    progress: bool = False


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
        for name in ('seg', 'depth', 'flow', 'det'):
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


# --- reading ---------------------------------------------------------------------------------

def _resize(array: np.ndarray, shape, nearest: bool) -> np.ndarray:
    import cv2
    if array.shape[:2] == tuple(shape):
        return array
    return cv2.resize(array, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)


def _decode(kind: str, msg):
    """A ground-truth or prediction message as the arrays the metrics take."""
    from hydranet_ros.image_codec import ImageConversionError, image_to_numpy
    try:
        if kind in ('segmentation', 'depth'):
            return image_to_numpy(msg)   # a view on the message buffer; metrics only read it
        if kind == 'flow':
            return image_to_numpy(msg.flow), convert.stamp_ns(msg.previous_stamp)
        if kind == 'detection':
            return convert.detection_boxes(msg)
    except ImageConversionError as exc:
        raise BagError(f'a {kind} image in the bag is malformed: {exc}') from None
    raise KeyError(kind)


class _Matcher:
    """Pairs ground truth with predictions per stamp and scores complete pairs.

    The node answers frames in stamp order and ground truth comes in stamp order, so once a
    task's output (or ground truth) for a stamp arrives, whatever of that task still waits at an
    earlier stamp will never be paired: it is let go at once, so memory stays bounded however
    many frames the node dropped."""

    def __init__(self, scores: Scores, tasks, opts: Options):
        self.s, self.tasks, self.opts = scores, tasks, opts
        self.pending = {}     # stamp -> {'gt:<task>': ..., 'pred:<task>': ..., 'done:<task>': True}
        self.inputs = set()
        self.seen_pred = {t: set() for t in tasks}
        self.abandoned_flow = 0   # flow ground truth let go without an output

    def add(self, stamp: int, key: str, value):
        role, task = key.split(':')
        if role == 'pred':
            if stamp in self.seen_pred[task]:
                self.s.duplicates[task] = self.s.duplicates.get(task, 0) + 1
                return
            self.seen_pred[task].add(stamp)
        entry = self.pending.setdefault(stamp, {})
        entry[key] = value
        if f'gt:{task}' in entry and f'pred:{task}' in entry:
            self.score(task, entry.pop(f'gt:{task}'), entry.pop(f'pred:{task}'))
            entry[f'done:{task}'] = True
        self._settle(stamp)
        # Both streams come in stamp order: what waits at an earlier stamp for the other side
        # (ground truth for an output, an output for ground truth) will never be paired.
        other = f'gt:{task}' if role == 'pred' else f'pred:{task}'
        for earlier in [st for st, e in self.pending.items() if st < stamp and other in e]:
            self.pending[earlier].pop(other)
            self.pending[earlier][f'done:{task}'] = True
            self.abandoned_flow += task == 'flow' and role == 'pred'
            self._settle(earlier)

    def _settle(self, stamp):
        if all(f'done:{t}' in self.pending[stamp] for t in self.tasks):
            del self.pending[stamp]

    def score(self, task, gt, pred):
        s = self.s
        if task == 'segmentation':
            s.seg.update(_resize(pred, gt.shape, True), gt)
        elif task == 'depth':
            pred = _resize(pred.astype(np.float32), gt.shape, True)
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
            if abs(gprev - pprev) > 1000:   # 1 us: producers that round stamps through float seconds
                s.flow_gap_mismatch += 1   # the node's flow spans other frames (a dropped frame)
                return
            if pflow.shape[:2] != gflow.shape[:2]:
                sy, sx = gflow.shape[0] / pflow.shape[0], gflow.shape[1] / pflow.shape[1]
                pflow = _resize(pflow, gflow.shape[:2], False) * np.array([sx, sy], np.float32)
            s.flow.update(pflow, gflow)
            valid = np.isfinite(gflow).all(-1)
            err = np.where(valid, np.linalg.norm(np.nan_to_num(pflow - gflow), axis=-1), 0.0)
            if s.flow_epe_map is None:
                s.flow_epe_map = np.zeros((*gflow.shape[:2], 2))
            if s.flow_epe_map.shape[:2] == gflow.shape[:2]:
                s.flow_epe_map[..., 0] += err
                s.flow_epe_map[..., 1] += valid
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
                                                    if 'gt:flow' in e and 'pred:flow' not in e)
            else:
                missing = sum(1 for st in self.inputs if st not in self.seen_pred[task])
            self.s.missing[task] = self.s.missing.get(task, 0) + missing


def _label_names(msg) -> list:
    return [c.class_name for c in sorted(msg.class_map, key=lambda c: c.class_id)]


def evaluate_bag(path, opts: Options, ground_truth_bag=None) -> Scores:
    """Score one bag (and optionally ground truth from a second bag)."""
    reader = open_reader(path)
    readers = [reader]
    try:
        if ground_truth_bag is not None:
            readers.append(open_reader(ground_truth_bag))
        topics = {}
        for r in readers:
            for c in r.connections:
                topics.setdefault(c.topic, c.msgtype)
        gt = {t: f'{opts.gt_prefix}/{name}' for t, name in TASK_TOPICS.items() if f'{opts.gt_prefix}/{name}' in topics}
        if not gt:
            expected = ', '.join(f'{opts.gt_prefix}/{n}' for n in TASK_TOPICS.values())
            raise BagError(f'{path} has no ground truth (no topics {expected}; make-bag writes them)')
        image_topic = f'{opts.camera_prefix}/image_raw'
        scores = Scores(bags=[str(path)])
        if opts.offline_model:
            if image_topic not in topics:
                raise BagError(f'{path} has no camera images on {image_topic} to run the model on')
            pred = {}
        else:
            pred = {t: f'{opts.pred_prefix}/{name}' for t, name in TASK_TOPICS.items()
                    if f'{opts.pred_prefix}/{name}' in topics}
            if not pred:
                raise BagError(f'{path} holds no outputs of the node under {opts.pred_prefix}/ (record them while '
                               'playing the bag into the node, or use --offline --model CHECKPOINT)')
        return _score_readers(readers, topics, gt, pred, image_topic, scores, opts)
    finally:
        for r in readers:
            r.close()


def _score_readers(readers, topics, gt, pred, image_topic, scores, opts):
    predictor = None
    if opts.offline_model:
        from hydranet_ros.inference import Predictor
        try:
            predictor = Predictor(opts.offline_model, device=opts.device, tasks=list(gt),
                                  expected_sha256=opts.offline_sha256)
        except Exception as exc:
            raise BagError(f'cannot load {opts.offline_model}: {exc}') from None
        pred = {t: None for t in gt}
        scores.seg_classes = [c['name'] for c in predictor.metadata.segmentation_classes]
        scores.det_classes = list(predictor.metadata.detection_classes)
    tasks = [t for t in gt if t in pred]
    if not tasks:
        raise BagError(f'ground truth ({", ".join(gt)}) and outputs ({", ".join(pred)}) share no task')
    by_topic = {topic: f'gt:{t}' for t, topic in gt.items() if t in tasks}
    by_topic.update({topic: f'pred:{t}' for t, topic in pred.items() if topic is not None and t in tasks})
    kinds = {'segmentation': 'seg', 'detection': 'det'}
    labels = {f'{prefix}/{name}': kinds[task] for prefix in (opts.gt_prefix, opts.pred_prefix)
              for task, name in LABEL_INFO.items()}
    stats_topic = f'{opts.pred_prefix}/{STATS}'
    total = sum(c.msgcount for r in readers for c in r.connections if c.topic == image_topic) or None
    bar = None
    if opts.progress:
        from tqdm import tqdm
        bar = tqdm(total=total, desc=Path(scores.bags[0]).name, unit='frame', leave=False)
    # Class names first (latched label_info may share its log time with the first outputs).
    for r in readers:
        for conn, _, raw in read_messages(r, set(labels) & {c.topic for c in r.connections}):
            _take_labels(scores, labels[conn.topic], _label_names(deserialize(raw, conn.msgtype)))
    if 'segmentation' in tasks:
        if not scores.seg_classes:
            raise BagError('the number of segmentation classes is unknown: the bag has no label_info')
        scores.seg = SegmentationMetric(len(scores.seg_classes))
    if 'detection' in tasks:
        if not scores.det_classes:
            raise BagError('the number of detection classes is unknown: the bag has no label_info')
        scores.det = DetectionMetric(len(scores.det_classes))
    if 'depth' in tasks:
        scores.depth = DepthMetric(*opts.depth_range)
    if 'flow' in tasks:
        scores.flow = FlowMetric()
    matcher = _Matcher(scores, tasks, opts)
    wanted = set(by_topic) | {image_topic, stats_topic}
    streams = [read_messages(r, wanted & {c.topic for c in r.connections}) for r in readers]
    merged = heapq.merge(*streams, key=lambda item: item[1]) if len(streams) > 1 else streams[0]
    first_stamp = None
    count = 0
    for count, (conn, _, raw) in enumerate(merged, 1):
        msg = deserialize(raw, conn.msgtype)
        topic = conn.topic
        stamp = convert.stamp_ns(msg.header.stamp)
        if topic == stats_topic:
            first_stamp = stamp if first_stamp is None else first_stamp
            scores.latency.append((0, (stamp - first_stamp) / 1e9, msg.total_ms, msg.inference_ms, msg.queue_ms))
            continue
        if topic == image_topic:
            scores.frames += 1
            matcher.inputs.add(stamp)
            if bar is not None:
                bar.update(1)
            if predictor is not None:
                _predict_offline(predictor, msg, stamp, tasks, matcher)
            continue
        kind = by_topic[topic]
        try:
            matcher.add(stamp, kind, _decode(kind.split(':')[1], msg))
        except ValueError as exc:     # e.g. class ids beyond the label set
            raise BagError(f'{topic} at stamp {stamp}: {exc}') from None
    if bar is not None:
        bar.close()
    if count == 0:
        raise BagError(f'{scores.bags[0]} holds no messages on the topics evaluated')
    matcher.finish()
    return scores


def _take_labels(scores, kind: str, names: list):
    known = scores.seg_classes if kind == 'seg' else scores.det_classes
    if not known:
        known[:] = names
    elif known != names:
        what = 'segmentation' if kind == 'seg' else 'detection'
        raise BagError(f'{what} classes differ between the ground truth and the outputs '
                       f'({len(names)} vs {len(known)}: {names[:4]}... vs {known[:4]}...); '
                       'the metrics need the same class ids')


def _predict_offline(predictor, msg, stamp, tasks, matcher):
    from hydranet_ros.image_codec import ImageConversionError, image_to_rgb
    try:
        rgb = image_to_rgb(msg)
    except ImageConversionError as exc:
        raise BagError(f'a camera image in the bag is malformed: {exc}') from None
    result = predictor.predict(rgb, tasks=tasks, stamps=[stamp / 1e9])[0]
    try:
        _add_result(matcher, stamp, result)
    except ValueError as exc:
        raise BagError(f'the model\'s outputs do not fit the ground truth: {exc}') from None


def _add_result(matcher, stamp, result):
    if result.segmentation is not None:
        matcher.add(stamp, 'pred:segmentation', result.segmentation)
    if result.depth is not None:
        matcher.add(stamp, 'pred:depth', result.depth)
    if result.flow is not None:
        matcher.add(stamp, 'pred:flow', (result.flow, int(round(result.flow_previous_stamp * 1e9))))
    if result.detections is not None:
        d = result.detections
        matcher.add(stamp, 'pred:detection', (np.array([[x.x1, x.y1, x.x2, x.y2] for x in d]).reshape(-1, 4),
                                              np.array([x.score for x in d]), np.array([x.class_id for x in d])))


def _evaluate_job(args):
    path, opts, ground_truth_bag = args
    try:
        return evaluate_bag(path, opts, ground_truth_bag), None
    except BagError as exc:
        return None, str(exc)


def evaluate_bags(paths, opts: Options, jobs: int = 1, ground_truth_bag=None) -> Scores:
    """All bags, in parallel processes when there are several; the aggregate Scores."""
    if len(paths) == 1 or jobs <= 1:
        results = []
        for p in paths:
            results.append(evaluate_bag(p, opts, ground_truth_bag))
    else:
        quiet = Options(**{**opts.__dict__, 'progress': False})
        with ProcessPoolExecutor(max_workers=min(jobs, len(paths)), mp_context=get_context('spawn')) as pool:
            outcomes = pool.map(_evaluate_job, [(p, quiet, ground_truth_bag) for p in paths])
            if opts.progress:
                from tqdm import tqdm
                outcomes = tqdm(outcomes, total=len(paths), desc='bags', unit='bag')
            results = []
            for scores, error in outcomes:
                if error:
                    raise BagError(error)
                results.append(scores)
    total = Scores()
    for r in results:
        total.merge(r)
    return total


def expand_bags(items) -> list:
    """Bag directories from paths, globs, or folders holding bags."""
    found = []
    for item in items:
        matches = sorted(glob.glob(item)) or [item]
        for m in matches:
            p = Path(m)
            if p.is_dir() and not (p / 'metadata.yaml').exists():
                inner = sorted(q.parent for q in p.glob('*/metadata.yaml'))
                found += inner or [p]
            else:
                found.append(p)
    return found


def format_table(summary: dict) -> str:
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


def write_results(scores: Scores, out: Path, report: bool = True):
    """metrics.json and (unless report is False) report.html with its plots into out;
    returns (summary, report path or None)."""
    summary = scores.summary()
    out.mkdir(parents=True, exist_ok=True)
    (out / 'metrics.json').write_text(json.dumps(summary, indent=2) + '\n')
    if not report:
        return summary, None
    from hydranet_ros.bag.report import write_report
    return summary, write_report(scores, summary, out)


def parse_thresholds(text: str) -> dict:
    out = {}
    for item in filter(None, text.split(',')):
        key, sep, value = item.partition('=')
        if not sep or key not in ('miou', 'abs_rel', 'epe', 'map50'):
            raise argparse.ArgumentTypeError(f"thresholds are miou=, abs_rel=, epe=, map50= pairs, got '{item}'")
        out[key] = float(value)
    return out


def check_thresholds(summary: dict, thresholds: dict) -> list:
    """Reasons the headline metrics miss the thresholds (higher is better for miou and map50)."""
    head = headline(summary)
    failures = []
    for key, limit in thresholds.items():
        value = head.get(key)
        if value is None:
            failures.append(f'{key} was not evaluated')
        elif (key in ('abs_rel', 'epe') and value > limit) or (key in ('miou', 'map50') and value < limit):
            failures.append(f'{key} {value:.3f} misses {limit:g}')
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='evaluate', description=__doc__.split('\n\n')[0])
    parser.add_argument('bags', nargs='+', help='bag directories, globs, or folders of bags')
    parser.add_argument('-o', '--output', help='folder for metrics.json and the report (default: <bag>_evaluation)')
    parser.add_argument('--ground-truth', metavar='BAG',
                        help='take ground truth from this bag instead; every bag of outputs is scored against it')
    parser.add_argument('--offline', action='store_true', help='run --model on the camera images (no ROS)')
    parser.add_argument('--model', help='checkpoint file or known name for --offline (default: hydranet_default)')
    parser.add_argument('--device', default='cpu', help='device for --offline (default cpu)')
    parser.add_argument('--ground-truth-prefix', default='/ground_truth')
    parser.add_argument('--prediction-prefix', default=Options.pred_prefix)
    parser.add_argument('--camera-prefix', default='/camera')
    parser.add_argument('--depth-range', type=float, nargs=2, default=(0.5, 80.0), metavar=('MIN', 'MAX'),
                        help='ground-truth depths scored, metres (default 0.5 80)')
    parser.add_argument('-j', '--jobs', type=int, default=2, help='parallel processes for several bags (default 2)')
    parser.add_argument('--no-report', action='store_true', help='metrics.json only, no plots')
    parser.add_argument('--fail-under', type=parse_thresholds, default={}, metavar='miou=0.6,abs_rel=0.15,...',
                        help='exit 1 when a headline metric misses its threshold')
    args = parser.parse_args(argv)
    if args.model and not args.offline:
        parser.error('--model needs --offline')
    if not 0 < args.depth_range[0] < args.depth_range[1]:
        parser.error('--depth-range needs 0 < MIN < MAX')
    model, pin = None, None
    if args.offline:
        from hydranet_ros.model.registry import resolve
        model, pin = resolve(args.model)
        if not model.is_file():
            print(f'evaluate: error: no checkpoint at {model}', file=sys.stderr)
            return 2
    opts = Options(gt_prefix=args.ground_truth_prefix.rstrip('/'), pred_prefix=args.prediction_prefix.rstrip('/'),
                   camera_prefix=args.camera_prefix.rstrip('/'), depth_range=tuple(args.depth_range),
                   offline_model=str(model) if model else None, offline_sha256=pin, device=args.device,
                   progress=sys.stderr.isatty())
    bags = expand_bags(args.bags)
    try:
        scores = evaluate_bags(bags, opts, args.jobs, args.ground_truth)
    except BagError as exc:
        print(f'evaluate: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('evaluate: interrupted', file=sys.stderr)
        return 130
    out = Path(args.output) if args.output else Path(f'{str(bags[0]).rstrip("/")}_evaluation')
    summary, report = write_results(scores, out, report=not args.no_report)
    print(format_table(summary))
    print(f'metrics: {out / "metrics.json"}')
    if report is not None:
        print(f'report: {report}')
    failures = check_thresholds(summary, args.fail_under)
    if failures:
        print('evaluate: below thresholds: ' + '; '.join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
