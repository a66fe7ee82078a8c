"""Optical flow head: previous -> current displacement in input pixels.

A local correlation cost volume between the two frames' encoder features at a coarse stride
gives a coarse flow. Optional updates (PWC-Net / RAFT style, at the same stride) warp the
previous features by the current estimate, correlate again in a small window and add a
residual, which recovers sub-cell motion. An optional fine level does the same with the
stride-8 encoder features (projected for matching), so the previous frame's flow features then
carry both strides, packed at stride 8 (see pack_flow_features). The flow is upsampled to
stride 4 and refined with the current frame's shared decoder features, then upsampled to the
input size. Every resize rescales the vectors.
"""
import torch
import torch.nn.functional as F
from torch import nn

from hydranet_ros.model.flow_ops import local_correlation, resize_flow, warp_previous
from hydranet_ros.model.head_inputs import HeadInputs
from hydranet_ros.model.layers import ConvBNAct


#: Channels the stride-8 features are projected to before the fine correlation.
FINE_MATCH_CHANNELS = 32


def pack_flow_features(fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    """One tensor at stride 8 holding the stride-8 features and the stride-16 features
    (repeated 2x2), so a frame's flow features stay a single cached tensor."""
    return torch.cat([fine, F.interpolate(coarse, size=fine.shape[-2:], mode='nearest')], dim=1)


def unpack_flow_features(packed: torch.Tensor, fine_channels: int):
    """Inverse of pack_flow_features: (stride-8 features, stride-16 features), exactly."""
    return packed[:, :fine_channels], F.avg_pool2d(packed[:, fine_channels:], 2)


class FlowHead(nn.Module):
    """Optical flow previous -> current frame from a local cost volume of cached encoder features, optionally
    refined by warped correlation levels, at the input resolution."""
    output_stride = 1

    def __init__(self, feature_channels: int, decoder_channels: int, radius: int,
                 refine_channels: int, iterations: int = 0, update_radius: int = 2,
                 fine_channels: int = 0, fine_radius: int = 0):
        super().__init__()
        self.fine_channels = fine_channels if fine_radius else 0
        self.radius = radius
        self.update_radius = update_radius
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
        update_in = (2 * update_radius + 1) ** 2 + feature_channels + 2
        self.updates = nn.ModuleList(_update_block(update_in, hidden) for _ in range(iterations))
        self.fine_radius = fine_radius
        if fine_radius:
            self.fine_project = ConvBNAct(fine_channels, FINE_MATCH_CHANNELS, 1, act=False)
            fine_in = (2 * fine_radius + 1) ** 2 + FINE_MATCH_CHANNELS + 2
            self.fine_update = _update_block(fine_in, 64)

    def forward(self, inputs: HeadInputs):
        decoded, current_feat, previous_feat = inputs.decoded, inputs.flow_features, inputs.previous_flow_features
        if previous_feat is None:
            raise ValueError("task 'flow' needs previous_features (the previous frame's flow features)")
        if previous_feat.shape != current_feat.shape:
            raise ValueError(f'previous_features {tuple(previous_feat.shape)} do not match '
                             f'this frame\'s {tuple(current_feat.shape)}: reset the cache on a size change')
        previous_feat = previous_feat.to(current_feat.dtype)
        if self.fine_channels:
            current_fine, current_feat = unpack_flow_features(current_feat, self.fine_channels)
            previous_fine, previous_feat = unpack_flow_features(previous_feat, self.fine_channels)
        cost = local_correlation(current_feat, previous_feat, self.radius)
        coarse = self.estimate(torch.cat([cost, current_feat], dim=1))  # in coarse-grid pixels
        for update in self.updates:
            warped = warp_previous(previous_feat, coarse)
            cost = local_correlation(current_feat, warped, self.update_radius)
            coarse = coarse + update(torch.cat([cost, current_feat, coarse], dim=1))
        flow4 = resize_flow(coarse, decoded.shape[-2:])
        if self.fine_channels:
            current_fine = self.fine_project(current_fine)
            previous_fine = self.fine_project(previous_fine)
            flow8 = resize_flow(coarse, current_fine.shape[-2:])
            warped = warp_previous(previous_fine, flow8)
            cost = local_correlation(current_fine, warped, self.fine_radius)
            delta = self.fine_update(torch.cat([cost, current_fine, flow8], dim=1))
            # the residual is resized on its own, so a zero residual leaves the coarse flow as it was
            flow4 = flow4 + resize_flow(delta, decoded.shape[-2:])
        flow4 = flow4 + self.refine(torch.cat([decoded, flow4], dim=1))
        return resize_flow(flow4, inputs.size)


def _update_block(cin: int, hidden: int) -> nn.Sequential:
    """Residual flow from a warped cost volume; the last layer starts at zero, so a new update
    leaves a trained estimate unchanged until it has learned something."""
    last = nn.Conv2d(64, 2, 3, padding=1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(
        ConvBNAct(cin, hidden, 1),
        ConvBNAct(hidden, hidden, 3, groups=hidden),
        ConvBNAct(hidden, hidden, 3, groups=hidden),
        ConvBNAct(hidden, 64, 1),
        last)
