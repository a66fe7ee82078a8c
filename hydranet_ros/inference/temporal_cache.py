"""Per-stream cache of the previous frame's flow features, so each frame is encoded once."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from hydranet_ros.inference.results import FlowStatus


@dataclass
class _Entry:
    features: torch.Tensor   # [C, h, w] of one image
    image_size: tuple        # (height, width) of the original image
    stamp: int               # integer nanoseconds


class FlowFeatureCache:
    """Remembers, per stream (camera), the last frame's encoder features at the flow stride.

    lookup() gives them back only when they can be paired with the new frame: same image
    size, a stamp later than the cached one, and a gap no larger than max_gap_s. Anything
    else resets that stream, and the returned status (with a detail for people) says why.
    """

    def __init__(self, max_gap_s: float | None = 0.5):
        if max_gap_s is not None and max_gap_s <= 0:
            raise ValueError(f'max_gap_s must be > 0 or None, got {max_gap_s}')
        self.max_gap_s = max_gap_s
        self._entries: dict[str, _Entry] = {}

    def lookup(self, stream: str, image_size, stamp: int):
        """-> (features or None, previous stamp or None, FlowStatus, detail)."""
        entry = self._entries.get(stream)
        if entry is None:
            return None, None, FlowStatus.NO_PREVIOUS_FRAME, 'no previous frame'
        if tuple(image_size) != entry.image_size:
            self.reset(stream)
            return None, None, FlowStatus.SIZE_CHANGED, (
                f'image size changed from {entry.image_size[1]}x{entry.image_size[0]} '
                f'to {image_size[1]}x{image_size[0]}')
        gap = (stamp - entry.stamp) / 1e9      # seconds, for the limit and the message only
        if stamp <= entry.stamp:
            self.reset(stream)
            return None, None, FlowStatus.TIME_WENT_BACKWARDS, f'time went backwards or stood still ({gap:+.3f} s)'
        if self.max_gap_s is not None and gap > self.max_gap_s:
            self.reset(stream)
            return None, None, FlowStatus.GAP_TOO_LONG, f'gap {gap:.3f} s exceeds the limit {self.max_gap_s:.3f} s'
        return entry.features, entry.stamp, FlowStatus.OK, 'ok'

    def store(self, stream: str, features: torch.Tensor, image_size, stamp: int):
        self._entries[stream] = _Entry(features.detach(), tuple(image_size), int(stamp))

    def reset(self, stream: str | None = None):
        """Forget one stream, or all streams when stream is None."""
        if stream is None:
            self._entries.clear()
        else:
            self._entries.pop(stream, None)

    def __len__(self):
        return len(self._entries)
