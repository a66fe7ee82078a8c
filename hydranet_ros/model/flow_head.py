"""Optical flow head: previous -> current displacement in input pixels.

A local correlation cost volume between the two frames' encoder features at a coarse stride
gives a coarse flow; it is upsampled to stride 4 and refined with the current frame's shared
decoder features, then upsampled to the input size. Every resize rescales the vectors.
"""
import torch
from torch import nn

from hydranet_ros.model.flow_ops import local_correlation, resize_flow
from hydranet_ros.model.layers import ConvBNAct


class FlowHead(nn.Module):
    def __init__(self, feature_channels: int, decoder_channels: int, radius: int,
                 refine_channels: int):
        super().__init__()
        self.radius = radius
        cost_channels = (2 * radius + 1) ** 2
        hidden = max(64, feature_channels)
        self.estimate = nn.Sequential(
            ConvBNAct(cost_channels + feature_channels, hidden, 1),
            ConvBNAct(hidden, hidden, 3, groups=hidden),
            ConvBNAct(hidden, 64, 1),
            nn.Conv2d(64, 2, 3, padding=1))
        self.refine = nn.Sequential(
            ConvBNAct(decoder_channels + 2, refine_channels, 1),
            ConvBNAct(refine_channels, refine_channels, 3, groups=refine_channels),
            nn.Conv2d(refine_channels, 2, 1))

    def forward(self, decoded, current_feat, previous_feat, out_size):
        cost = local_correlation(current_feat, previous_feat, self.radius)
        coarse = self.estimate(torch.cat([cost, current_feat], dim=1))  # in coarse-grid pixels
        flow4 = resize_flow(coarse, decoded.shape[-2:])
        flow4 = flow4 + self.refine(torch.cat([decoded, flow4], dim=1))
        return resize_flow(flow4, out_size)
