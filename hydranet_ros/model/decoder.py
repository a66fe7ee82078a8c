"""Shared Light-Weight RefineNet decoder (Nekrasov et al., BMVC 2018 / ICRA 2019).

Per scale: a 1x1 projection of the encoder feature, the coarser level's output (1x1 conv,
upsampled) added, then chained residual pooling. Fused top-down from stride 32 to one
stride-4 representation that all dense heads share.
"""
import torch
import torch.nn.functional as F
from torch import nn


class ChainedResidualPooling(nn.Module):
    """x + sum_i path_i, path_i = conv1x1(maxpool5x5(path_{i-1})): context at little cost."""

    def __init__(self, channels: int, stages: int):
        super().__init__()
        self.pool = nn.MaxPool2d(5, stride=1, padding=2)
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 1, bias=False) for _ in range(stages))

    def forward(self, x):
        out = x
        path = x
        for conv in self.convs:
            path = conv(self.pool(path))
            out = out + path
        return out


class RefineLevel(nn.Module):
    """One Light-Weight RefineNet level: fuse a skip connection with the coarser level, then chained residual
    pooling."""
    def __init__(self, cin: int, channels: int, stages: int, has_coarser: bool):
        super().__init__()
        self.project = nn.Conv2d(cin, channels, 1, bias=False)
        self.coarser = nn.Conv2d(channels, channels, 1, bias=False) if has_coarser else None
        self.crp = ChainedResidualPooling(channels, stages)

    def forward(self, feat, coarser=None):
        x = self.project(feat)
        if coarser is not None:
            x = x + F.interpolate(self.coarser(coarser), size=x.shape[-2:], mode='bilinear',
                                  align_corners=False)
        return self.crp(F.relu(x))


class LightWeightRefineDecoder(nn.Module):
    """The shared decoder: encoder features at strides 32..4 fused into one stride-4 representation."""
    def __init__(self, encoder_channels: dict, channels: int, crp_stages: int):
        super().__init__()
        self.strides = sorted(encoder_channels, reverse=True)  # 32, 16, 8, 4
        self.levels = nn.ModuleDict({
            str(st): RefineLevel(encoder_channels[st], channels, crp_stages, has_coarser=i > 0)
            for i, st in enumerate(self.strides)})
        self.out_channels = channels

    def forward(self, feats: dict[int, torch.Tensor]) -> torch.Tensor:
        x = None
        for st in self.strides:
            x = self.levels[str(st)](feats[st], x)
        return x
