"""Training data: the synthetic world (rendered once, kept in memory) and a folder reader for
real datasets where any label may be missing per sample."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from hydranet_ros import dataset_folder as folder_io
from hydranet_ros.dataset_folder import image_files, sequence_images  # noqa: F401 (read from here too)
from hydranet_ros.model.normalization import IMAGENET_MEAN, IMAGENET_STD
from hydranet_ros.training.augmentation import Augmentation, jitter_colors, recolour_classes
from hydranet_ros.training.samples import (Sample, crop_intrinsics, letterbox_content, pad_tensors, to_tensors,
                                          zoom_sample)
from hydranet_ros.world import World


def _relative_pose(world, previous_stamp: float, stamp: float) -> np.ndarray:
    """The world's true camera motion as odometry gives it: this frame's camera -> the previous one's (4x4)."""
    return np.linalg.inv(world.scene.camera_to_world(previous_stamp)) @ world.scene.camera_to_world(stamp)


#: a task -> the sample keys that hold its labels
_LABEL_KEYS = {'segmentation': ('segmentation',), 'depth': ('depth',), 'flow': ('flow',),
               'detection': ('boxes', 'classes')}


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
                 augmentation: Augmentation | None = None, label_fraction: dict | None = None):
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
                    for task, keys in _LABEL_KEYS.items():
                        if task not in labels:       # self-supervised runs: the label is withheld
                            for key in keys:
                                self.samples[-1][key] = None
                    if 'segmentation' in labels:     # per-class recolouring (augment) paints all frames
                        self.samples[-1]['prev_segmentation'] = prev.segmentation
                prev = frame

        self._link_next_frames(odometry)
        self._thin_labels(label_fraction or {})

    def _thin_labels(self, label_fraction: dict):
        """Each task of label_fraction keeps its labels on that share of the samples (chosen by a
        generator of its own, so every run and seed withholds the same ones), the rest withheld."""
        for task, share in label_fraction.items():
            keep = int(round(float(share) * len(self.samples)))
            order = np.random.default_rng(1000 + list(_LABEL_KEYS).index(task)).permutation(len(self.samples))
            for i in order[keep:]:
                for key in _LABEL_KEYS[task]:
                    self.samples[i][key] = None
                if task == 'segmentation':
                    self.samples[i]['prev_segmentation'] = self.samples[i]['next_segmentation'] = None

    def labelled_indices(self, task: str) -> np.ndarray:
        """The indices of the samples that carry task's labels (train.sampler task_balanced)."""
        key = _LABEL_KEYS[task][0]
        return np.array([i for i, s in enumerate(self.samples) if s.get(key) is not None], np.int64)

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
    """A dataset folder (hydranet_ros.dataset_folder: the layout and its readers), one file stem
    per frame, frames of a sequence in sorted order; root may hold several sequence folders.
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
            cache[folder] = folder_io.read_intrinsics(folder)
        return cache[folder]

    def load(self, i) -> Sample:
        path = self.images[i]
        stem = path.stem
        folder = path.parent.parent
        rgb = folder_io.read_rgb(path)
        oh, ow = rgb.shape[:2]
        h, w = self._content(oh, ow)
        sx, sy = w / ow, h / oh
        sample = Sample(image=cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA))
        first = self.first[i]
        sample['prev_image'] = sample['image'] if first else cv2.resize(folder_io.read_rgb(self.images[i - 1]), (w, h))
        seg = folder_io.read_segmentation(folder, stem)
        if seg is not None:
            sample['segmentation'] = cv2.resize(seg, (w, h), interpolation=cv2.INTER_NEAREST)
        k = self._intrinsics(folder)
        if k is not None:
            sample['intrinsics'] = crop_intrinsics(k, 0, 0, sx, sy)
        if not first:
            now, before = folder_io.read_pose(folder, stem), folder_io.read_pose(folder, self.images[i - 1].stem)
            if now is not None and before is not None:
                sample['relative_pose'] = np.linalg.inv(before) @ now
        if i + 1 < len(self.images) and not self.first[i + 1]:
            after = self.images[i + 1]
            sample['next_image'] = cv2.resize(folder_io.read_rgb(after), (w, h), interpolation=cv2.INTER_AREA)
            now, later = folder_io.read_pose(folder, stem), folder_io.read_pose(folder, after.stem)
            if now is not None and later is not None:
                sample['next_relative_pose'] = np.linalg.inv(later) @ now
        for key, task in (('segmentation_weight', 'segmentation'), ('depth_weight', 'depth')):
            conf = folder_io.read_confidence(folder, stem, task)
            if conf is not None:
                sample[key] = cv2.resize(conf, (w, h), interpolation=cv2.INTER_NEAREST)
        d = folder_io.read_depth(folder, stem)
        if d is not None:
            if self.training_focal_px and k is not None:      # as the training lens would see it
                d = d * np.float32(self.training_focal_px / sample['intrinsics'][0, 0])
            sample['depth'] = cv2.resize(d, (w, h), interpolation=cv2.INTER_NEAREST)
        f = folder_io.read_flow(folder, stem)
        if f is not None and not first:
            f = cv2.resize(f, (w, h), interpolation=cv2.INTER_NEAREST)
            f[..., 0] *= sx
            f[..., 1] *= sy
            sample['flow'] = f
        boxes = folder_io.read_boxes(folder, stem)
        if boxes is not None:
            sample['boxes'] = (boxes[0] * [sx, sy, sx, sy]).astype(np.float32).reshape(-1, 4)
            sample['classes'] = boxes[1]
            if boxes[2] is not None:
                sample['box_weights'] = boxes[2]
        return sample

    def __getitem__(self, i):
        sample = zoom_sample(self.load(i), self.augmentation.zoom(self.rng, self.augment))
        if self.augment:
            sample = self.augmentation.look(sample, self.rng)
        flip = bool(self.augment and self.rng.random() < 0.5)
        item = to_tensors(sample, self.num_det, self.mean, self.std, flip)
        return pad_tensors(item, self.size) if self.letterbox else item
