"""The real-frame check: checkpoints scored on a dev set of real camera frames.

    python bench/real_frames.py [DEVSET] [CKPT ...] [--out DIR] [--backend torch|onnxruntime]

DEVSET (default `real_frames/`, gitignored) holds any of these sets, each read with the package's
own readers (docs/MODEL.md, "The real-frame dev set", names where each comes from):
- `camvid/`: CamVid's train and val splits in the SegNet layout (`hydranet_ros.training.camvid`):
  segmentation IoU over the eight classes the model shares with CamVid, and their mean. Its test
  split is reserved for an independent check and never read.
- `nuscenes/`, `kitti/` (or DEVSET itself when it holds `image_2/`): the KITTI object layout
  (`hydranet_ros.training.kitti`): car and pedestrian AP@0.5 from `label_2/` (type names in any
  case; Van and Person_sitting boxes and DontCare regions are ignored, as KITTI's evaluation does),
  the share of pixels segmented `car` outside every labelled vehicle box, and, where `calib/` and
  `velodyne/` are there, metric depth AbsRel and delta < 1.25 against the LiDAR scan projected
  through P2 (the frame's focal length from P2; without calib the model's own focal length is used).
Per checkpoint: one table row per set plus car AP pooled over the KITTI-layout sets, a
`results.json`, and one picture per set (input | segmentation | depth | boxes scoring >= 0.3, a few
frames spread over the set). Real frames are for checking only: never committed, never trained on.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from hydranet_ros.inference import Predictor
from hydranet_ros.metrics import DepthMetric, DetectionMetric, SegmentationMetric
from hydranet_ros.model.registry import resolve
from hydranet_ros.training import camvid, kitti
from hydranet_ros.visualize import depth_colormap, draw_detections, segmentation_overlay

#: KITTI type (lower case) -> (our detection class, ignored?) for the classes the bundled model detects
_GT = {'car': ('car', False), 'van': ('car', True), 'pedestrian': ('pedestrian', False),
       'person_sitting': ('pedestrian', True)}
#: labelled boxes inside which a `car` pixel is not a false one (vehicles and unlabelled regions)
_VEHICLES = ('car', 'van', 'truck', 'tram', 'misc', 'dontcare', 'bus', 'trailer', 'construction_vehicle')
_PICTURE_WIDTH = 2400
_PICTURE_ROWS = 6
_KITTI_SETS = ('kitti', 'nuscenes')


def kitti_layout_frames(folder: Path):
    """Each frame of a KITTI-object-layout folder: rgb, P2 (or None), LiDAR depth (or None), labels."""
    images = sorted((folder / 'image_2').glob('*.png'))
    if not images:
        raise SystemExit(f'real_frames: no image_2/*.png under {folder}')
    for image_path in images:
        name = image_path.stem
        rgb = cv2.cvtColor(cv2.imread(str(image_path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        p2 = depth = None
        calib_path, scan_path = folder / 'calib' / f'{name}.txt', folder / 'velodyne' / f'{name}.bin'
        if calib_path.is_file():
            calib = kitti.read_calib(calib_path)
            p2 = calib['P2'].reshape(3, 4)
            if scan_path.is_file():
                depth = kitti.lidar_depth(kitti.read_velodyne(scan_path), calib['P2'],
                                          calib.get('R0_rect', calib.get('R_rect')),
                                          calib.get('Tr_velo_to_cam', calib.get('Tr_velo_cam')), rgb.shape[:2])
        yield {'name': name, 'rgb': rgb, 'p2': p2, 'depth': depth,
               'labels': kitti.read_object_labels(folder / 'label_2' / f'{name}.txt')}


def _gt_boxes(labels, class_names):
    rows = []                                    # (box, class id, ignored)
    for lab in labels:
        kind = lab['type'].lower()
        if kind in _GT and _GT[kind][0] in class_names:
            name, ignored = _GT[kind]
            rows.append((lab['box'], class_names.index(name), ignored))
        elif kind == 'dontcare':                 # a detection there counts for no class
            rows += [(lab['box'], c, True) for c in range(len(class_names))]
    return (np.array([r[0] for r in rows]).reshape(-1, 4), np.array([r[1] for r in rows], int),
            np.array([r[2] for r in rows], bool))


def _false_car_share(seg, car_id, labels) -> float:
    allowed = np.zeros(seg.shape, bool)
    for lab in labels:
        if lab['type'].lower() in _VEHICLES:
            x1, y1, x2, y2 = lab['box']
            mx, my = 0.1 * (x2 - x1), 0.1 * (y2 - y1)
            allowed[max(int(y1 - my), 0):int(y2 + my) + 1, max(int(x1 - mx), 0):int(x2 + mx) + 1] = True
    return float(((seg == car_id) & ~allowed).mean())


class _Picture:
    """A few rows (input | segmentation | depth | boxes) spread over a set of `count` frames."""

    def __init__(self, predictor: Predictor, count: int):
        self.colours = [c['color'] for c in predictor.segmentation_classes]
        self.pick = set(np.linspace(0, count - 1, min(_PICTURE_ROWS, count)).round().astype(int).tolist())
        self.rows = []

    def add(self, k: int, rgb, res):
        if k not in self.pick:
            return
        shown = [d for d in res.detections if d.score >= 0.3]
        row = np.concatenate([rgb, segmentation_overlay(res.segmentation, self.colours, rgb),
                              depth_colormap(res.depth, 1.0, 60.0), draw_detections(rgb.copy(), shown)], axis=1)
        self.rows.append(cv2.resize(row, (_PICTURE_WIDTH, round(row.shape[0] * _PICTURE_WIDTH / row.shape[1])),
                                    interpolation=cv2.INTER_AREA))

    def image(self):
        return np.concatenate(self.rows, axis=0)


def score_kitti_layout(predictor: Predictor, folder: Path, det: DetectionMetric) -> tuple[dict, np.ndarray]:
    """(metrics, picture) of one KITTI-layout set; `det` (shared across sets) gets its boxes too."""
    names = list(predictor.class_names)
    own, dep = DetectionMetric(len(names)), DepthMetric(max_depth=80.0)
    car_id = predictor.segmentation_names.index('car')
    count = len(list((folder / 'image_2').glob('*.png')))
    picture, false_car = _Picture(predictor, count), []
    for k, f in enumerate(kitti_layout_frames(folder)):
        focal = None if f['p2'] is None else float(f['p2'][0, 0])
        res = predictor.predict([f['rgb']], tasks=['segmentation', 'depth', 'detection'], focal_px=focal)[0]
        gt = _gt_boxes(f['labels'], names)
        boxes = np.array([[d.x1, d.y1, d.x2, d.y2] for d in res.detections]).reshape(-1, 4)
        scores, classes = [d.score for d in res.detections], [d.class_id for d in res.detections]
        for metric in (own, det):
            metric.update(boxes, scores, classes, *gt)
        if f['depth'] is not None:
            dep.update(res.depth, f['depth'])
        false_car.append(_false_car_share(res.segmentation, car_id, f['labels']))
        picture.add(k, f['rgb'], res)
    d, z = own.compute(), dep.compute() if dep.count else {}
    ap = dict(zip(names, d['per_class_ap50']))
    return ({'frames': count, 'car_ap50': ap.get('car'), 'pedestrian_ap50': ap.get('pedestrian'),
             'gt_boxes': dict(zip(names, d.get('num_gt', []))), 'abs_rel': z.get('abs_rel'),
             'delta1': z.get('delta1'), 'lidar_pixels': z.get('pixels', 0),
             'car_pixels_off_vehicles': float(np.mean(false_car))}, picture.image())


def score_camvid(predictor: Predictor, folder: Path) -> tuple[dict, np.ndarray]:
    """(metrics, picture) on CamVid's train and val splits: IoU over the eight shared classes."""
    items = camvid.frames(folder, splits=('train', 'val'))     # never 'test': reserved
    theirs, ours = camvid.shared_ids(predictor.segmentation_names)
    seg = SegmentationMetric(len(camvid.SHARED) + 1)           # + `other`: model classes CamVid lacks
    picture = _Picture(predictor, len(items))
    for k, item in enumerate(items):
        rgb, labels = camvid.read_frame(item)
        shown = k in picture.pick                               # depth and boxes only for the picture
        res = predictor.predict([rgb], tasks=['segmentation', 'depth', 'detection'] if shown else ['segmentation'])[0]
        seg.update(ours[res.segmentation], theirs[labels])
        picture.add(k, rgb, res)
    iou = seg.compute()['per_class_iou'][:len(camvid.SHARED)]
    return ({'frames': len(items), 'miou8': float(np.nanmean(iou)),
             'iou': dict(zip(camvid.SHARED_NAMES, [float(v) for v in iou]))}, picture.image())


