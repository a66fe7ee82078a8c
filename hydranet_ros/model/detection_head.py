"""Anchor-free, center-heatmap detection head (CenterNet style) at stride 4.

Output channels: per-class center heatmap (probabilities), box width and height in input
pixels, sub-cell center offset (x, y) in stride-4 cells. Decoding is in detection_decode.py.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from hydranet_ros.model.head_inputs import HeadInputs
from hydranet_ros.model.layers import ConvBNAct

STRIDE = 4
# Heatmap bias so initial center probabilities are ~0.1 (CenterNet's choice; stable focal loss).
_PRIOR_BIAS = -math.log((1 - 0.1) / 0.1)


class DetectionHead(nn.Module):
    """CenterNet-style maps at stride 4: class heatmaps, box size in pixels, centre offset."""
    output_stride = STRIDE

    def __init__(self, channels: int, num_classes: int, hidden: int):
        super().__init__()
        self.num_classes = num_classes
        self.trunk = nn.Sequential(ConvBNAct(channels, channels, 3, groups=channels),
                                   ConvBNAct(channels, hidden, 1))
        self.heatmap = nn.Conv2d(hidden, num_classes, 1)
        self.size = nn.Conv2d(hidden, 2, 1)
        self.offset = nn.Conv2d(hidden, 2, 1)
        nn.init.constant_(self.heatmap.bias, _PRIOR_BIAS)

    def forward(self, inputs: HeadInputs):
        x = self.trunk(inputs.decoded)
        heat = torch.sigmoid(self.heatmap(x))
        # Sizes are predicted in stride-4 cells through softplus (always positive), reported
        # in input pixels.
        size = F.softplus(self.size(x)) * STRIDE
        offset = torch.sigmoid(self.offset(x))
        return torch.cat([heat, size, offset], dim=1)
