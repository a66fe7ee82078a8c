"""Teachers -> pseudo-labels: unlabeled bags (or dataset folders) become a training dataset.

    ros2 run hydranet_ros pseudo-label BAG_OR_FOLDER... --teacher seg.onnx --teacher depth.onnx \\
        --teacher det.onnx -o pseudo/ [--ray auto] [--camera-height 1.65]

Each teacher is an ONNX file run with onnxruntime and described by a small YAML file beside it
(``seg.onnx`` -> ``seg.yaml``; docs/TRAINING.md has the keys):

    task: segmentation | depth | detection
    input: {name: images, size: [H, W], layout: NCHW, color: rgb, scale: 255,
            mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], resize: letterbox}
    output: {name: logits, kind: logits}        # segmentation: logits | classes
    output: {name: depth, kind: metric}         # depth: metric | relative | inverse_relative
    outputs: {boxes: boxes, scores: scores, classes: labels}   # detection
    box_format: xyxy | cxcywh;  normalized: false;  score_threshold: 0.3
    classes: [the teacher's class names in id order]
    class_map: {teacher class: model class}     # default: equal names; others are left out

Output, one folder per input (the FolderDataset layout the trainer reads, `data.type: folder`):
images/, segmentation/ + segmentation_confidence/ (uint8, confidence x 255), depth/ (.npy metres)
+ depth_confidence/, boxes/ (JSON with each box's score), camera.json; and beside them
summary.json (teachers, frames, coverage, mean confidences, failed inputs with reasons) and
preview.png. Labels an input already has (a bag's ground truth, a folder's label files) are kept
with confidence 1 and never overwritten: teachers only fill what is missing.

Confidence: segmentation, the teacher's probability of the chosen class (1 for a teacher that
outputs class ids); depth, agreement of the teacher with itself on the mirrored image
(exp(-|log d - log d_mirrored| / 0.05)); detection, the box's score. Relative depth becomes
metric by a scale per frame: from the camera height over a flat road (--camera-height and
--camera-pitch, with the road from the segmentation labels and the intrinsics from camera_info;
each road pixel's ray meets the road at a known depth), or from sparse metric depth the input
has (median ratio).
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from hydranet_ros import dataset_folder as folder_io

from hydranet_ros.training.depth_scale import GROUND_FITS, scale_from_camera_height  # noqa: F401 (API)
from hydranet_ros.training.teacher_models import (DEPTH_KINDS, SCALE_SOURCES, TASKS, Teacher,  # noqa: F401 (API)
                                                  TeacherError, TeacherSpec)


# --- inputs ---------------------------------------------------------------------------------------

def _input_frames(path: Path, camera: str):
    """(frames [{image, segmentation?, depth?, boxes?, classes?}], names, K or None) of a bag or a folder."""
    if (path / 'metadata.yaml').is_file():
        from hydranet_ros.training.real_data import bag_frames
        items, names = bag_frames(path, camera=camera)
        frames = []
        for it in items:
            f = {'image': it['image'], 'stamp': it['stamp']}
            if it.get('camera_pose') is not None:
                f['camera_pose'] = it['camera_pose']
            if it.get('segmentation') is not None:
                f['segmentation_theirs'] = it['segmentation']
            if it.get('depth') is not None:     # +inf (sky: known to be far) is a label too
                d = it['depth'].astype(np.float32)
                f['depth'] = np.where(~np.isnan(d) & (d > 0), d, np.nan).astype(np.float32)
            if it.get('detection') is not None:
                f['boxes_theirs'] = it['detection']
            frames.append(f)
        return frames, names, _bag_camera_k(path, camera)
    if (path / 'images').is_dir():
        images = folder_io.sequence_images(path)[0][1]
        if not images:
            raise FileNotFoundError(f'{path}: no images in images/')
        frames = []
        for p in images:
            f = {'image': folder_io.read_rgb(p), 'stem': p.stem}
            for key, value in (('segmentation', folder_io.read_segmentation(path, p.stem)),
                               ('depth', folder_io.read_depth(path, p.stem)),
                               ('camera_pose', folder_io.read_pose(path, p.stem))):
                if value is not None:
                    f[key] = value
            boxes = folder_io.read_boxes(path, p.stem)
            if boxes is not None:
                f['boxes'], f['classes'] = boxes[0].astype(np.float32), boxes[1]
            frames.append(f)
        return frames, None, folder_io.read_camera(path).get('k')
    raise FileNotFoundError(f'{path}: neither a bag (metadata.yaml) nor a dataset folder (images/)')


def _bag_camera_k(path: Path, camera: str):
    from hydranet_ros.bag.storage import deserialize, open_reader, read_messages
    reader = open_reader(path)
    try:
        for conn, _, raw in read_messages(reader, {f'{camera}/camera_info'}):
            return [float(v) for v in deserialize(raw, conn.msgtype).k]
    finally:
        reader.close()
    return None


# --- one input -> one sequence folder -------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    """How pseudo-labelling runs (the command line's settings)."""
    out: str
    segmentation_classes: tuple
    detection_classes: tuple
    camera: str = '/camera'
    every: int = 1
    camera_height: float | None = None
    camera_pitch: float = 0.0            # radians, positive looks down (the mount's tilt, REP 103)
    ground_fit: str = 'rays'             # how the camera height gives the scale: rays | plane
    scale_source: str | None = None      # relative depth: camera_height or sparse_depth (default: what is given)
    min_depth_confidence: float = 0.0
    min_segmentation_confidence: float = 0.0   # teacher pixels below become 255 (ignore), not weak labels

    def __post_init__(self):
        # refused here, before any input is read, not at the first frame that needs the scale
        if self.ground_fit not in GROUND_FITS:
            raise ValueError(f'unknown ground fit {self.ground_fit!r} (one of {", ".join(GROUND_FITS)})')
        if not -np.radians(60) < self.camera_pitch < np.radians(60):
            raise ValueError(f'camera_pitch is the mount\'s tilt in radians, within +-60 degrees; '
                             f'got {self.camera_pitch!r}')


def _their_labels_onto_ours(frame: dict, names, opts: Options):
    """A bag's own ground truth mapped onto the model's classes by name (unknown names: ignored)."""
    if names is None:
        return
    if 'segmentation_theirs' in frame:
        lut = np.full(256, 255, np.uint8)
        for i, n in enumerate(names.get('segmentation') or []):
            if n in opts.segmentation_classes:
                lut[i] = opts.segmentation_classes.index(n)
        frame['segmentation'] = lut[frame.pop('segmentation_theirs')]
    if 'boxes_theirs' in frame:
        boxes, classes, _ = frame.pop('boxes_theirs')
        theirs = names.get('detection') or []
        keep = [i for i, c in enumerate(classes) if int(c) < len(theirs) and theirs[int(c)] in opts.detection_classes]
        frame['boxes'] = np.asarray(boxes, np.float32).reshape(-1, 4)[keep]
        frame['classes'] = np.array([opts.detection_classes.index(theirs[int(classes[i])]) for i in keep], np.int64)


def _scale_source(path, teachers: dict, opts: Options, k):
    """How a relative depth teacher's depth is made metric for this input, checked before any
    frame is labelled (None: the teacher is metric, or there is none)."""
    depth_teacher = teachers.get('depth')
    scale_source = opts.scale_source
    if depth_teacher is not None and depth_teacher.spec.kind != 'metric' and scale_source is None:
        scale_source = 'camera_height' if opts.camera_height else 'sparse_depth'
    if scale_source == 'camera_height' and depth_teacher is not None and depth_teacher.spec.kind != 'metric':
        if not opts.camera_height:
            raise ValueError('relative depth scaled by the camera height needs --camera-height')
        if k is None:
            raise ValueError(f'{path}: no camera_info (intrinsics) to scale relative depth by the camera height')
    if depth_teacher is not None and depth_teacher.spec.focal_px and k is None:
        raise ValueError(f'{path}: no camera_info (intrinsics) to rescale the depth teacher to this lens '
                         f'(its depth is metric for a {depth_teacher.spec.focal_px:g} px focal length)')
    return scale_source


def merged_segmentation(teachers, luts, rgb):
    """(labels, confidence) of several segmentation teachers, each knowing some of our classes: per
    pixel, the most confident teacher that gives one of our classes there; a pixel none of them
    labels (a class no teacher knows) stays 255."""
    labels = conf = None
    for teacher, lut in zip(teachers, luts):
        theirs, sure = teacher.segmentation(rgb, lut)
        if labels is None:
            labels, conf = theirs, sure
            continue
        better = (theirs != 255) & ((labels == 255) | (sure > conf))
        labels, conf = np.where(better, theirs, labels).astype(np.uint8), np.where(better, sure, conf)
    return labels, conf.astype(np.float32)


def _fill_segmentation(frame: dict, rgb, teachers: dict, luts: dict, opts: Options, stats: dict):
    """(labels, confidence) of a frame: its own where it has them, the teacher's in the gaps."""
    seg = frame.get('segmentation')
    seg_conf = None if seg is None else (seg != 255).astype(np.float32)
    if 'segmentation' in teachers and (seg is None or (seg == 255).any()):
        labels, conf = merged_segmentation(teachers['segmentation'], luts['segmentation'], rgb)
        unsure = conf < opts.min_segmentation_confidence
        labels, conf = np.where(unsure, 255, labels).astype(np.uint8), np.where(unsure, 0, conf).astype(np.float32)
        if seg is None:
            seg, seg_conf = labels, conf
        else:                       # real labels stay; the teacher fills only their gaps
            gap = seg == 255
            seg, seg_conf = np.where(gap, labels, seg), np.where(gap, conf, 1.0).astype(np.float32)
        stats['pseudo'] += 1
    else:
        stats['real' if seg is not None else 'none'] += 1
    return seg, seg_conf


def _teacher_depth(rgb, depth, seg, k, teacher, scale_source, opts: Options):
    """The depth teacher's metric depth and confidence for a frame, or (None, None) when a relative
    teacher's depth could not be scaled."""
    d, conf = teacher.depth(rgb, focal_px=None if k is None else float(k[0]))
    if teacher.spec.kind != 'metric':
        scale = None
        if scale_source == 'camera_height' and seg is not None and 'road' in opts.segmentation_classes:
            road = seg == opts.segmentation_classes.index('road')
            scale = scale_from_camera_height(d, road, k, opts.camera_height, pitch=opts.camera_pitch,
                                             method=opts.ground_fit)
        elif scale_source == 'sparse_depth' and depth is not None:
            both = np.isfinite(depth) & np.isfinite(d)   # finite: sky (inf) carries no scale
            if both.sum() >= 20:
                scale = float(np.median(depth[both] / d[both]))
        if scale is None:
            return None, None
        d = d * np.float32(scale)
    return d, np.where(conf >= opts.min_depth_confidence, conf, 0).astype(np.float32)


def _fill_depth(frame: dict, rgb, seg, k, teacher, scale_source, opts: Options, stats: dict):
    """(depth, confidence, unscaled) of a frame: its own metric depth (LiDAR) where it has it, the
    teacher's elsewhere; unscaled is True when a relative teacher's depth had no scale."""
    depth = frame.get('depth')
    depth_conf = None if depth is None else (~np.isnan(depth)).astype(np.float32)
    unscaled = False
    if teacher is not None and (depth is None or np.isnan(depth).any()):
        d, conf = _teacher_depth(rgb, depth, seg, k, teacher, scale_source, opts)
        unscaled = d is None
        if d is not None:
            if depth is None:
                depth, depth_conf = d, conf
            else:                   # metric depth the input has (LiDAR) stays
                have = ~np.isnan(depth)
                depth = np.where(have, depth, d).astype(np.float32)
                depth_conf = np.where(have, 1.0, conf).astype(np.float32)
            stats['pseudo'] += 1
            return depth, depth_conf, unscaled
    stats['real' if depth is not None else 'none'] += 1
    return depth, depth_conf, unscaled


def _fill_detection(frame: dict, rgb, teachers: dict, luts: dict, stats: dict):
    """The boxes/<stem>.json items of a frame: its own boxes (the frame's objects are known, the
    teacher is not asked), else the teacher's, else None."""
    boxes = frame.get('boxes')
    if boxes is not None:
        stats['real'] += 1
        return _box_items(boxes, frame['classes'], np.ones(len(boxes)))
    if 'detection' in teachers:
        b, s, c = teachers['detection'].detection(rgb, luts['detection'])
        stats['pseudo'] += 1
        _accumulate(stats, np.asarray(s, np.float32))
        return _box_items(b, c, s)
    stats['none'] += 1
    return None


def label_input(path, specs: tuple, opts: Options) -> dict:
    """Pseudo-label one bag or folder into <out>/<name>/ (a dataset folder); returns its summary.
    A fleet job."""
    path = Path(path)
    teachers = {s.task: Teacher(s) for s in specs if s.task != 'segmentation'}
    luts = {}
    segmenters = [Teacher(s) for s in specs if s.task == 'segmentation']
    if segmenters:             # several, each knowing some classes: merged per pixel
        teachers['segmentation'] = segmenters
        luts['segmentation'] = [t.spec.class_lut(list(opts.segmentation_classes)) for t in segmenters]
    if 'detection' in teachers:
        luts['detection'] = teachers['detection'].spec.class_lut(list(opts.detection_classes))
    frames, names, k = _input_frames(path, opts.camera)
    frames = frames[::max(1, opts.every)]
    scale_source = _scale_source(path, teachers, opts, k)
    out = Path(opts.out) / path.name.rstrip('/')
    writer = folder_io.FolderWriter(out, ('segmentation', 'segmentation_confidence', 'depth', 'depth_confidence',
                                          'boxes'))
    stats = {task: {'real': 0, 'pseudo': 0, 'none': 0, 'confidence_sum': 0.0, 'pixels': 0} for task in TASKS}
    unscaled = posed = 0
    h = w = None
    for n, frame in enumerate(frames):
        _their_labels_onto_ours(frame, names, opts)
        rgb = frame['image']
        h, w = rgb.shape[:2]
        stem = f'{n:06d}'
        writer.image(stem, rgb)
        if frame.get('camera_pose') is not None:     # odometry: camera motion for the photometric terms
            posed += 1
            writer.pose(stem, frame['camera_pose'])
        seg, seg_conf = _fill_segmentation(frame, rgb, teachers, luts, opts, stats['segmentation'])
        if seg is not None:
            writer.segmentation(stem, seg, seg_conf)
            _accumulate(stats['segmentation'], seg_conf[seg != 255])
        depth, depth_conf, no_scale = _fill_depth(frame, rgb, seg, k, teachers.get('depth'), scale_source, opts,
                                                  stats['depth'])
        unscaled += no_scale
        if depth is not None:
            writer.depth(stem, depth.astype(np.float32), depth_conf)
            _accumulate(stats['depth'], depth_conf[~np.isnan(depth)])
        items = _fill_detection(frame, rgb, teachers, luts, stats['detection'])
        if items is not None:
            writer.boxes(stem, items)
    writer.camera({
        'width': w, 'height': h, 'k': k, 'source': str(path), 'pseudo_labels': True,
        'segmentation_classes': list(opts.segmentation_classes), 'detection_classes': list(opts.detection_classes),
        'teachers': {s.task: {'file': Path(s.path).name, 'sha256': s.sha256} for s in specs}})
    for task in TASKS:
        st = stats[task]
        total = st.pop('confidence_sum')
        st['mean_confidence'] = round(total / st['pixels'], 4) if st['pixels'] else None
        st.pop('pixels')
    # frames without odometry (none recorded, no /tf_static mount linking it to the camera, gaps)
    # train their depth with the pose head instead: counted so that a missing mount shows
    return {'input': str(path), 'output': str(out), 'frames': len(frames), 'depth_unscaled_frames': unscaled,
            'odometry_frames': posed,
            'tasks': stats}


def _box_items(boxes, classes, scores) -> list:
    """The boxes/<stem>.json entries FolderDataset reads: corners, class id and score."""
    return folder_io.box_items(boxes, classes, scores)


def _accumulate(st: dict, conf: np.ndarray):
    st['confidence_sum'] += float(np.sum(conf, dtype=np.float64))
    st['pixels'] += int(conf.size)


# --- preview -------------------------------------------------------------------------------------

def write_preview(out: Path, sequences: list, palette, max_rows: int = 4) -> Path | None:
    """preview.png: rows of image | segmentation (dimmed where unsure) | depth | boxes."""
    rows = []
    for seq in sequences:
        if len(rows) >= max_rows:
            break
        folder = Path(seq)
        stems = sorted(p.stem for p in (folder / 'images').glob('*.png'))
        if not stems:
            continue
        stem = stems[len(stems) // 2]
        rgb = cv2.cvtColor(cv2.imread(str(folder / 'images' / f'{stem}.png')), cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        seg_img = np.zeros_like(rgb)
        sp = folder / 'segmentation' / f'{stem}.png'
        if sp.is_file():
            seg = cv2.imread(str(sp), cv2.IMREAD_UNCHANGED)
            conf = cv2.imread(str(folder / 'segmentation_confidence' / f'{stem}.png'), cv2.IMREAD_UNCHANGED)
            colors = np.zeros((256, 3), np.uint8)
            colors[:len(palette)] = palette
            seg_img = (colors[seg] * (0.25 + 0.75 * (conf[..., None] / 255.0))).astype(np.uint8)
        depth_img = np.zeros_like(rgb)
        dp = folder / 'depth' / f'{stem}.npy'
        if dp.is_file():
            d = np.load(dp)
            inv = np.where(np.isfinite(d), 1.0 / np.maximum(d, 0.5), 0)
            depth_img = cv2.applyColorMap((255 * inv / max(float(inv.max()), 1e-6)).astype(np.uint8),
                                          cv2.COLORMAP_MAGMA)[..., ::-1]
        box_img = rgb.copy()
        bp = folder / 'boxes' / f'{stem}.json'
        if bp.is_file():
            for b in json.loads(bp.read_text()):
                cv2.rectangle(box_img, (int(b['x1']), int(b['y1'])), (int(b['x2']) - 1, int(b['y2']) - 1),
                              (255, 255, 0), 1)
                cv2.putText(box_img, f"{b['class_id']}:{b['score']:.2f}", (int(b['x1']), max(8, int(b['y1']) - 2)),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.3, (255, 255, 0), 1)
        rows.append(np.concatenate([rgb, seg_img, depth_img, box_img], axis=1))
    if not rows:
        return None
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    path = out / 'preview.png'
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    return path


# --- the command ---------------------------------------------------------------------------------

def pseudo_label(inputs, teachers, opts: Options, ray: str | None = None, jobs: int = 1, progress: bool = False):
    """Pseudo-label every input (one job each, here or on Ray); writes summary.json and
    preview.png into opts.out and returns the summary. Failed inputs are listed with reasons."""
    from hydranet_ros.fleet import run_jobs
    specs = tuple(teachers)
    tasks = [s.task for s in specs if s.task != 'segmentation']
    if len(set(tasks)) != len(tasks):
        raise TeacherError(f'one depth and one detection teacher at most (several segmentation teachers are merged '
                           f'per pixel), got {[s.task for s in specs]}')
    for s in specs:                      # fail early, here, on a teacher that cannot work
        Teacher(s)
        if s.task == 'segmentation':
            s.class_lut(list(opts.segmentation_classes))
        if s.task == 'detection':
            s.class_lut(list(opts.detection_classes))
    names = [Path(p).name for p in inputs]
    if len(set(names)) != len(names):
        raise ValueError(f'two inputs share a name (their outputs would collide): {names}')
    Path(opts.out).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report = run_jobs(functools.partial(label_input, specs=specs, opts=opts), [str(p) for p in inputs],
                      ray=ray, jobs=jobs, progress=progress, desc='inputs')
    results = report.results
    summary = {
        'teachers': [{'task': s.task, 'file': s.path, 'sha256': s.sha256, 'kind': s.kind} for s in specs],
        'inputs': len(inputs), 'labelled': len(results), 'failed': report.failures(),
        'frames': sum(r['frames'] for r in results), 'engine': report.engine, 'workers': report.workers,
        'seconds': round(time.perf_counter() - start, 2),
        'segmentation_classes': list(opts.segmentation_classes), 'detection_classes': list(opts.detection_classes),
        'sequences': results}
    out = Path(opts.out)
    (out / 'summary.json').write_text(json.dumps(summary, indent=1) + '\n')
    from hydranet_ros.world.classes import SEGMENTATION_CLASSES
    palette = np.array([c for _, c in SEGMENTATION_CLASSES], np.uint8)
    write_preview(out, [r['output'] for r in results], palette)
    return summary


def _model_classes(name: str | None):
    """(segmentation names, detection names) of a checkpoint or known model name (default: the bundled model)."""
    from hydranet_ros.model.checkpoint import load_checkpoint
    from hydranet_ros.model.registry import resolve
    path, _ = resolve(name)
    meta = load_checkpoint(path).metadata
    return tuple(c['name'] for c in meta.segmentation_classes), tuple(meta.detection_classes)


def main(argv=None) -> int:
    """The `pseudo-label` command line."""
    parser = argparse.ArgumentParser(prog='pseudo-label', description=__doc__.split('\n\n')[0])
    parser.add_argument('inputs', nargs='+', help='bags or dataset folders (images/), globs, or folders of bags')
    parser.add_argument('-t', '--teacher', action='append', required=True, metavar='MODEL.onnx[:DESC.yaml]',
                        help='a teacher; its description defaults to the same name with .yaml (repeat: one per task, '
                             'or several segmentation teachers, merged per pixel)')
    parser.add_argument('-o', '--output', required=True, help='folder for the pseudo-labelled dataset')
    parser.add_argument('--model', help='the model whose classes the labels use: checkpoint or known name '
                        '(default hydranet_default)')
    parser.add_argument('--camera-prefix', default='/camera', help='bag topics: PREFIX/image_raw, PREFIX/camera_info')
    parser.add_argument('--every', type=int, default=1, help='label every Nth frame (default 1)')
    parser.add_argument('--camera-height', type=float, help='metres above the road: the scale of relative depth')
    parser.add_argument('--camera-pitch', type=float, default=0.0,
                        help='degrees the camera looks down (the mount on /tf_static; default 0)')
    parser.add_argument('--ground-fit', choices=GROUND_FITS, default='rays',
                        help='camera-height scale: each road ray against a flat road (rays, default) or a '
                        'plane fitted to the road (plane; needs no pitch, but trusts the depth\'s shape)')
    parser.add_argument('--scale-source', choices=SCALE_SOURCES,
                        help='how relative depth becomes metric (default: camera_height when given, else sparse_depth)')
    parser.add_argument('--min-depth-confidence', type=float, default=0.0)
    parser.add_argument('--min-segmentation-confidence', type=float, default=0.0,
                        help='teacher pixels less sure than this are left unlabelled (255) instead of weighted')
    parser.add_argument('--ray', metavar='auto|ADDRESS', help='one Ray task per input: auto or a cluster address')
    parser.add_argument('-j', '--jobs', type=int, default=1, help='workers of a local Ray instance (with --ray)')
    args = parser.parse_args(argv)
    from hydranet_ros.bag.evaluate import expand_bags
    from hydranet_ros.fleet import FleetError, shutdown_ray
    if args.every < 1:
        parser.error('--every must be >= 1')
    if args.camera_height is not None and not args.camera_height > 0:
        parser.error('--camera-height must be > 0')
    if not -60 < args.camera_pitch < 60:
        parser.error('--camera-pitch is the mount\'s tilt in degrees, between -60 and 60')
    try:
        seg_names, det_names = _model_classes(args.model)
        specs = []
        for text in args.teacher:
            onnx_path, _, yaml_path = text.partition(':')
            specs.append(TeacherSpec.load(onnx_path, yaml_path or None))
        opts = Options(out=args.output, segmentation_classes=seg_names, detection_classes=det_names,
                       camera=args.camera_prefix.rstrip('/'), every=args.every, camera_height=args.camera_height,
                       camera_pitch=float(np.radians(args.camera_pitch)), ground_fit=args.ground_fit,
                       scale_source=args.scale_source, min_depth_confidence=args.min_depth_confidence,
                       min_segmentation_confidence=args.min_segmentation_confidence)
        inputs = [p for p in expand_bags(args.inputs)]
        summary = pseudo_label(inputs, specs, opts, ray=args.ray, jobs=args.jobs, progress=sys.stderr.isatty())
    except (TeacherError, FleetError, ValueError, OSError) as exc:
        print(f'pseudo-label: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('pseudo-label: interrupted', file=sys.stderr)
        return 130
    finally:
        shutdown_ray()
    print(f"pseudo-label: {summary['frames']} frames from {summary['labelled']} of {summary['inputs']} inputs "
          f"-> {args.output} ({summary['seconds']} s, {summary['engine']})")
    for f in summary['failed']:
        print(f"pseudo-label: input failed: {f['item']}: {f['reason']}", file=sys.stderr)
    return 3 if summary['failed'] else 0


if __name__ == '__main__':
    sys.exit(main())
