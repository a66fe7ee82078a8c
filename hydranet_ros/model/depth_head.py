"""Depth head: metric depth in metres, bounded to the configured [min, max] range.

The network predicts a sigmoid-squashed position in log-depth between the bounds, so every
output is a valid depth and relative errors weigh alike near and far.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from hydranet_ros.model.head_inputs import HeadInputs
from hydranet_ros.model.layers import SeparableHead


class DepthHead(nn.Module):
    """Metric depth in metres, within [depth_min, depth_max], at the input resolution."""
    output_stride = 1

    def __init__(self, channels: int, depth_min: float, depth_max: float):
        super().__init__()
        self.head = SeparableHead(channels, 1)
        self.log_min = math.log(depth_min)
        self.log_range = math.log(depth_max) - math.log(depth_min)

    def forward(self, inputs: HeadInputs):
        z = F.interpolate(self.head(inputs.decoded), size=inputs.size, mode='bilinear', align_corners=False)
        return torch.exp(self.log_min + self.log_range * torch.sigmoid(z))
