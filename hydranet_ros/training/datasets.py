"""Training data: the synthetic world (rendered once, kept in memory) and a folder reader for
real datasets where any label may be missing per sample."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from hydranet_ros.model.detection_head import STRIDE
from hydranet_ros.training.targets import detection_targets
from hydranet_ros.world import World
from hydranet_ros.world.classes import IGNORE
from hydranet_ros.model.normalization import IMAGENET_MEAN, IMAGENET_STD


#: the images of a sample (the next frame is optional), augmented alike
IMAGE_KEYS = ('image', 'prev_image', 'next_image')


class Sample(dict):
    """One training pair (previous frame, frame) as numpy arrays; missing labels are None."""


def to_tensors(sample: Sample, num_classes_det: int, mean, std, flip: bool = False) -> dict:
    """numpy sample -> dict of tensors with has_* flags (what the collate stacks)."""
    img, prev = sample['image'], sample['prev_image']
    h, w = img.shape[:2]
    seg, depth, flow = sample.get('segmentation'), sample.get('depth'), sample.get('flow')
    boxes, classes = sample.get('boxes'), sample.get('classes')
    ignore = sample.get('ignore_boxes')
    seg_w, depth_w, box_w = sample.get('segmentation_weight'), sample.get('depth_weight'), sample.get('box_weights')
    k = sample.get('intrinsics')
    pose, nxt, next_pose = sample.get('relative_pose'), sample.get('next_image'), sample.get('next_relative_pose')
    if flip:
        if k is not None:   # a mirrored image's principal point mirrors too
            k = np.array(k, np.float64)
            k[0, 2] = w - 1 - k[0, 2]
        mirror = np.diag([-1.0, 1.0, 1.0, 1.0])     # and the camera's motions mirror in x
        pose = None if pose is None else mirror @ np.asarray(pose, np.float64) @ mirror
        next_pose = None if next_pose is None else mirror @ np.asarray(next_pose, np.float64) @ mirror
        nxt = None if nxt is None else nxt[:, ::-1]
        img, prev = img[:, ::-1], prev[:, ::-1]
        seg = None if seg is None else seg[:, ::-1]
        depth = None if depth is None else depth[:, ::-1]
        seg_w = None if seg_w is None else seg_w[:, ::-1]
        depth_w = None if depth_w is None else depth_w[:, ::-1]
        if flow is not None:
            flow = flow[:, ::-1].copy()
            flow[..., 0] *= -1
        if boxes is not None:
            boxes = boxes.copy()
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
        if ignore is not None:
            ignore = ignore.copy()
            ignore[:, [0, 2]] = w - ignore[:, [2, 0]]
    mean_t = np.asarray(mean, np.float32) * 255
    std_t = np.asarray(std, np.float32) * 255

    def norm(x):
        return torch.from_numpy(((np.ascontiguousarray(x, np.float32) - mean_t) / std_t).transpose(2, 0, 1))
    out = {'image': norm(img), 'prev_image': norm(prev),
           'has_segmentation': torch.tensor(seg is not None), 'has_depth': torch.tensor(depth is not None),
           'has_flow': torch.tensor(flow is not None and bool(sample.get('flow_valid', True))),
           'has_detection': torch.tensor(boxes is not None)}
    out['segmentation'] = torch.from_numpy(np.ascontiguousarray(seg, np.int64)) if seg is not None else \
        torch.full((h, w), IGNORE, dtype=torch.int64)
    out['depth'] = torch.from_numpy(np.ascontiguousarray(depth, np.float32)) if depth is not None else \
        torch.full((h, w), float('nan'))
    out['flow'] = torch.from_numpy(np.ascontiguousarray(flow, np.float32).transpose(2, 0, 1)) if flow is not None \
        else torch.full((2, h, w), float('nan'))
    oh, ow = (h + STRIDE - 1) // STRIDE, (w + STRIDE - 1) // STRIDE
    heat, size, offset, mask = detection_targets(
        boxes if boxes is not None else np.zeros((0, 4)), classes if classes is not None else np.zeros(0),
        num_classes_det, oh, ow)
    out.update(det_heat=torch.from_numpy(heat), det_size=torch.from_numpy(size),
               det_offset=torch.from_numpy(offset), det_mask=torch.from_numpy(mask),
               det_ignore=torch.from_numpy(ignore_cells(ignore, oh, ow)))
    # Confidence of pseudo-labels (1 for real labels): weights of each pixel and box in the losses.
    out['seg_weight'] = torch.ones((h, w)) if seg_w is None else \
        torch.from_numpy(np.ascontiguousarray(seg_w, np.float32))
    out['depth_weight'] = torch.ones((h, w)) if depth_w is None else \
        torch.from_numpy(np.ascontiguousarray(depth_w, np.float32))
    out['det_weight'] = torch.from_numpy(box_weight_cells(boxes, box_w, oh, ow))
    # Camera intrinsics at this image's pixels (self-supervised losses); identity when unknown.
    out['intrinsics'] = torch.eye(3) if k is None else torch.tensor(np.asarray(k, np.float32))
    out['has_intrinsics'] = torch.tensor(k is not None)
    # Camera motion from odometry, this frame's camera -> the previous frame's (4x4); identity when unknown.
    out['pose'] = torch.eye(4) if pose is None else torch.tensor(np.asarray(pose, np.float32))
    out['has_pose'] = torch.tensor(pose is not None)
    # The next frame, a second source for the photometric terms (this camera -> the next one's motion)
    out['next_image'] = norm(nxt) if nxt is not None else out['prev_image'].clone()
    out['has_next'] = torch.tensor(nxt is not None)
    out['next_pose'] = torch.eye(4) if next_pose is None else torch.tensor(np.asarray(next_pose, np.float32))
    out['has_next_pose'] = torch.tensor(next_pose is not None)
    return out


def box_weight_cells(boxes, weights, out_h: int, out_w: int) -> np.ndarray:
    """[h, w] weight of each detection cell: a box's weight (its pseudo-label score) at its
    centre cell, 1 elsewhere (real boxes and negatives count fully)."""
    out = np.ones((out_h, out_w), np.float32)
    if boxes is None or weights is None:
        return out
    for (x1, y1, x2, y2), wt in zip(np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(weights).reshape(-1)):
        ix, iy = int((x1 + x2) / 2 / STRIDE), int((y1 + y2) / 2 / STRIDE)
        if 0 <= ix < out_w and 0 <= iy < out_h and x2 > x1 and y2 > y1:
            out[iy, ix] = min(out[iy, ix], float(wt))
    return out


def ignore_cells(boxes, out_h: int, out_w: int) -> np.ndarray:
    """[h, w] float32, 1 at detection cells whose centre lies in an ignore box (DontCare, a class
    the model lacks): the heatmap loss neither rewards nor punishes detections there."""
    out = np.zeros((out_h, out_w), np.float32)
    if boxes is None:
        return out
    for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4):
        c0, c1 = int(np.ceil(x1 / STRIDE - 0.5)), int(np.floor(x2 / STRIDE - 0.5))
        r0, r1 = int(np.ceil(y1 / STRIDE - 0.5)), int(np.floor(y2 / STRIDE - 0.5))
        out[max(r0, 0):max(r1 + 1, 0), max(c0, 0):max(c1 + 1, 0)] = 1.0
    return out


def _relative_pose(world, previous_stamp: float, stamp: float) -> np.ndarray:
    """The world's true camera motion as odometry gives it: this frame's camera -> the previous one's (4x4)."""
    return np.linalg.inv(world.scene.camera_to_world(previous_stamp)) @ world.scene.camera_to_world(stamp)


