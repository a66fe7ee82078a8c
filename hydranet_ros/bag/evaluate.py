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
import functools
import glob
import heapq
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hydranet_ros.bag import convert
from hydranet_ros.bag.storage import BagError, deserialize, open_reader, read_messages
from hydranet_ros.topics import EXTRA_TOPICS, LABEL_INFO, NODE_NAMESPACE, STATS, TASK_TOPICS
from hydranet_ros.bag.matching import Matcher, decode, label_names, resize  # noqa: F401 (API)
from hydranet_ros.bag.report import write_report
from hydranet_ros.bag.scores import (DISTANCE_BINS, REL_ERROR_BINS, Scores, format_table,  # noqa: F401 (API)
                                     headline)
from hydranet_ros.metrics import DepthMetric, DetectionMetric, FlowMetric, PanopticQuality, SegmentationMetric

#: what is scored, by topic name under each prefix: the four tasks, and instances (PQ; needs the
#: segmentation of both sides too, for each instance's class)
SCORED_TOPICS = {**TASK_TOPICS, 'instances': EXTRA_TOPICS['instances']}


@dataclass
class Options:
    """How to read and score the bags: topic prefixes, the scored depth range, --offline model."""
    gt_prefix: str = '/ground_truth'
    pred_prefix: str = f'/{NODE_NAMESPACE}'
    camera_prefix: str = '/camera'
    depth_range: tuple = (0.5, 80.0)
    offline_model: str | None = None
    offline_sha256: str | None = None    # the pin of a known model (model.registry)
    device: str = 'cpu'
    progress: bool = False


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
        gt = {t: f'{opts.gt_prefix}/{name}' for t, name in SCORED_TOPICS.items()
              if f'{opts.gt_prefix}/{name}' in topics}
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
            pred = {t: f'{opts.pred_prefix}/{name}' for t, name in SCORED_TOPICS.items()
                    if f'{opts.pred_prefix}/{name}' in topics}
            if not pred:
                raise BagError(f'{path} holds no outputs of the node under {opts.pred_prefix}/ (record them while '
                               'playing the bag into the node, or use --offline --model CHECKPOINT)')
        return _score_readers(readers, topics, gt, pred, image_topic, scores, opts)
    finally:
        for r in readers:
            r.close()


def _offline_predictor(opts: Options, tasks, scores: Scores):
    """The checkpoint of --offline, its class names taken as the outputs' class names."""
    from hydranet_ros.inference import Predictor
    from hydranet_ros.model.checkpoint import load_checkpoint
    try:
        loaded = load_checkpoint(opts.offline_model, expected_sha256=opts.offline_sha256)
        if 'instances' not in loaded.metadata.tasks:
            tasks = [t for t in tasks if t != 'instances']          # a model without the instance head
        predictor = Predictor(loaded, device=opts.device, tasks=list(tasks))
    except Exception as exc:
        raise BagError(f'cannot load {opts.offline_model}: {exc}') from None
    scores.seg_classes = predictor.segmentation_names
    scores.det_classes = list(predictor.metadata.detection_classes)
    return predictor


def _read_class_names(readers, scores: Scores, opts: Options):
    """Class names from the latched label_info of ground truth and outputs, read before the
    messages (they may share their log time with the first outputs); they must agree."""
    kinds = {'segmentation': 'seg', 'detection': 'det'}
    labels = {f'{prefix}/{name}': kinds[task] for prefix in (opts.gt_prefix, opts.pred_prefix)
              for task, name in LABEL_INFO.items()}
    for r in readers:
        for conn, _, raw in read_messages(r, set(labels) & {c.topic for c in r.connections}):
            _take_labels(scores, labels[conn.topic], label_names(deserialize(raw, conn.msgtype)))


def _make_metrics(scores: Scores, tasks, opts: Options):
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
    if 'instances' in tasks:
        detected = set(scores.det_classes)
        things = {i: n for i, n in enumerate(scores.seg_classes) if n in detected}
        if not things:
            raise BagError('instances: no segmentation class is a detection class (car, pedestrian, ...) to score')
        scores.pq = PanopticQuality(things)


