"""Training data: the synthetic world (rendered once, kept in memory) and a folder reader for
real datasets where any label may be missing per sample."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from hydranet_ros.model.normalization import IMAGENET_MEAN, IMAGENET_STD
from hydranet_ros.training.augmentation import Augmentation, jitter_colors, recolour_classes
from hydranet_ros.training.samples import (Sample, crop_intrinsics, letterbox_content, pad_tensors, to_tensors,
                                          zoom_sample)
from hydranet_ros.world import World


def _relative_pose(world, previous_stamp: float, stamp: float) -> np.ndarray:
    """The world's true camera motion as odometry gives it: this frame's camera -> the previous one's (4x4)."""
    return np.linalg.inv(world.scene.camera_to_world(previous_stamp)) @ world.scene.camera_to_world(stamp)


IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg')


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


class SyntheticDataset(Dataset):
    """Sequences of the synthetic world, one per seed, rendered once.

    Boxes whose object is more than max_occlusion hidden or smaller than min_box pixels on a
    side are left out of the detection targets (they are not reasonably detectable).

    style: the world's look (hydranet_ros.world.styles: classic, varied, heldout). cameras: the
    camera presets, one per seed in turn (default: [camera]). letterbox: render each camera at
    the size its image takes in the network input and pad it as the Predictor does (otherwise
    render at input_size). training_focal_px: the focal length (pixels at the network input)
    depth is learnt for; with normalise_depth the depth labels become what a camera of that
    focal length would see (label x training / actual focal length), otherwise each sample
    keeps metric labels and a depth_scale (actual / training) to multiply predictions by.
    """

    def __init__(self, seeds, frames_per_seed: int, input_size, camera: str = 'kitti',
                 num_detection_classes: int = 2, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 augment: bool = False, max_occlusion: float = 0.7, min_box: float = 4.0, start_frame: int = 0,
                 style: str = 'classic', cameras=None, letterbox: bool = False,
                 training_focal_px: float | None = None, normalise_depth: bool = True,
                 labels=('segmentation', 'depth', 'flow', 'detection'), odometry: bool = False,
                 augmentation: Augmentation | None = None):
        self.samples: list[Sample] = []
        self.num_det = num_detection_classes
        self.mean, self.std, self.augment = mean, std, augment
        self.augmentation = augmentation or Augmentation()
        self.rng = np.random.default_rng(0)
        self.input_size = tuple(int(v) for v in input_size)
        self.letterbox = bool(letterbox)
        cameras = list(cameras or [camera])
        for k, seed in enumerate(seeds):
            cam = cameras[k % len(cameras)]
            size = letterbox_content(cam, input_size) if letterbox else tuple(input_size)
            world = World(int(seed), cam, size=size, style=style)
            ratio = 1.0 if not training_focal_px else world.camera.fx / float(training_focal_px)
            label_scale = np.float32(1.0 / ratio) if normalise_depth else np.float32(1.0)
            prev = None
            for frame in world.frames(frames_per_seed + 1, start=start_frame):
                if prev is not None:
                    keep = [b for b in frame.boxes if b.detectable(max_occlusion, min_box)]
                    self.samples.append(Sample(
                        image=frame.rgb, prev_image=prev.rgb, segmentation=frame.segmentation,
                        depth=(frame.depth * label_scale).astype(np.float16), flow=frame.flow.astype(np.float16),
                        boxes=np.array([[b.x1, b.y1, b.x2, b.y2] for b in keep], np.float32).reshape(-1, 4),
                        classes=np.array([b.class_id for b in keep], np.int64),
                        all_boxes=frame.boxes, seed=int(seed), index=frame.index, stamp=frame.stamp,
                        camera=cam, focal_px=float(world.camera.fx),
                        depth_scale=1.0 if normalise_depth else float(ratio),
                        intrinsics=np.array(world.camera.k, np.float64).reshape(3, 3),
                        relative_pose=_relative_pose(world, prev.stamp, frame.stamp) if odometry else None))
                    for task, keys in (('segmentation', ('segmentation',)), ('depth', ('depth',)),
                                       ('flow', ('flow',)), ('detection', ('boxes', 'classes'))):
                        if task not in labels:       # self-supervised runs: the label is withheld
                            for key in keys:
                                self.samples[-1][key] = None
                    if 'segmentation' in labels:     # per-class recolouring (augment) paints all frames
                        self.samples[-1]['prev_segmentation'] = prev.segmentation
                prev = frame

        self._link_next_frames(odometry)

    def _link_next_frames(self, odometry: bool):
        """Each pair's next frame (the following pair's image, shared, not copied) and, with
        odometry, the camera motion to it: the second source of the photometric terms."""
        for a, b in zip(self.samples, self.samples[1:]):
            if a['seed'] == b['seed'] and b['index'] == a['index'] + 1:
                a['next_image'] = b['image']
                if b.get('segmentation') is not None:
                    a['next_segmentation'] = b['segmentation']
                if odometry and b.get('relative_pose') is not None:
                    a['next_relative_pose'] = np.linalg.inv(b['relative_pose'])

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        s = self.samples[i]
        sample = Sample(s)
        sample['depth'] = s['depth'].astype(np.float32) if s['depth'] is not None else None
        sample['flow'] = s['flow'].astype(np.float32) if s['flow'] is not None else None
        aug = self.augmentation
        if self.augment and aug.class_colour_jitter > 0:
            sample = recolour_classes(sample, self.rng, aug.class_colour_jitter)
        sample = zoom_sample(sample, aug.zoom(self.rng, self.augment))
        if self.augment:
            sample = jitter_colors(sample, self.rng, aug.color_jitter, aug.hue_jitter)
            sample = aug.look(sample, self.rng)
        flip = bool(self.augment and self.rng.random() < 0.5)
        item = to_tensors(sample, self.num_det, self.mean, self.std, flip)
        return pad_tensors(item, self.input_size) if self.letterbox else item


