"""Fitting any image into the network's input size, and mapping outputs back.

The image is scaled by one factor (aspect ratio kept) to fit inside the input size and placed
at the top-left corner; the rest is padding. Outputs are cropped to the image area and scaled
back by the same factor.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """Fits an image into the network input keeping its aspect ratio (scale, then pad); maps back."""
    image_size: tuple[int, int]     # (h, w) of the original image
    input_size: tuple[int, int]     # (H, W) of the network input
    scale: float                    # network pixels per image pixel
    content_size: tuple[int, int]   # (h, w) of the scaled image inside the input

    @classmethod
    def fit(cls, image_size, input_size) -> 'Letterbox':
        h, w = int(image_size[0]), int(image_size[1])
        big_h, big_w = int(input_size[0]), int(input_size[1])
        scale = min(big_h / h, big_w / w)
        ch = min(big_h, max(1, int(round(h * scale))))
        cw = min(big_w, max(1, int(round(w * scale))))
        return cls((h, w), (big_h, big_w), scale, (ch, cw))

    def apply(self, image: np.ndarray, pad_value, out: np.ndarray | None = None) -> np.ndarray:
        """The letterboxed image, written into out ([H, W, C] of the input size) when given."""
        ch, cw = self.content_size
        if out is None:
            out = np.empty((*self.input_size, image.shape[2]), dtype=image.dtype)
        if (ch, cw) != self.image_size:
            interp = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
            out[:ch, :cw] = cv2.resize(image, (cw, ch), interpolation=interp)
        else:
            out[:ch, :cw] = image
        out[ch:] = pad_value
        out[:ch, cw:] = pad_value
        return out

    def box_to_image(self, boxes: np.ndarray) -> np.ndarray:
        """[N, 4] x1, y1, x2, y2 in network pixels -> original image pixels, clipped."""
        out = boxes / self.scale
        h, w = self.image_size
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, w)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, h)
        return out
