"""The licence-clean teachers on the real-frame dev set (issue 37; docs/MODEL.md, "Teachers on real
frames"): YOLOX car AP@0.5 on the KITTI-layout frames, whole frame against tiles; each segmentation
teacher and their per-pixel merge on CamVid (train + val): precision and recall of each class they
label, and how much of the frame they label. Dev-set frames are for checking only.

    python -m experiments.real_teachers TEACHER_DIR [--devset real_frames] [--camvid-every 4]

TEACHER_DIR holds yolox_nano.onnx, road_segmentation_adas_0001.onnx and deeplab_v3_voc.onnx
(docs/TRAINING.md says where each comes from); the descriptions are config/teachers/*.yaml.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from hydranet_ros import IGNORE
from hydranet_ros.metrics import DetectionMetric
from hydranet_ros.training import camvid, kitti
from hydranet_ros.training.pseudo_label import merged_segmentation
from hydranet_ros.training.teacher_models import Teacher, TeacherSpec
from hydranet_ros.world.classes import DETECTION_CLASSES, SEGMENTATION_CLASSES

CONFIG = Path(__file__).resolve().parents[1] / 'config' / 'teachers'
SEG_NAMES = [n for n, _ in SEGMENTATION_CLASSES]


def _teacher(folder: Path, onnx: str, desc: str) -> Teacher:
    return Teacher(TeacherSpec.load(folder / onnx, CONFIG / desc))


def detection_ap(teacher: Teacher, folder: Path) -> tuple[float, int, float]:
    """(car AP@0.5, cars, seconds per frame) of a detection teacher on a KITTI-layout folder."""
    lut = teacher.spec.class_lut(list(DETECTION_CLASSES))
    metric, seconds = DetectionMetric(len(DETECTION_CLASSES)), []
    car = DETECTION_CLASSES.index('car')
    for image in sorted((folder / 'image_2').glob('*.png')):
        rgb = cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB)
        start = time.perf_counter()
        boxes, scores, classes = teacher.detection(rgb, lut)
        seconds.append(time.perf_counter() - start)
        gt, gt_cls, ignore = [], [], []
        for lab in kitti.read_object_labels(folder / 'label_2' / f'{image.stem}.txt'):
            kind = lab['type'].lower()
            if kind in ('car', 'van', 'dontcare'):
                gt.append(lab['box'])
                gt_cls.append(car)
                ignore.append(kind != 'car')
        keep = classes == car
        metric.update(boxes[keep], scores[keep], classes[keep], np.array(gt).reshape(-1, 4), np.array(gt_cls, int),
                      np.array(ignore, bool))
    d = metric.compute()
    return d['per_class_ap50'][car], int(d['num_gt'][car]), float(np.median(seconds))


def segmentation_quality(teachers: list, folder: Path, every: int) -> dict:
    """Teachers merged per pixel on CamVid: per shared class they label, precision (of the pixels
    labelled that class) and recall (of CamVid's pixels of it); and the share of pixels labelled."""
    luts = [t.spec.class_lut(SEG_NAMES) for t in teachers]
    theirs, ours = camvid.shared_ids(SEG_NAMES)
    n = len(camvid.SHARED) + 1
    confusion, labelled = np.zeros((n, n + 1), np.int64), []     # the last column: unlabelled
    for item in camvid.frames(folder)[::every]:
        rgb, labels = camvid.read_frame(item)
        pred, _ = merged_segmentation(teachers, luts, rgb)
        truth, mine = theirs[labels], pred != 255
        labelled.append(mine.mean())
        scored = truth != IGNORE
        p = np.where(mine, ours[np.where(mine, pred, 0)], n)[scored]       # n: unlabelled
        t = truth[scored].astype(np.int64)
        confusion += np.bincount(t * (n + 1) + p, minlength=n * (n + 1)).reshape(n, n + 1)
    tp = np.diag(confusion[:, :n])
    out = {}
    for k, name in enumerate(camvid.SHARED_NAMES):
        if confusion[:, k].sum():
            out[name] = (tp[k] / confusion[:, k].sum(), tp[k] / max(confusion[k].sum(), 1))
    return {'classes': out, 'labelled': float(np.mean(labelled))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('teachers', type=Path)
    p.add_argument('--devset', type=Path, default=Path('real_frames'))
    p.add_argument('--camvid-every', type=int, default=4, help='every n-th CamVid frame (the teachers are slow)')
    p.add_argument('--skip-boxes', action='store_true')
    args = p.parse_args(argv)
    print('| detection teacher | car AP@0.5 | cars | s / frame |\n|---|---|---|---|')
    for desc in () if args.skip_boxes else ('yolox_nano.yaml', 'yolox_nano_tiles.yaml'):
        ap, cars, sec = detection_ap(_teacher(args.teachers, 'yolox_nano.onnx', desc), args.devset / 'kitti')
        print(f'| {desc} | {ap:.3f} | {cars} | {sec:.2f} |')
    road = _teacher(args.teachers, 'road_segmentation_adas_0001.onnx', 'road_segmentation_adas_0001.yaml')
    voc = _teacher(args.teachers, 'deeplab_v3_voc.onnx', 'deeplab_v3_voc.yaml')
    print('\n| segmentation teachers | pixels labelled | per class: precision / recall (CamVid) |\n|---|---|---|')
    for name, group in (('road', [road]), ('deeplab tiles', [voc]), ('merged', [road, voc])):
        r = segmentation_quality(group, args.devset / 'camvid', args.camvid_every)
        per = ', '.join(f'{k} {p:.2f} / {q:.2f}' for k, (p, q) in r['classes'].items())
        print(f'| {name} | {100 * r["labelled"]:.0f}% | {per} |')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