def _messages_in_log_order(readers, topics: set):
    streams = [read_messages(r, topics & {c.topic for c in r.connections}) for r in readers]
    return heapq.merge(*streams, key=lambda item: item[1]) if len(streams) > 1 else streams[0]


def _score_readers(readers, topics, gt, pred, image_topic, scores, opts):
    """Read the bags once, in log-time order, and score every task both sides have."""
    predictor = _offline_predictor(opts, gt, scores) if opts.offline_model else None
    if predictor is not None:
        pred = {t: None for t in gt if t in predictor.tasks}
    tasks = [t for t in gt if t in pred and (t != 'instances' or 'segmentation' in pred)]
    if not tasks:
        raise BagError(f'ground truth ({", ".join(gt)}) and outputs ({", ".join(pred)}) share no task')
    # topic -> (is a prediction, task)
    by_topic = {topic: (False, t) for t, topic in gt.items() if t in tasks}
    by_topic.update({topic: (True, t) for t, topic in pred.items() if topic is not None and t in tasks})
    stats_topic = f'{opts.pred_prefix}/{STATS}'
    _read_class_names(readers, scores, opts)
    _make_metrics(scores, tasks, opts)
    matcher = Matcher(scores, tasks, opts)
    bar = None
    if opts.progress:
        from tqdm import tqdm
        total = sum(c.msgcount for r in readers for c in r.connections if c.topic == image_topic) or None
        bar = tqdm(total=total, desc=Path(scores.bags[0]).name, unit='frame', leave=False)
    first_stamp = None
    count = 0
    messages = _messages_in_log_order(readers, set(by_topic) | {image_topic, stats_topic})
    for count, (conn, _, raw) in enumerate(messages, 1):
        msg = deserialize(raw, conn.msgtype)
        topic = conn.topic
        stamp = convert.stamp_ns(msg.header.stamp)
        if topic == stats_topic:
            first_stamp = stamp if first_stamp is None else first_stamp
            scores.latency.append((0, (stamp - first_stamp) / 1e9, msg.total_ms, msg.inference_ms, msg.queue_ms))
        elif topic == image_topic:
            scores.frames += 1
            matcher.inputs.add(stamp)
            if bar is not None:
                bar.update(1)
            if predictor is not None:
                _predict_offline(predictor, msg, stamp, tasks, matcher)
        else:
            is_prediction, task = by_topic[topic]
            add = matcher.add_prediction if is_prediction else matcher.add_ground_truth
            try:
                add(stamp, task, decode(task, msg))
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
    result = predictor.predict(rgb, tasks=tasks, stamps_ns=[stamp])[0]
    try:
        _add_result(matcher, stamp, result)
    except ValueError as exc:
        raise BagError(f'the model\'s outputs do not fit the ground truth: {exc}') from None


def _add_result(matcher, stamp, result):
    if result.segmentation is not None:
        matcher.add_prediction(stamp, 'segmentation', result.segmentation)
    if result.depth is not None:
        matcher.add_prediction(stamp, 'depth', result.depth)
    if result.flow is not None:
        matcher.add_prediction(stamp, 'flow', (result.flow, result.flow_previous_stamp_ns))
    if result.instances is not None:
        matcher.add_prediction(stamp, 'instances', result.instances)
    if result.detections is not None:
        d = result.detections
        matcher.add_prediction(stamp, 'detection', (np.array([[x.x1, x.y1, x.x2, x.y2] for x in d]).reshape(-1, 4),
                                                    np.array([x.score for x in d]), np.array([x.class_id for x in d])))


def _evaluate_one(path, opts: Options, ground_truth_bag=None) -> Scores:
    """One bag's Scores (a fleet job: run here or as a Ray task)."""
    return evaluate_bag(path, opts, ground_truth_bag)


