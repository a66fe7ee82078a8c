"""Segmentation head: per-pixel class logits from the shared stride-4 representation."""
import torch.nn.functional as F
from torch import nn

from hydranet_ros.model.head_inputs import HeadInputs
from hydranet_ros.model.layers import SeparableHead


class SegmentationHead(nn.Module):
    """Per-pixel class logits at the input resolution."""
    output_stride = 1

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.head = SeparableHead(channels, num_classes)

    def forward(self, inputs: HeadInputs):
        logits = self.head(inputs.decoded)
        return F.interpolate(logits, size=inputs.size, mode='bilinear', align_corners=False)
