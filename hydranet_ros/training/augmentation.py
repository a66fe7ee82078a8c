"""Augmentation of training samples, given to a dataset when it is built (RAFT's
`FlowAugmentor(**aug_params)` pattern): `Augmentation` holds every setting, the functions below
do the work (colour jitter, per-class recolouring, another camera's look by Fourier domain
adaptation, a sensor's noise and JPEG)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from hydranet_ros.training.samples import IMAGE_KEYS, Sample
from hydranet_ros.world.classes import IGNORE


@dataclass(frozen=True)
class Augmentation:
    """What a dataset does to a sample when it augments (all off by default); the trainer builds
    one from the `train:` section (docs/TRAINING.md)."""
    zoom_range: tuple = (1.0, 1.0)        # random focal-length zoom range
    color_jitter: float = 0.0             # photometric strength (jitter_colors)
    hue_jitter: float = 0.0               # hue rotation / grey (jitter_colors)
    class_colour_jitter: float = 0.0      # each class its own colour change (synthetic drives' class maps)
    appearance: object = None             # an AppearanceTransfer: another camera's look
    sensor: dict | None = None            # degrade_sensor's keyword arguments: that camera's noise and JPEG

    def zoom(self, rng: np.random.Generator, augment: bool) -> float:
        """A zoom factor drawn from zoom_range when augmenting (the range's low end otherwise)."""
        lo, hi = self.zoom_range
        return float(rng.uniform(lo, hi)) if augment and hi > lo else float(lo)

    def look(self, sample: Sample, rng: np.random.Generator) -> Sample:
        """Another camera's look (appearance) and its sensor (noise, JPEG), when set."""
        if self.appearance is not None:
            sample = self.appearance(sample, rng)
        if self.sensor:
            sample = degrade_sensor(sample, rng, **self.sensor)
        return sample

    def without_look(self) -> 'Augmentation':
        """The same without the target camera's look (for that camera's own frames)."""
        return replace(self, appearance=None, sensor=None)

    @property
    def has_look(self) -> bool:
        return self.appearance is not None or bool(self.sensor)


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
