"""MobileNetV2-style encoder exposing features at strides 4, 8, 16 and 32."""
import torch
from torch import nn

from hydranet_ros.model.layers import ConvBNAct, make_divisible, tapped_features

# (expansion t, output channels c, repeats n, first stride s) as in MobileNetV2 (Sandler et
# al. 2018), without the final 1280-channel layer and classifier, which dense tasks don't use.
_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
           (6, 160, 3, 2), (6, 320, 1, 1)]
STRIDES = (4, 8, 16, 32)


class InvertedResidual(nn.Module):
    """The MobileNetV2 block: expand, depthwise, project (residual when shapes allow)."""
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = int(round(cin * expand))
        layers = []
        if expand != 1:
            layers.append(ConvBNAct(cin, hidden, 1))
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden),
                   ConvBNAct(hidden, cout, 1, act=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        out = self.block(x)
        return x + out if self.residual else out


class MobileNetV2Encoder(nn.Module):
    """Returns {stride: feature map} for strides 4, 8, 16, 32; `channels[stride]` gives widths."""

    def __init__(self, width_mult: float = 1.0):
        super().__init__()
        cin = make_divisible(32 * width_mult)
        self.stem = ConvBNAct(3, cin, 3, stride=2)
        self.stages = nn.ModuleList()
        self.stage_strides = []
        self.channels = {}
        stride = 2
        for t, c, n, s in _STAGES:
            cout = make_divisible(c * width_mult)
            blocks = []
            for i in range(n):
                blocks.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
            stride *= s
            self.stages.append(nn.Sequential(*blocks))
            self.stage_strides.append(stride)
        # The last stage at each stride provides that stride's feature.
        self._taps = {}
        for index, st in enumerate(self.stage_strides):
            if st in STRIDES:
                self._taps[st] = index
        for st, index in self._taps.items():
            self.channels[st] = self.stages[index][-1].block[-1][0].out_channels
        self._tap_of_stage = {index: st for st, index in self._taps.items()}

    def forward(self, x: torch.Tensor, max_stride: int = 32) -> dict[int, torch.Tensor]:
        """Encode; stop early once the feature at max_stride is computed."""
        return tapped_features(self.stem(x), self.stages, self._tap_of_stage, max_stride)
