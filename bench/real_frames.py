"""The real-frame check: checkpoints scored on real camera frames in the KITTI object layout.

    python bench/real_frames.py FOLDER [CKPT ...] [--out DIR] [--backend torch|onnxruntime]

FOLDER holds `image_2/`, `calib/`, `label_2/` and `velodyne/` (KITTI object benchmark, training
split layout), read with the package's own KITTI readers (`hydranet_ros.training.kitti`): depth
ground truth is the LiDAR scan projected through P2 (sparse), boxes are the label files. Per
checkpoint (default: the bundled model): car and pedestrian AP@0.5 (every labelled box counts;
Van and Person_sitting boxes and DontCare regions are ignored, as KITTI's evaluation does), metric
depth AbsRel and delta < 1.25 against LiDAR (the camera's focal length from P2), the share of
pixels segmented `car` outside every labelled vehicle box (facades called car), and one picture
per checkpoint (input | segmentation | depth | boxes scoring >= 0.3, a row per frame) in --out. Real frames are
for checking only: never committed, never trained on (docs/MODEL.md names the sources used).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from hydranet_ros.inference import Predictor
from hydranet_ros.metrics import DepthMetric, DetectionMetric
from hydranet_ros.model.registry import resolve
from hydranet_ros.training import kitti
from hydranet_ros.visualize import depth_colormap, draw_detections, segmentation_overlay

#: KITTI type -> (our detection class, ignored?) for the classes the bundled model detects
_GT = {'Car': ('car', False), 'Van': ('car', True), 'Pedestrian': ('pedestrian', False),
       'Person_sitting': ('pedestrian', True)}
#: labelled boxes inside which a `car` pixel is not a false one (vehicles and unlabelled regions)
_VEHICLES = ('Car', 'Van', 'Truck', 'Tram', 'Misc', 'DontCare')
_PICTURE_WIDTH = 2400


def read_frames(folder: Path) -> list[dict]:
    """Every frame of a KITTI object folder: rgb, P2, LiDAR depth, labels."""
    frames = []
    for image_path in sorted((folder / 'image_2').glob('*.png')):
        name = image_path.stem
        calib = kitti.read_calib(folder / 'calib' / f'{name}.txt')
        rgb = cv2.cvtColor(cv2.imread(str(image_path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        r_rect = calib.get('R0_rect', calib.get('R_rect'))
        tr = calib.get('Tr_velo_to_cam', calib.get('Tr_velo_cam'))
        depth = kitti.lidar_depth(kitti.read_velodyne(folder / 'velodyne' / f'{name}.bin'), calib['P2'], r_rect, tr,
                                  rgb.shape[:2])
        labels = kitti.read_object_labels(folder / 'label_2' / f'{name}.txt')
        frames.append({'name': name, 'rgb': rgb, 'p2': calib['P2'].reshape(3, 4), 'depth': depth, 'labels': labels})
    if not frames:
        raise SystemExit(f'real_frames: no image_2/*.png under {folder}')
    return frames


def _gt_boxes(labels, class_names):
    rows = []                                    # (box, class id, ignored)
    for lab in labels:
        if lab['type'] in _GT and _GT[lab['type']][0] in class_names:
            name, ignored = _GT[lab['type']]
            rows.append((lab['box'], class_names.index(name), ignored))
        elif lab['type'] == 'DontCare':          # a detection there counts for no class
            rows += [(lab['box'], c, True) for c in range(len(class_names))]
    return (np.array([r[0] for r in rows]).reshape(-1, 4), np.array([r[1] for r in rows], int),
            np.array([r[2] for r in rows], bool))


def _false_car_share(seg, car_id, labels) -> float:
    allowed = np.zeros(seg.shape, bool)
    for lab in labels:
        if lab['type'] in _VEHICLES:
            x1, y1, x2, y2 = lab['box']
            mx, my = 0.1 * (x2 - x1), 0.1 * (y2 - y1)
            allowed[max(int(y1 - my), 0):int(y2 + my) + 1, max(int(x1 - mx), 0):int(x2 + mx) + 1] = True
    return float(((seg == car_id) & ~allowed).mean())


def score(predictor: Predictor, frames: list[dict]) -> tuple[dict, np.ndarray]:
    """(metrics, picture) of one checkpoint on the frames."""
    names = list(predictor.class_names)
    seg_names = predictor.segmentation_names
    det, dep = DetectionMetric(len(names)), DepthMetric(max_depth=80.0)
    false_car, rows = [], []
    for f in frames:
        res = predictor.predict([f['rgb']], tasks=['segmentation', 'depth', 'detection'],
                                focal_px=float(f['p2'][0, 0]))[0]
        gt_boxes, gt_classes, gt_ignore = _gt_boxes(f['labels'], names)
        boxes = np.array([[d.x1, d.y1, d.x2, d.y2] for d in res.detections]).reshape(-1, 4)
        det.update(boxes, [d.score for d in res.detections], [d.class_id for d in res.detections],
                   gt_boxes, gt_classes, gt_ignore)
        dep.update(res.depth, f['depth'])
        false_car.append(_false_car_share(res.segmentation, seg_names.index('car'), f['labels']))
        colours = [c['color'] for c in predictor.segmentation_classes]
        shown = [d for d in res.detections if d.score >= 0.3]
        row = np.concatenate([f['rgb'], segmentation_overlay(res.segmentation, colours, f['rgb']),
                              depth_colormap(res.depth, 1.0, 60.0), draw_detections(f['rgb'].copy(), shown)], axis=1)
        rows.append(cv2.resize(row, (_PICTURE_WIDTH, round(row.shape[0] * _PICTURE_WIDTH / row.shape[1])),
                               interpolation=cv2.INTER_AREA))   # frames differ in size by a few pixels
    d, z = det.compute(), dep.compute()
    ap = dict(zip(names, d['per_class_ap50']))
    out = {'frames': len(frames), 'car_ap50': ap.get('car'), 'pedestrian_ap50': ap.get('pedestrian'),
           'gt_boxes': dict(zip(names, d.get('num_gt', []))), 'abs_rel': z['abs_rel'], 'delta1': z['delta1'],
           'lidar_pixels': z['pixels'], 'car_pixels_off_vehicles': float(np.mean(false_car))}
    return out, np.concatenate(rows, axis=0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('folder', type=Path)
    parser.add_argument('checkpoints', nargs='*', default=['hydranet_default'])
    parser.add_argument('--out', type=Path, default=Path('real_frames/report'))
    parser.add_argument('--backend', default='torch', choices=('torch', 'onnxruntime'))
    parser.add_argument('--score-threshold', type=float, default=0.05, help='detections kept for AP')
    args = parser.parse_args(argv)
    frames = read_frames(args.folder)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f'{len(frames)} frames from {args.folder}\n')
    print('| model | car AP@0.5 | pedestrian AP@0.5 | depth AbsRel | delta<1.25 | car pixels off vehicles |')
    print('|---|---|---|---|---|---|')
    results = {}
    for ckpt in args.checkpoints:
        path, sha256 = resolve(ckpt)
        predictor = Predictor(path, device='cpu', backend=args.backend, score_threshold=args.score_threshold,
                              expected_sha256=sha256)
        metrics, picture = score(predictor, frames)
        results[predictor.model_id] = metrics
        cv2.imwrite(str(args.out / f'{predictor.model_id.replace("@", "_")}.png'),
                    cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        print(f"| {predictor.model_id} | {metrics['car_ap50']:.3f} | {metrics['pedestrian_ap50']:.3f} | "
              f"{metrics['abs_rel']:.3f} | {metrics['delta1']:.3f} | {100 * metrics['car_pixels_off_vehicles']:.1f}% |")
    (args.out / 'results.json').write_text(json.dumps(results, indent=2))
    print(f'\nper-checkpoint metrics: {args.out / "results.json"}; pictures beside it')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
