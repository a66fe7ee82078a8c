"""CamVid in the SegNet layout (the 11-class, 480x360 version most tutorials ship):

  <root>/<split>/<name>.png          the frame (RGB)
  <root>/<split>annot/<name>.png     one 8-bit class id per pixel, CAMVID_CLASSES order, 11 unlabelled

Eleven classes plus unlabelled. The model's classes share eight of them; SHARED names the pairs
(CamVid's road includes its lane markings, its tree class all vegetation), and `shared_ids` maps
both sides onto those eight for scoring: a CamVid class outside them is ignored, a model class
outside them (terrain) is a ninth, `other`, that counts as a miss wherever it is predicted.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from hydranet_ros import IGNORE

CAMVID_CLASSES = ('sky', 'building', 'pole', 'road', 'pavement', 'tree', 'sign', 'fence', 'car', 'pedestrian',
                  'bicyclist')
UNLABELLED = 11
#: the eight classes the model shares with CamVid: (CamVid name, model names that mean it)
SHARED = (('sky', ('sky',)), ('building', ('building',)), ('pole', ('pole',)), ('road', ('road', 'lane_marking')),
          ('pavement', ('sidewalk',)), ('tree', ('vegetation',)), ('car', ('car',)), ('pedestrian', ('pedestrian',)))
#: the name each shared class is reported under (the model's)
SHARED_NAMES = ('sky', 'building', 'pole', 'road', 'sidewalk', 'vegetation', 'car', 'pedestrian')
OTHER = len(SHARED)


def frames(root, splits=('train', 'val')) -> list[dict]:
    """Every frame of the named splits: {'name', 'split', 'image', 'labels'} (paths)."""
    root = Path(root)
    out = []
    for split in splits:
        images = sorted((root / split).glob('*.png'))
        if not images:
            raise FileNotFoundError(f'{root / split}: no *.png (is this the CamVid SegNet layout?)')
        for image in images:
            labels = root / f'{split}annot' / image.name
            if not labels.is_file():
                raise FileNotFoundError(f'{image}: its labels {labels} are missing')
            out.append({'name': image.stem, 'split': split, 'image': image, 'labels': labels})
    return out


def read_frame(item: dict) -> tuple[np.ndarray, np.ndarray]:
    """(rgb uint8 [H, W, 3], CamVid class ids uint8 [H, W]) of one frame; a class id above 11 is an error."""
    bgr = cv2.imread(str(item['image']), cv2.IMREAD_COLOR)
    labels = cv2.imread(str(item['labels']), cv2.IMREAD_UNCHANGED)
    if bgr is None or labels is None:
        raise ValueError(f'{item["image"]}: the frame or its labels cannot be read')
    if labels.ndim != 2 or labels.shape != bgr.shape[:2]:
        raise ValueError(f'{item["labels"]}: one class id per pixel of a {bgr.shape[1]}x{bgr.shape[0]} frame '
                         f'expected, got shape {labels.shape}')
    if labels.max() > UNLABELLED:
        raise ValueError(f'{item["labels"]}: class id {int(labels.max())} (CamVid has 0-{UNLABELLED})')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), labels.astype(np.uint8)


def shared_ids(model_names) -> tuple[np.ndarray, np.ndarray]:
    """(CamVid id -> shared id, IGNORE elsewhere; model id -> shared id, OTHER elsewhere) lookup tables.
    A shared class the model does not have is an error: the score would be meaningless."""
    model_names = [str(n) for n in model_names]
    camvid = np.full(256, IGNORE, np.uint8)
    model = np.full(max(len(model_names), 1), OTHER, np.uint8)
    for k, (theirs, ours) in enumerate(SHARED):
        camvid[CAMVID_CLASSES.index(theirs)] = k
        have = [n for n in ours if n in model_names]
        if not have:
            raise ValueError(f'the model has no {ours[0]!r} class, which CamVid\'s {theirs!r} is scored against '
                             f'(it has {model_names})')
        for name in have:
            model[model_names.index(name)] = k
    return camvid, model
