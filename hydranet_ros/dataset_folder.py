"""The dataset folder: this package's one on-disk layout of labelled (or pseudo-labelled) frames,
written by `world.export` and `pseudo-label`, read by `FolderDataset` and `pseudo-label`.

    root/images/<stem>.png|jpg                     required
    root/segmentation/<stem>.png                   class ids (255 = ignore)
    root/depth/<stem>.npy|png                      metres, NaN none, +inf far (sky); .png: uint16 millimetres
    root/flow/<stem>.npy                           [H, W, 2] previous -> this frame, pixels, NaN invalid
    root/boxes/<stem>.json                         [{"x1", "y1", "x2", "y2", "class_id"(, "score", ...)}]
    root/poses/<stem>.json                         {"camera_to_odom": 16 floats} (odometry)
    root/segmentation_confidence/<stem>.png        pseudo-label confidence x 255
    root/depth_confidence/<stem>.png               pseudo-label confidence x 255
    root/camera.json                               {"width", "height", "k": 9 floats, classes, ...}

A root may instead hold several such folders, one sequence each (as pseudo-label writes). Every
label is optional per frame. Numpy and OpenCV only (no torch, no ROS).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')
LABEL_FOLDERS = ('segmentation', 'segmentation_confidence', 'depth', 'depth_confidence', 'flow', 'boxes', 'poses')


def sequence_images(root: Path) -> list:
    """[(sequence folder, its sorted image files)] of a dataset folder: root/images/*, or one
    sequence per root/<sequence>/images/* (as pseudo-label writes)."""
    root = Path(root)
    folders = [root] if (root / 'images').is_dir() else \
        sorted(p for p in root.iterdir() if (p / 'images').is_dir()) if root.is_dir() else []
    return [(f, sorted(p for p in (f / 'images').iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)) for f in folders]


def image_files(roots) -> list:
    """The image files of dataset folders (sequence_images), or of plain folders of images."""
    files = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f'image folder {root} does not exist')
        found = [f for _, images in sequence_images(root) for f in images] or \
            sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise FileNotFoundError(f'no images in {root} (looked for images/ folders and image files)')
        files += found
    return files


def read_rgb(path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB; ValueError if it cannot be read."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f'cannot read image {path}')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_segmentation(folder: Path, stem: str) -> np.ndarray | None:
    """Class ids (uint8, 255 = ignore), or None."""
    path = Path(folder) / 'segmentation' / f'{stem}.png'
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None


def read_confidence(folder: Path, stem: str, task: str) -> np.ndarray | None:
    """A pseudo-label's confidence in [0, 1] (task: segmentation or depth), or None."""
    path = Path(folder) / f'{task}_confidence' / f'{stem}.png'
    if not path.is_file():
        return None
    conf = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if conf is None:
        raise ValueError(f'cannot read confidence {path}')
    return conf.astype(np.float32) / 255.0


def read_depth(folder: Path, stem: str) -> np.ndarray | None:
    """Depth in metres, float32: NaN where there is none, +inf kept (known to be far)."""
    for ext in ('.npy', '.png'):
        path = Path(folder) / 'depth' / f'{stem}{ext}'
        if path.is_file():
            d = np.load(path) if ext == '.npy' else \
                cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.float32) / 1000.0   # uint16 millimetres
            return np.where(d > 0, d, np.nan).astype(np.float32)
    return None


def read_flow(folder: Path, stem: str) -> np.ndarray | None:
    """Flow [H, W, 2] float32 (previous -> this frame), or None."""
    path = Path(folder) / 'flow' / f'{stem}.npy'
    return np.load(path).astype(np.float32) if path.is_file() else None


def read_boxes(folder: Path, stem: str):
    """(boxes [N, 4] float64 corners as written, class ids [N] int64, scores [N] float32 or None),
    or None."""
    path = Path(folder) / 'boxes' / f'{stem}.json'
    if not path.is_file():
        return None
    items = json.loads(path.read_text())
    boxes = np.array([[b['x1'], b['y1'], b['x2'], b['y2']] for b in items], np.float64).reshape(-1, 4)
    classes = np.array([int(b['class_id']) for b in items], np.int64)
    scores = np.array([float(b.get('score', 1.0)) for b in items], np.float32) \
        if any('score' in b for b in items) else None
    return boxes, classes, scores


def read_pose(folder: Path, stem: str) -> np.ndarray | None:
    """The camera -> odom transform (4x4) of a frame, or None."""
    path = Path(folder) / 'poses' / f'{stem}.json'
    if not path.is_file():
        return None
    return np.array(json.loads(path.read_text())['camera_to_odom'], np.float64).reshape(4, 4)


def read_camera(folder: Path) -> dict:
    """camera.json ({} when there is none)."""
    path = Path(folder) / 'camera.json'
    return json.loads(path.read_text()) if path.is_file() else {}


def read_intrinsics(folder: Path) -> np.ndarray | None:
    """camera.json's K (3x3, at the images' own size), or None."""
    raw = read_camera(folder).get('k')
    return np.array(raw, np.float64).reshape(3, 3) if raw is not None and len(raw) == 9 else None


def box_items(boxes, classes, scores=None, **extra) -> list:
    """boxes/<stem>.json entries: corners, class id, score when given, and per-box extras
    (e.g. occlusion=[...]), rounded to 3 decimals."""
    items = []
    for i, (b, c) in enumerate(zip(np.asarray(boxes).reshape(-1, 4), classes)):
        item = {'x1': float(b[0]), 'y1': float(b[1]), 'x2': float(b[2]), 'y2': float(b[3]), 'class_id': int(c)}
        if scores is not None:
            item['score'] = float(scores[i])
        item.update({k: round(float(v[i]), 3) for k, v in extra.items()})
        items.append(item)
    return items


class FolderWriter:
    """Writes one sequence folder; a label folder is created when its first frame is written."""

    def __init__(self, root: Path, folders=()):
        """folders: label folders to create now, written to or not (the others: on first use)."""
        self.root = Path(root)
        for sub in ('images', *folders):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def _path(self, sub: str, name: str) -> Path:
        (self.root / sub).mkdir(exist_ok=True)
        return self.root / sub / name

    def image(self, stem: str, rgb: np.ndarray):
        cv2.imwrite(str(self.root / 'images' / f'{stem}.png'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def segmentation(self, stem: str, labels: np.ndarray, confidence: np.ndarray | None = None):
        cv2.imwrite(str(self._path('segmentation', f'{stem}.png')), labels.astype(np.uint8))
        if confidence is not None:
            self._confidence('segmentation', stem, confidence)

    def depth(self, stem: str, depth: np.ndarray, confidence: np.ndarray | None = None):
        np.save(self._path('depth', f'{stem}.npy'), depth)
        if confidence is not None:
            self._confidence('depth', stem, np.nan_to_num(confidence))

    def _confidence(self, task: str, stem: str, confidence: np.ndarray):
        cv2.imwrite(str(self._path(f'{task}_confidence', f'{stem}.png')),
                    np.clip(np.round(confidence * 255), 0, 255).astype(np.uint8))

    def flow(self, stem: str, flow: np.ndarray):
        np.save(self._path('flow', f'{stem}.npy'), flow)

    def boxes(self, stem: str, items: list):
        self._path('boxes', f'{stem}.json').write_text(json.dumps(items))

    def pose(self, stem: str, camera_to_odom: np.ndarray):
        self._path('poses', f'{stem}.json').write_text(json.dumps(
            {'camera_to_odom': [float(v) for v in np.asarray(camera_to_odom).reshape(-1)]}))

    def camera(self, meta: dict, indent: int = 1):
        (self.root / 'camera.json').write_text(json.dumps(meta, indent=indent))
