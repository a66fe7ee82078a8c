"""Instance head: a centre heatmap and offsets to the centre (Panoptic-DeepLab's class-agnostic
instance cue), on the shared stride-4 decoder features.

Output [B, 3, H/4, W/4]: channel 0 the probability that an object's centre lies at the cell
(sigmoid; trained on Gaussians of sigma 8 input pixels around each instance's centre of mass),
channels 1-2 the offset (dx, dy) from the cell's centre to its object's centre in input pixels.
Pixels are grouped into instances after the network (inference/instances.py): each pixel of a
"thing" class goes to the nearest peak of the heatmap from where its offset points. Trained
after the fact with everything else frozen (training/instances.py).
"""
import torch
from torch import nn

from hydranet_ros.model.head_inputs import HeadInputs
from hydranet_ros.model.layers import SeparableHead

#: offsets are predicted in units of this many pixels (a raw output near 1 is a typical offset)
OFFSET_SCALE = 16.0


class InstanceHead(nn.Module):
    """Centre heatmap and centre offsets at stride 4."""
    output_stride = 4

    def __init__(self, channels: int, hidden: int = 64):
        super().__init__()
        self.head = SeparableHead(channels, 3, hidden=hidden)

    def forward(self, inputs: HeadInputs):
        x = self.head(inputs.decoded)
        return torch.cat([torch.sigmoid(x[:, :1]), x[:, 1:] * OFFSET_SCALE], dim=1)