class FolderDataset(Dataset):
    """A real dataset in folders, one file stem per frame, frames of a sequence in sorted order:

        root/images/<stem>.png|jpg          required
        root/segmentation/<stem>.png        class ids (255 = ignore)       optional
        root/depth/<stem>.npy|png           metres (.png: uint16 millimetres) optional
        root/flow/<stem>.npy                [H, W, 2] previous -> this, NaN invalid  optional
        root/boxes/<stem>.json              [{"x1", "y1", "x2", "y2", "class_id"(, "score")}]   optional
        root/poses/<stem>.json              {"camera_to_odom": 16 floats} (odometry; pseudo-label) optional
        root/segmentation_confidence/<stem>.png, root/depth_confidence/<stem>.png
                                            pseudo-label confidence x 255 (pseudo-label's output) optional

    root may instead hold several such folders (one sequence each, as pseudo-label writes).
    Confidences and box scores weigh the labels in the losses (real labels: 1).
    Everything is resized to input_size (flow vectors and boxes scaled with it); with letterbox,
    fitted into it with the aspect kept and padded at the right and bottom as the Predictor does.
    training_focal_px (pixels at the network input): depth labels of a folder whose camera.json
    gives the intrinsics are normalised to that focal length, as the synthetic world's are."""

    def __init__(self, root, input_size, num_detection_classes: int = 2,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, augment: bool = False,
                 letterbox: bool = False, training_focal_px: float | None = None,
                 augmentation: Augmentation | None = None):
        self.root = Path(root)
        self.images, self.first = [], []
        for _, images in sequence_images(self.root):
            self.images += images
            self.first += [k == 0 for k in range(len(images))]
        if not self.images:
            raise FileNotFoundError(f'no images in {self.root / "images"} (nor in sequence folders under {self.root})')
        self.size = tuple(int(v) for v in input_size)
        self.num_det, self.mean, self.std, self.augment = num_detection_classes, mean, std, augment
        self.augmentation = augmentation or Augmentation()
        self.letterbox, self.training_focal_px = bool(letterbox), training_focal_px
        self.rng = np.random.default_rng(0)

    def __len__(self):
        return len(self.images)

    def _content(self, oh: int, ow: int) -> tuple:
        """(h, w) an (oh, ow) image is resized to: input_size, or its letterboxed share of it."""
        if not self.letterbox:
            return self.size
        from hydranet_ros.inference.letterbox import Letterbox
        return Letterbox.fit((oh, ow), self.size).content_size

    def _intrinsics(self, folder: Path):
        """The folder's camera.json intrinsics (3x3, at the images' own size), or None."""
        cache = self.__dict__.setdefault('_k_cache', {})
        if folder not in cache:
            k = None
            path = folder / 'camera.json'
            if path.is_file():
                raw = json.loads(path.read_text()).get('k')
                if raw is not None and len(raw) == 9:
                    k = np.array(raw, np.float64).reshape(3, 3)
            cache[folder] = k
        return cache[folder]

    @staticmethod
    def _pose(folder: Path, stem: str):
        """poses/<stem>.json (pseudo-label writes it from a bag's odometry): camera -> odom, or None."""
        path = folder / 'poses' / f'{stem}.json'
        if not path.is_file():
            return None
        return np.array(json.loads(path.read_text())['camera_to_odom'], np.float64).reshape(4, 4)

    def _read_rgb(self, path):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f'cannot read image {path}')
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def load(self, i) -> Sample:
        path = self.images[i]
        stem = path.stem
        folder = path.parent.parent
        rgb = self._read_rgb(path)
        oh, ow = rgb.shape[:2]
        h, w = self._content(oh, ow)
        sx, sy = w / ow, h / oh
        sample = Sample(image=cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA))
        first = self.first[i]
        sample['prev_image'] = sample['image'] if first else cv2.resize(self._read_rgb(self.images[i - 1]), (w, h))
        seg = folder / 'segmentation' / f'{stem}.png'
        if seg.is_file():
            sample['segmentation'] = cv2.resize(cv2.imread(str(seg), cv2.IMREAD_UNCHANGED), (w, h),
                                                interpolation=cv2.INTER_NEAREST)
        k = self._intrinsics(folder)
        if k is not None:
            sample['intrinsics'] = crop_intrinsics(k, 0, 0, sx, sy)
        if not first:
            now, before = self._pose(folder, stem), self._pose(folder, self.images[i - 1].stem)
            if now is not None and before is not None:
                sample['relative_pose'] = np.linalg.inv(before) @ now
        if i + 1 < len(self.images) and not self.first[i + 1]:
            after = self.images[i + 1]
            sample['next_image'] = cv2.resize(self._read_rgb(after), (w, h), interpolation=cv2.INTER_AREA)
            now, later = self._pose(folder, stem), self._pose(folder, after.stem)
            if now is not None and later is not None:
                sample['next_relative_pose'] = np.linalg.inv(later) @ now
        for key, sub in (('segmentation_weight', 'segmentation_confidence'), ('depth_weight', 'depth_confidence')):
            cp = folder / sub / f'{stem}.png'
            if cp.is_file():
                conf = cv2.imread(str(cp), cv2.IMREAD_UNCHANGED)
                if conf is None:
                    raise ValueError(f'cannot read confidence {cp}')
                sample[key] = cv2.resize(conf.astype(np.float32) / 255.0, (w, h), interpolation=cv2.INTER_NEAREST)
        for ext in ('.npy', '.png'):
            dp = folder / 'depth' / f'{stem}{ext}'
            if dp.is_file():
                if ext == '.npy':
                    d = np.load(dp)
                else:   # uint16 millimetres
                    d = cv2.imread(str(dp), cv2.IMREAD_UNCHANGED).astype(np.float32) / 1000.0
                d = np.where(d > 0, d, np.nan).astype(np.float32)
                if self.training_focal_px and k is not None:      # as the training lens would see it
                    d = d * np.float32(self.training_focal_px / sample['intrinsics'][0, 0])
                sample['depth'] = cv2.resize(d, (w, h), interpolation=cv2.INTER_NEAREST)
                break
        fp = folder / 'flow' / f'{stem}.npy'
        if fp.is_file() and not first:
            f = np.load(fp).astype(np.float32)
            f = cv2.resize(f, (w, h), interpolation=cv2.INTER_NEAREST)
            f[..., 0] *= sx
            f[..., 1] *= sy
            sample['flow'] = f
        bp = folder / 'boxes' / f'{stem}.json'
        if bp.is_file():
            items = json.loads(bp.read_text())
            sample['boxes'] = np.array([[b['x1'] * sx, b['y1'] * sy, b['x2'] * sx, b['y2'] * sy] for b in items],
                                       np.float32).reshape(-1, 4)
            sample['classes'] = np.array([int(b['class_id']) for b in items], np.int64)
            if any('score' in b for b in items):
                sample['box_weights'] = np.array([float(b.get('score', 1.0)) for b in items], np.float32)
        return sample

    def __getitem__(self, i):
        sample = zoom_sample(self.load(i), self.augmentation.zoom(self.rng, self.augment))
        if self.augment:
            sample = self.augmentation.look(sample, self.rng)
        flip = bool(self.augment and self.rng.random() < 0.5)
        item = to_tensors(sample, self.num_det, self.mean, self.std, flip)
        return pad_tensors(item, self.size) if self.letterbox else item