def crop_intrinsics(k, x0: float, y0: float, sx: float, sy: float) -> np.ndarray:
    """Intrinsics after cropping at (x0, y0) and scaling by (sx, sy) (pixel centres kept)."""
    k = np.asarray(k, np.float64)
    out = np.eye(3)
    out[0, 0], out[1, 1] = k[0, 0] * sx, k[1, 1] * sy
    out[0, 2], out[1, 2] = (k[0, 2] - x0 + 0.5) * sx - 0.5, (k[1, 2] - y0 + 0.5) * sy - 0.5
    return out


def zoom_sample(sample: Sample, zoom: float) -> Sample:
    """The sample as a lens `zoom` times longer would have seen it: the centre 1/zoom of every
    image and label, scaled back to full size. Depth labels are divided by zoom: the network
    learns depth for the training focal length, under which a zoomed-in object looks that much
    nearer; the Predictor multiplies by the actual focal ratio at run time (docs/MODEL.md), so
    training over a range of zooms keeps the network from memorising one camera."""
    if zoom == 1.0:
        return sample
    from hydranet_ros.training.real_data import resize_sparse_depth
    h, w = sample['image'].shape[:2]
    ch, cw = max(1, int(round(h / zoom))), max(1, int(round(w / zoom)))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    sx, sy = w / cw, h / ch
    out = Sample(sample)

    def crop(a):
        return a[y0:y0 + ch, x0:x0 + cw]
    for key in IMAGE_KEYS:
        if sample.get(key) is not None:
            out[key] = cv2.resize(crop(sample[key]), (w, h), interpolation=cv2.INTER_LINEAR)
    if sample.get('segmentation') is not None:
        out['segmentation'] = cv2.resize(crop(sample['segmentation']), (w, h), interpolation=cv2.INTER_NEAREST)
    for key in ('segmentation_weight', 'depth_weight'):
        if sample.get(key) is not None:
            out[key] = cv2.resize(np.ascontiguousarray(crop(sample[key]), np.float32), (w, h),
                                  interpolation=cv2.INTER_NEAREST)
    if sample.get('intrinsics') is not None:
        out['intrinsics'] = crop_intrinsics(sample['intrinsics'], x0, y0, sx, sy)
    if sample.get('depth') is not None:
        out['depth'] = resize_sparse_depth(np.asarray(crop(sample['depth']), np.float32), (h, w)) / np.float32(zoom)
    if sample.get('flow') is not None:
        flow = cv2.resize(np.ascontiguousarray(crop(sample['flow']), np.float32), (w, h),
                          interpolation=cv2.INTER_NEAREST)
        flow[..., 0] *= sx
        flow[..., 1] *= sy
        out['flow'] = flow
    for key in ('boxes', 'ignore_boxes'):
        if sample.get(key) is None:
            continue
        boxes = (np.asarray(sample[key], np.float32).reshape(-1, 4) - [x0, y0, x0, y0]) * [sx, sy, sx, sy]
        boxes = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
        keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        out[key] = boxes[keep]
        if key == 'boxes' and sample.get('classes') is not None:
            out['classes'] = np.asarray(sample['classes'])[keep]
        if key == 'boxes' and sample.get('box_weights') is not None:
            out['box_weights'] = np.asarray(sample['box_weights'])[keep]
    return out


