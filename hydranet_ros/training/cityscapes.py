"""Cityscapes as downloaded: leftImg8bit, gtFine (labelIds, instanceIds), disparity + camera,
and leftImg8bit_sequence for the previous frame.

  <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
  <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png | _instanceIds.png
  <root>/disparity/<split>/<city>/<city>_<seq>_<frame>_disparity.png
  <root>/camera/<split>/<city>/<city>_<seq>_<frame>_camera.json
  <root>/leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame - 1>_leftImg8bit.png

labelIds become the 19 train classes by the published table (others: ignore); instanceIds
>= 1000 are labelId * 1000 + instance and give one box per instance; disparity PNGs hold
d = (value - 1) / 256 for value > 0, and depth = baseline * fx / d (camera JSON), invalid at 0.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from hydranet_ros import IGNORE

#: labelId -> (train class name), the 19 evaluated classes of the published table.
TRAIN_CLASSES = {7: 'road', 8: 'sidewalk', 11: 'building', 12: 'wall', 13: 'fence', 17: 'pole',
                 19: 'traffic light', 20: 'traffic sign', 21: 'vegetation', 22: 'terrain', 23: 'sky',
                 24: 'person', 25: 'rider', 26: 'car', 27: 'truck', 28: 'bus', 31: 'train',
                 32: 'motorcycle', 33: 'bicycle'}
#: The train classes in trainId order.
TRAIN_NAMES = list(TRAIN_CLASSES.values())
#: labelIds of the classes that have instances (instanceIds >= 1000).
INSTANCE_CLASSES = {24: 'person', 25: 'rider', 26: 'car', 27: 'truck', 28: 'bus', 29: 'caravan', 30: 'trailer',
                    31: 'train', 32: 'motorcycle', 33: 'bicycle'}


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """[H, W] labelIds -> trainIds 0..18 (255 elsewhere)."""
    lut = np.full(256, IGNORE, np.uint8)
    for train_id, label_id in enumerate(TRAIN_CLASSES):
        lut[label_id] = train_id
    return lut[label_ids.astype(np.uint8)]


def instance_boxes(instance_ids: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """[(class name, box x1, y1, x2 exclusive, y2 exclusive)] per instance (ids >= 1000)."""
    out = []
    for value in np.unique(instance_ids):
        if value < 1000:
            continue
        label = int(value) // 1000
        if label not in INSTANCE_CLASSES:
            continue
        ys, xs = np.nonzero(instance_ids == value)
        out.append((INSTANCE_CLASSES[label],
                    np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)))
    return out


def instance_id_image(instance_ids: np.ndarray, names) -> np.ndarray:
    """[H, W] uint16 instance ids 1..n (in instanceIds order) of the instances whose class name
    is in names, 0 elsewhere (stuff, crowd regions below 1000, other classes)."""
    values, inverse = np.unique(instance_ids, return_inverse=True)
    kept = np.array([v >= 1000 and INSTANCE_CLASSES.get(int(v) // 1000) in names for v in values])
    new_ids = np.zeros(len(values), np.uint16)
    new_ids[kept] = np.arange(1, int(kept.sum()) + 1)
    return new_ids[inverse].reshape(instance_ids.shape)


def disparity_to_depth(raw: np.ndarray, baseline: float, fx: float) -> np.ndarray:
    """Cityscapes disparity PNG values -> depth in metres (NaN where invalid)."""
    d = (raw.astype(np.float32) - 1.0) / 256.0
    depth = np.full(raw.shape, np.nan, np.float32)
    ok = (raw > 0) & (d > 0)
    depth[ok] = baseline * fx / d[ok]
    return depth


def frames(root, split: str = 'train') -> list[dict]:
    """Every annotated frame of a split, with the files it has."""
    root = Path(root)
    images = sorted((root / 'leftImg8bit' / split).glob('*/*_leftImg8bit.png'))
    if not images:
        raise FileNotFoundError(f'{root}: no leftImg8bit/{split}/<city>/*_leftImg8bit.png')
    out = []
    for image in images:
        city = image.parent.name
        stem = image.name[:-len('_leftImg8bit.png')]
        parts = stem.rsplit('_', 2)
        previous = (root / 'leftImg8bit_sequence' / split / city /
                    f'{parts[0]}_{parts[1]}_{int(parts[2]) - 1:06d}_leftImg8bit.png')

        def existing(p):
            return p if p.is_file() else None
        out.append({'image': image, 'sequence': f'{parts[0]}_{parts[1]}', 'previous': existing(previous),
                    'label_ids': existing(root / 'gtFine' / split / city / f'{stem}_gtFine_labelIds.png'),
                    'instance_ids': existing(root / 'gtFine' / split / city / f'{stem}_gtFine_instanceIds.png'),
                    'disparity': existing(root / 'disparity' / split / city / f'{stem}_disparity.png'),
                    'camera': existing(root / 'camera' / split / city / f'{stem}_camera.json')})
    return out


def read_camera(path) -> tuple[float, float]:
    """(baseline metres, fx pixels) from a camera JSON."""
    cam = json.loads(Path(path).read_text())
    return float(cam['extrinsic']['baseline']), float(cam['intrinsic']['fx'])


def read_png(path, flags=cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """An image file, or ValueError naming it."""
    data = cv2.imread(str(path), flags)
    if data is None:
        raise ValueError(f'cannot read {path}')
    return data
