"""What every task head is called with: one signature for all heads.

A head is an nn.Module with `forward(inputs: HeadInputs) -> Tensor` and an `output_stride`
(1: full input resolution; the detection head's maps are stride 4). HydraNet.forward calls each
requested head the same way and crops its output to the unpadded image with that stride, so a
new head needs no change there.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class HeadInputs:
    """The arguments of every head, in one object."""
    decoded: torch.Tensor                              # the shared decoder's stride-4 features
    size: tuple[int, int]                              # padded input (H, W); dense heads upsample to it
    flow_features: torch.Tensor | None = None          # this frame's flow features
    previous_flow_features: torch.Tensor | None = None  # the previous frame's (flow only)