def jitter_colors(sample: Sample, rng: np.random.Generator, strength: float, hue_strength: float = 0.0) -> Sample:
    """The sample with one random photometric change applied to both images alike: gamma,
    saturation, per-channel gain (white balance and exposure) and an offset (strength); a hue
    rotation of up to hue_strength x 180 degrees and, with probability hue_strength / 2, grey.
    Labels unchanged."""
    if strength <= 0 and hue_strength <= 0:
        return sample
    gamma = float(np.exp(rng.uniform(-strength, strength)))
    saturation = float(rng.uniform(1 - 2 * strength, 1 + strength))
    gain = rng.uniform(1 - strength, 1 + strength, 3) * rng.uniform(1 - strength, 1 + strength)
    offset = float(rng.uniform(-strength, strength) * 0.2)
    hue, grey = 0, False
    if hue_strength > 0:
        hue = int(round(rng.uniform(-hue_strength, hue_strength) * 90))   # OpenCV hue units: 180 per turn
        grey = bool(rng.random() < hue_strength / 2)
    out = Sample(sample)
    for key in IMAGE_KEYS:
        if sample.get(key) is None:
            continue
        x = (np.asarray(sample[key], np.float32) / 255.0) ** gamma
        mean = x.mean(axis=2, keepdims=True)
        x = (mean + (x - mean) * saturation) * gain.astype(np.float32) + offset
        img = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
        if hue:
            hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
            hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + hue) % 180).astype(np.uint8)
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        if grey:
            img = np.repeat(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        out[key] = img
    return out


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


def amplitude_swap(image: np.ndarray, target: np.ndarray, beta: float) -> np.ndarray:
    """Fourier domain adaptation (Yang and Soatto, CVPR 2020): image [H, W, 3] uint8 with the
    lowest spatial frequencies of its amplitude spectrum (a centred window of half-size
    beta x min(H, W)) taken from target (any size; resized to H x W) and its phase kept. The
    global light, colour cast, exposure and haze of target's camera carry over; edges, textures
    and so every label of image stay where they are."""
    return _swap_low_amplitude(image, low_amplitude(target, image.shape[:2], beta))


def _window(shape, beta: float) -> tuple:
    """The centred low-frequency window of a shifted spectrum of an image of shape (H, W)."""
    h, w = shape
    b = max(1, int(np.floor(min(h, w) * beta)))
    return slice(h // 2 - b, h // 2 + b + 1), slice(w // 2 - b, w // 2 + b + 1)


def low_amplitude(target: np.ndarray, shape, beta: float) -> np.ndarray:
    """target's amplitude spectrum in the low-frequency window, at image shape (H, W)."""
    h, w = shape
    if target.shape[:2] != (h, w):
        target = cv2.resize(target, (w, h), interpolation=cv2.INTER_AREA)
    spectrum = np.fft.fftshift(np.fft.fft2(target.astype(np.float32), axes=(0, 1)), axes=(0, 1))
    return np.abs(spectrum[_window((h, w), beta)])


def _swap_low_amplitude(image: np.ndarray, window_amplitude: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    b = window_amplitude.shape[0] // 2
    window = slice(h // 2 - b, h // 2 + b + 1), slice(w // 2 - b, w // 2 + b + 1)
    src = np.fft.fftshift(np.fft.fft2(image.astype(np.float32), axes=(0, 1)), axes=(0, 1))
    amp, phase = np.abs(src), np.angle(src)
    amp[window] = window_amplitude
    out = np.fft.ifft2(np.fft.ifftshift(amp * np.exp(1j * phase), axes=(0, 1)), axes=(0, 1)).real
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


class AppearanceTransfer:
    """Labelled images shown in another camera's look: with probability `probability`, every
    image of a sample (the pair, and the next frame) gets the low-frequency amplitude of one
    image drawn from `files` (amplitude_swap), the same for all of them so the frames still
    match each other. Target images are read once, at most max_width pixels wide (only their
    lowest frequencies are used)."""

    def __init__(self, files, beta: float = 0.01, probability: float = 0.5, max_width: int = 256):
        self.files, self.beta, self.probability = list(files), float(beta), float(probability)
        self.max_width = int(max_width)
        if not self.files:
            raise ValueError('appearance transfer needs at least one target image')
        self._cache = {}

    def _target(self, k: int) -> np.ndarray:
        if k not in self._cache:
            bgr = cv2.imread(str(self.files[k]), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f'cannot read image {self.files[k]}')
            h, w = bgr.shape[:2]
            if w > self.max_width:
                size = (self.max_width, max(1, round(h * self.max_width / w)))
                bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
            self._cache[k] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return self._cache[k]

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.probability:
            return sample
        target = self._target(int(rng.integers(len(self.files))))
        out, amplitudes = Sample(sample), {}
        for key in IMAGE_KEYS:
            if sample.get(key) is not None:
                image = np.asarray(sample[key])
                shape = image.shape[:2]
                if shape not in amplitudes:          # the frames of a sample share a size: one spectrum
                    amplitudes[shape] = low_amplitude(target, shape, self.beta)
                out[key] = _swap_low_amplitude(image, amplitudes[shape])
        return out


def degrade_sensor(sample: Sample, rng: np.random.Generator, noise_sigma=(0.0, 0.0), jpeg_quality=(0, 0),
                   probability: float = 0.5) -> Sample:
    """The sample as a noisier camera with a lossy transport would give it: with probability
    `probability`, Gaussian noise of a sigma drawn from noise_sigma (0-255 scale) and a JPEG round
    trip at a quality drawn from jpeg_quality (0 = none). One sigma and quality per sample (one
    camera), the noise drawn afresh for every frame (as a sensor's is)."""
    noisy, lossy = noise_sigma[1] > 0, jpeg_quality[1] > 0
    if not (noisy or lossy) or rng.random() >= probability:
        return sample
    sigma = float(rng.uniform(*noise_sigma)) if noisy else 0.0
    quality = int(round(rng.uniform(*jpeg_quality))) if lossy else 0
    out = Sample(sample)
    for key in IMAGE_KEYS:
        if sample.get(key) is None:
            continue
        img = np.asarray(sample[key])
        if sigma > 0:
            img = np.clip(img.astype(np.float32) + rng.normal(0, sigma, img.shape).astype(np.float32) + 0.5,
                          0, 255).astype(np.uint8)
        if quality > 0:
            ok, buf = cv2.imencode('.jpg', img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()
        out[key] = img
    return out


def augment_look(sample: Sample, dataset) -> Sample:
    """A dataset's look augmentations beyond colour jitter, when it augments: another camera's
    look (dataset.appearance, an AppearanceTransfer) and a sensor's noise and JPEG
    (dataset.sensor, degrade_sensor's keyword arguments). Both unset: the sample unchanged."""
    if not dataset.augment:
        return sample
    appearance = getattr(dataset, 'appearance', None)
    if appearance is not None:
        sample = appearance(sample, dataset.rng)
    sensor = getattr(dataset, 'sensor', None)
    if sensor:
        sample = degrade_sensor(sample, dataset.rng, **sensor)
    return sample


#: each image's class map, for recolour_classes
CLASS_MAP_KEYS = {'image': 'segmentation', 'prev_image': 'prev_segmentation', 'next_image': 'next_segmentation'}


def recolour_classes(sample: Sample, rng: np.random.Generator, strength: float) -> Sample:
    """Every class of the sample painted its own random colour change (per-channel gains of
    1 +- strength and a hue rotation of up to strength x 180 degrees), the same in every frame
    (each frame's own class map: 'segmentation', 'prev_segmentation', 'next_segmentation'), so
    the network cannot tell road from sidewalk from terrain by colour alone and must look at
    layout and texture. A frame without its class map is left as it is."""
    if strength <= 0 or sample.get('segmentation') is None:
        return sample
    classes = np.unique(sample['segmentation'])
    classes = classes[classes != IGNORE]
    changes = {int(c): (rng.uniform(1 - strength, 1 + strength, 3).astype(np.float32),
                        int(round(rng.uniform(-strength, strength) * 90))) for c in classes}
    out = Sample(sample)
    for key, map_key in CLASS_MAP_KEYS.items():
        img, labels = sample.get(key), sample.get(map_key)
        if img is None or labels is None or labels.shape != img.shape[:2]:
            continue
        hsv = cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2HSV)
        hue = hsv[..., 0].astype(np.int16)
        gain = np.ones(img.shape, np.float32)
        for c, (g, h) in changes.items():
            m = labels == c
            hue[m] = (hue[m] + h) % 180
            gain[m] = g
        hsv[..., 0] = hue.astype(np.uint8)
        rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32) * gain
        out[key] = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    return out


def _zoom(dataset) -> float:
    """A zoom factor drawn from dataset.zoom_range when augmenting (1.0 when the range is [1, 1])."""
    lo, hi = getattr(dataset, 'zoom_range', (1.0, 1.0))
    return float(dataset.rng.uniform(lo, hi)) if dataset.augment and hi > lo else float(lo)


def letterbox_content(camera: str, input_size) -> tuple:
    """(h, w) a camera preset's image takes inside input_size when letterboxed as the Predictor does."""
    from hydranet_ros.inference.letterbox import Letterbox
    from hydranet_ros.world.camera import PinholeCamera
    cam = PinholeCamera.preset(camera)
    return Letterbox.fit((cam.height, cam.width), input_size).content_size


def pad_tensors(item: dict, input_size) -> dict:
    """A to_tensors() item of the letterboxed content, padded at the right and bottom to
    input_size as the Predictor pads: zero image (the mean colour), no labels, no objects."""
    big_h, big_w = int(input_size[0]), int(input_size[1])
    h, w = item['image'].shape[-2:]
    if (h, w) == (big_h, big_w):
        return item
    fills = {'image': 0.0, 'prev_image': 0.0, 'next_image': 0.0, 'segmentation': IGNORE, 'depth': float('nan'),
             'flow': float('nan'), 'seg_weight': 1.0, 'depth_weight': 1.0}   # padding has no labels anyway
    out = dict(item)
    for key, fill in fills.items():
        t = item[key]
        padded = torch.full((*t.shape[:-2], big_h, big_w), fill, dtype=t.dtype)
        padded[..., :h, :w] = t
        out[key] = padded
    oh, ow = (big_h + STRIDE - 1) // STRIDE, (big_w + STRIDE - 1) // STRIDE
    for key in ('det_heat', 'det_size', 'det_offset', 'det_mask', 'det_ignore', 'det_weight'):
        t = item[key]
        padded = (torch.ones if key == 'det_weight' else torch.zeros)((*t.shape[:-2], oh, ow), dtype=t.dtype)
        padded[..., :t.shape[-2], :t.shape[-1]] = t
        out[key] = padded
    return out


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
                 labels=('segmentation', 'depth', 'flow', 'detection'), odometry: bool = False):
        self.samples: list[Sample] = []
        self.num_det = num_detection_classes
        self.mean, self.std, self.augment = mean, std, augment
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
        if self.augment and getattr(self, 'class_colour_jitter', 0.0) > 0:
            sample = recolour_classes(sample, self.rng, self.class_colour_jitter)
        sample = zoom_sample(sample, _zoom(self))
        if self.augment:
            sample = jitter_colors(sample, self.rng, getattr(self, 'color_jitter', 0.0),
                                   getattr(self, 'hue_jitter', 0.0))
            sample = augment_look(sample, self)
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
                 letterbox: bool = False, training_focal_px: float | None = None):
        self.root = Path(root)
        self.images, self.first = [], []
        for _, images in sequence_images(self.root):
            self.images += images
            self.first += [k == 0 for k in range(len(images))]
        if not self.images:
            raise FileNotFoundError(f'no images in {self.root / "images"} (nor in sequence folders under {self.root})')
        self.size = tuple(int(v) for v in input_size)
        self.num_det, self.mean, self.std, self.augment = num_detection_classes, mean, std, augment
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
        sample = augment_look(zoom_sample(self.load(i), _zoom(self)), self)
        flip = bool(self.augment and self.rng.random() < 0.5)
        item = to_tensors(sample, self.num_det, self.mean, self.std, flip)
        return pad_tensors(item, self.size) if self.letterbox else item