def evaluate_bags_report(paths, opts: Options, jobs: int = 1, ground_truth_bag=None, ray: str | None = None):
    """(aggregate Scores of the bags that could be scored, FleetReport naming every bag that
    could not and why). One job per bag: here one after another, or one Ray task each (ray
    'auto' or an address; `jobs` workers when Ray starts locally). The aggregate is merged in the
    order of paths, so it is the same however the jobs ran."""
    from hydranet_ros.fleet import run_jobs
    if ray is None and jobs > 1 and len(paths) > 1:
        ray = _ray_if_installed()
    quiet = Options(**{**opts.__dict__, 'progress': False}) if ray is not None else opts
    report = run_jobs(functools.partial(_evaluate_one, opts=quiet, ground_truth_bag=ground_truth_bag),
                      [str(p) for p in paths], ray=ray, jobs=jobs, progress=opts.progress and ray is not None)
    total = Scores()
    for r in report.results:
        total.merge(r)
    return total, report


def _ray_if_installed() -> str | None:
    try:
        import ray  # noqa: F401
    except ImportError:
        print('evaluate: Ray is not installed: the bags run one after another (pip install ray for -j)',
              file=sys.stderr)
        return None
    return 'auto'


def evaluate_bags(paths, opts: Options, jobs: int = 1, ground_truth_bag=None, ray: str | None = None) -> Scores:
    """All bags, one job each (see evaluate_bags_report); the aggregate Scores. Raises BagError
    naming every bag that failed, with its reason."""
    total, report = evaluate_bags_report(paths, opts, jobs, ground_truth_bag, ray)
    if report.failed:
        raise BagError('; '.join(f'{o.item}: {o.error}' for o in report.failed))
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


def write_results(scores: Scores, out: Path, report: bool = True, failed_bags=None):
    """metrics.json and (unless report is False) report.html with its plots into out;
    returns (summary, report path or None). failed_bags ([{item, reason}]) is recorded too."""
    summary = scores.summary()
    if failed_bags:
        summary['failed_bags'] = list(failed_bags)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'metrics.json').write_text(json.dumps(summary, indent=2) + '\n')
    if not report:
        return summary, None
    return summary, write_report(scores, summary, out)


def parse_thresholds(text: str) -> dict:
    """'miou=0.6,abs_rel=0.15' -> {'miou': 0.6, 'abs_rel': 0.15} (the --fail-under argument)."""
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
    """The `evaluate` command line."""
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
    parser.add_argument('-j', '--jobs', type=int, default=1,
                        help='bags at once: workers of a local Ray instance (default 1: one after another here)')
    parser.add_argument('--ray', metavar='auto|ADDRESS',
                        help='one Ray task per bag: auto (the cluster this machine is in, else a local instance) '
                             'or a cluster address')
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
    from hydranet_ros.fleet import FleetError, shutdown_ray
    try:
        scores, fleet = evaluate_bags_report(bags, opts, args.jobs, args.ground_truth, args.ray)
    except (BagError, FleetError) as exc:
        print(f'evaluate: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('evaluate: interrupted', file=sys.stderr)
        return 130
    finally:
        shutdown_ray()
    if not fleet.results and len(fleet.failed) == 1:   # the one bag given: one line, as for any bad input
        print(f'evaluate: error: {fleet.failed[0].error}', file=sys.stderr)
        return 2
    for o in fleet.failed:
        print(f'evaluate: bag failed: {o.item}: {o.error}', file=sys.stderr)
    if not fleet.results:
        print(f'evaluate: error: none of the {len(bags)} bags could be scored', file=sys.stderr)
        return 2
    out = Path(args.output) if args.output else Path(f'{str(bags[0]).rstrip("/")}_evaluation')
    summary, report = write_results(scores, out, report=not args.no_report, failed_bags=fleet.failures())
    print(format_table(summary))
    print(f'metrics: {out / "metrics.json"}')
    if report is not None:
        print(f'report: {report}')
    failures = check_thresholds(summary, args.fail_under)
    if failures:
        print('evaluate: below thresholds: ' + '; '.join(failures), file=sys.stderr)
        return 1
    if fleet.failed:
        print(f'evaluate: {len(fleet.failed)} of {len(bags)} bags failed (listed in metrics.json: failed_bags)',
              file=sys.stderr)
        return 3
    return 0


if __name__ == '__main__':
    sys.exit(main())
