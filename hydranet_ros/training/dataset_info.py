"""`ros2 run hydranet_ros dataset-info --type kitti --root DIR [--sequence 0001]`: what a download
holds, before any training. Prints a JSON summary (samples, labels per task, valid depth pixels
per frame, boxes per class, ignore regions) and writes a preview PNG of one sample: image |
depth points | boxes | segmentation.

--type kitti looks at the layout and picks raw drives, the tracking benchmark or flow 2015
(or name it: kitti_raw, kitti_tracking, kitti_flow); --type cityscapes reads a split. No class
map is needed: boxes are counted by the dataset's own class names.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from hydranet_ros import visualize
from hydranet_ros.training import cityscapes, kitti
from hydranet_ros.training.real_data import ClassMap, load_cityscapes, load_kitti

TYPES = ('kitti', 'kitti_raw', 'kitti_tracking', 'kitti_flow', 'cityscapes')


def detect_kitti_layout(root: Path) -> str:
    """kitti_tracking, kitti_flow or kitti_raw, from what the folder holds."""
    if any((root / n).is_dir() for n in ('image_02', 'image_2')) and any(
            p.is_dir() for n in ('image_02', 'image_2') if (root / n).is_dir() for p in (root / n).iterdir()):
        return 'kitti_tracking'
    if (root / 'image_2').is_dir() and list((root / 'image_2').glob('*_10.png')):
        return 'kitti_flow'
    if list(root.glob('*/*_sync')):
        return 'kitti_raw'
    raise FileNotFoundError(f'{root}: not a KITTI raw, tracking or flow 2015 layout (see docs/TRAINING.md)')


def _items(kind: str, root: Path, sequence=None, split='train'):
    if kind == 'kitti_raw':
        return kitti.raw_frames(root), 'kitti'
    if kind == 'kitti_tracking':
        return kitti.tracking_frames(root, [sequence] if sequence else None), 'kitti'
    if kind == 'kitti_flow':
        return kitti.flow_frames(root), 'kitti'
    return cityscapes.frames(root, split), 'cityscapes'


def _names(dataset: str) -> list[str]:
    return list(kitti.KITTI_TYPES) if dataset == 'kitti' else list(cityscapes.INSTANCE_CLASSES.values())


def summarise(kind: str, root, sequence=None, split='train', limit: int | None = None, preview=None,
              index: int = 0) -> dict:
    """The JSON summary of a dataset (the first `limit` samples), and the preview of sample `index`."""
    root = Path(root)
    if kind == 'kitti':
        kind = detect_kitti_layout(root)
    items, dataset = _items(kind, root, sequence, split)
    # every class counts as a box here (their own names), nothing is ignored but DontCare
    names = _names(dataset)
    identity = ClassMap({} if dataset == 'kitti' else {i: i for i in range(len(cityscapes.TRAIN_NAMES))},
                        {n: k for k, n in enumerate(names)})
    load = load_kitti if dataset == 'kitti' else load_cityscapes
    labels, boxes, ignored, valid_fraction = Counter(), Counter(), 0, []
    shown = None
    for k, item in enumerate(items[:limit] if limit else items):
        sample = load(item, identity)
        for task, key in (('segmentation', 'segmentation'), ('depth', 'depth'), ('flow', 'flow'),
                          ('detection', 'boxes')):
            labels[task] += sample.get(key) is not None
        labels['pairs'] += item.get('previous') is not None
        if sample.get('depth') is not None:
            valid_fraction.append(float(np.isfinite(sample['depth']).mean()))
        if sample.get('boxes') is not None:
            boxes.update(names[int(c)] for c in sample['classes'])
            ignored += len(sample['ignore_boxes'])
        if k == index:
            shown = sample
    scanned = len(items[:limit] if limit else items)
    summary = {'type': kind, 'root': str(root), 'samples': len(items), 'scanned': scanned,
               'sequences': len({i['sequence'] for i in items}), 'labels_per_task': dict(labels),
               'boxes_per_class': dict(boxes), 'ignore_regions': ignored}
    if valid_fraction:
        v = np.array(valid_fraction)
        summary['valid_depth_pixels_per_frame'] = {'mean': round(float(v.mean()), 4), 'min': round(float(v.min()), 4),
                                                   'max': round(float(v.max()), 4)}
    if preview is not None and shown is not None:
        write_preview(shown, names, preview)
        summary['preview'] = str(preview)
    return summary


def write_preview(sample, names, path) -> Path:
    """image | depth points (dilated to be seen) | boxes (ignore regions grey) | segmentation."""
    rgb = sample['image']
    h, w = rgb.shape[:2]
    depth = sample.get('depth')
    panel = np.zeros_like(rgb)
    if depth is not None:
        valid = np.isfinite(depth)
        colored = visualize.depth_colormap(np.where(valid, depth, np.nan), 0.5, 80.0)
        grown = cv2.dilate(valid.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        spread = cv2.dilate(colored, np.ones((3, 3), np.uint8))
        panel[grown] = spread[grown]
    boxed = rgb.copy()
    for box in (sample.get('ignore_boxes') if sample.get('ignore_boxes') is not None else []):
        cv2.rectangle(boxed, tuple(int(v) for v in box[:2]), tuple(int(v) for v in box[2:]), (128, 128, 128), 1)
    for box, c in zip(sample.get('boxes') if sample.get('boxes') is not None else [], sample.get('classes', [])):
        cv2.rectangle(boxed, tuple(int(v) for v in box[:2]), tuple(int(v) for v in box[2:]), (255, 64, 0), 2)
        cv2.putText(boxed, names[int(c)], (int(box[0]), max(int(box[1]) - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (255, 64, 0), 1)
    seg = sample.get('segmentation')
    seg_panel = np.zeros_like(rgb) if seg is None else visualize.segmentation_overlay(
        seg, [tuple(int(v) for v in np.random.default_rng(i).integers(0, 255, 3)) for i in range(256)], rgb)
    image = np.hstack([rgb, panel, boxed, seg_panel[:h, :w]])
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return Path(path)


def main(argv=None) -> int:
    """The dataset-info command line."""
    parser = argparse.ArgumentParser(prog='dataset-info', description=__doc__.split('\n\n')[0])
    parser.add_argument('--type', required=True, choices=TYPES)
    parser.add_argument('--root', required=True)
    parser.add_argument('--sequence', help='kitti tracking: this sequence only (e.g. 0001)')
    parser.add_argument('--split', default='train', help='cityscapes split (train, val, test)')
    parser.add_argument('--limit', type=int, help='scan only the first N samples (the count covers all)')
    parser.add_argument('--preview', default='dataset_preview.png', help='PNG written of one sample')
    parser.add_argument('--index', type=int, default=0, help='which sample the preview shows')
    args = parser.parse_args(argv)
    try:
        summary = summarise(args.type, args.root, args.sequence, args.split, args.limit, args.preview, args.index)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        print(f'dataset-info: {exc}', file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
