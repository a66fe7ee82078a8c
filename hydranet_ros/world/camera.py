"""Pinhole camera model of the synthetic world (OpenCV convention: x right, y down, z forward)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PinholeCamera:
    """Pinhole intrinsics and pose of the rendering camera (optical frame: x right, y down, z forward)."""
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def preset(cls, name: str) -> 'PinholeCamera':
        """'kitti' (1242x375, KITTI's left colour camera) or 'vga' (640x480)."""
        presets = {'kitti': cls(1242, 375, 721.5377, 721.5377, 609.5593, 172.854),
                   'vga': cls(640, 480, 525.0, 525.0, 319.5, 239.5)}
        if name not in presets:
            raise ValueError(f"unknown camera preset '{name}'; known: {sorted(presets)}")
        return presets[name]

    def scaled(self, width: int, height: int) -> 'PinholeCamera':
        """The same camera imaging at another resolution."""
        sx, sy = width / self.width, height / self.height
        return PinholeCamera(width, height, self.fx * sx, self.fy * sy,
                             (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5)

    @property
    def k(self) -> list:
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    def pixel_rays(self) -> np.ndarray:
        """[H*W, 3] ray directions in camera coordinates with z = 1 (so ray length = depth)."""
        u, v = np.meshgrid(np.arange(self.width, dtype=np.float64), np.arange(self.height, dtype=np.float64))
        return np.stack([(u.ravel() - self.cx) / self.fx, (v.ravel() - self.cy) / self.fy,
                         np.ones(u.size)], axis=1)

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """[N, 3] camera-frame points -> [N, 2] pixel coordinates (u, v)."""
        z = points_cam[:, 2]
        return np.stack([self.fx * points_cam[:, 0] / z + self.cx, self.fy * points_cam[:, 1] / z + self.cy], axis=1)


def checkpoint_focal_px(metadata) -> float | None:
    """A checkpoint's training focal length (pixels at the network input): recorded in its
    metadata, or, for checkpoints of the synthetic world from before it was recorded, derived from
    the training summary's camera preset and input size. None when neither says."""
    recorded = metadata.training_focal_px()
    if recorded:
        return recorded
    data = (metadata.training or {}).get('data') or {}
    if data.get('type') == 'synthetic' and data.get('camera') and data.get('input_size'):
        h, w = data['input_size']
        return float(PinholeCamera.preset(data['camera']).scaled(int(w), int(h)).fx)
    return None