def dev_sets(root: Path) -> dict:
    """{set name: folder} of the sets present under root (root itself when it is one KITTI-layout set)."""
    if (root / 'image_2').is_dir():
        return {root.name: root}
    found = {name: root / name for name in ('camvid', *_KITTI_SETS) if (root / name).is_dir()}
    if not found:
        raise SystemExit(f'real_frames: {root} holds none of camvid/, kitti/, nuscenes/ (nor image_2/)')
    return found


def score(predictor: Predictor, sets: dict, out: Path) -> dict:
    """Every set's metrics for one checkpoint; pictures written to out."""
    results = {}
    pooled = DetectionMetric(len(predictor.class_names))
    for name, folder in sets.items():
        metrics, picture = score_camvid(predictor, folder) if name == 'camvid' else \
            score_kitti_layout(predictor, folder, pooled)
        results[name] = metrics
        cv2.imwrite(str(out / f'{predictor.model_id.replace("@", "_")}_{name}.png'),
                    cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    if any(n != 'camvid' for n in sets):
        d = pooled.compute()
        ap = dict(zip(predictor.class_names, d['per_class_ap50']))
        results['boxes_pooled'] = {'car_ap50': ap.get('car'), 'pedestrian_ap50': ap.get('pedestrian'),
                                   'gt_boxes': dict(zip(predictor.class_names, d.get('num_gt', [])))}
    return results


def _fmt(v, pattern='{:.3f}'):
    return '-' if v is None or (isinstance(v, float) and np.isnan(v)) else pattern.format(v)


def print_rows(model_id: str, results: dict):
    for name, m in results.items():
        if name == 'camvid':
            per = ', '.join(f'{k} {_fmt(v, "{:.2f}")}' for k, v in m['iou'].items())
            print(f"| {model_id} | camvid ({m['frames']} frames) | mIoU8 {_fmt(m['miou8'])} ({per}) |")
        elif name == 'boxes_pooled':
            print(f"| {model_id} | boxes pooled ({m['gt_boxes'].get('car', 0)} cars) | car AP@0.5 "
                  f"{_fmt(m['car_ap50'])}, pedestrian AP@0.5 {_fmt(m['pedestrian_ap50'])} |")
        else:
            print(f"| {model_id} | {name} ({m['frames']} frames, {m['gt_boxes'].get('car', 0)} cars) | car AP@0.5 "
                  f"{_fmt(m['car_ap50'])}, depth AbsRel {_fmt(m['abs_rel'])} (delta<1.25 {_fmt(m['delta1'])}), "
                  f"car pixels off vehicles {_fmt(100 * m['car_pixels_off_vehicles'], '{:.1f}%')} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('devset', type=Path, nargs='?', default=Path('real_frames'))
    parser.add_argument('checkpoints', nargs='*', default=['hydranet_default'])
    parser.add_argument('--out', type=Path, default=Path('real_frames/report'))
    parser.add_argument('--backend', default='torch', choices=('torch', 'onnxruntime'))
    parser.add_argument('--score-threshold', type=float, default=0.05, help='detections kept for AP')
    args = parser.parse_args(argv)
    sets = dev_sets(args.devset)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f'sets under {args.devset}: {", ".join(sets)}\n')
    print('| model | set | metrics |')
    print('|---|---|---|')
    results = {}
    for ckpt in args.checkpoints:
        path, sha256 = resolve(ckpt)
        predictor = Predictor(path, device='cpu', backend=args.backend, score_threshold=args.score_threshold,
                              expected_sha256=sha256)
        results[predictor.model_id] = score(predictor, sets, args.out)
        print_rows(predictor.model_id, results[predictor.model_id])
    (args.out / 'results.json').write_text(json.dumps(results, indent=2))
    print(f'\nper-checkpoint metrics: {args.out / "results.json"}; pictures beside it')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
