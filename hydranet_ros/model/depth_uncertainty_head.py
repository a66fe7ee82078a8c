"""Depth uncertainty head: the Laplace scale b (metres) of the depth head's error per pixel.

Trained on the network's own depth error by negative log-likelihood, |d - d_hat| / b + log b
(training/uncertainty.py), so P(|error| <= b) = 1 - 1/e (63%) and P(|error| <= 2b) = 86% where
it is calibrated; b is bounded like depth, squashed in log space.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from hydranet_ros.model.head_inputs import HeadInputs
from hydranet_ros.model.layers import SeparableHead

#: the bounds of the predicted scale (metres)
SCALE_MIN, SCALE_MAX = 0.01, 50.0


class DepthUncertaintyHead(nn.Module):
    """Laplace scale b of the depth error in metres, within [SCALE_MIN, SCALE_MAX], at the input
    resolution (metric for the training camera, as depth is: the Predictor scales both alike)."""
    output_stride = 1

    def __init__(self, channels: int):
        super().__init__()
        self.head = SeparableHead(channels, 1)
        self.log_min = math.log(SCALE_MIN)
        self.log_range = math.log(SCALE_MAX) - math.log(SCALE_MIN)

    def forward(self, inputs: HeadInputs):
        z = F.interpolate(self.head(inputs.decoded), size=inputs.size, mode='bilinear', align_corners=False)
        return torch.exp(self.log_min + self.log_range * torch.sigmoid(z))
