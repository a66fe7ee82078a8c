"""EfficientNet-Lite encoder (Tan & Le 2019; the Lite variants of the TensorFlow model garden),
exposing features at strides 4, 8, 16 and 32.

Lite drops squeeze-and-excitation, uses ReLU6 instead of swish and keeps the stem and the last
stage unscaled, so it runs well on CPUs and quantises cleanly. Only the feature extractor is
built: the 1x1 head convolution and the classifier (`model/imagenet.py` maps a published state
dict onto this module and reads them only for the ImageNet check).

Padding. The published weights were trained in TensorFlow with "SAME" padding: a stride-2
convolution on an even input pads asymmetrically (k=3: 0 before, 1 after; k=5: 1 before, 2
after), where torch's symmetric k//2 shifts every stride-2 layer by half a pixel. The HydraNet
pads its input to a multiple of 32, so every stride-2 layer here sees an even size and TF's
padding is a fixed `ZeroPad2d`: exact, static, exportable to ONNX. `padding='symmetric'` is
kept for the measurement in docs/MODEL.md.

Input scaling. The package feeds every network ImageNet mean/std-normalised images (checkpoint
metadata, one convention for all encoders); the Lite weights were trained on (x - 127) / 128 of
0-255 pixels, as the TF Lite models are. A fixed per-channel affine at the encoder's entry turns
one into the other exactly.
"""
from __future__ import annotations

import torch
from torch import nn

from hydranet_ros.model.layers import tapped_features
from hydranet_ros.model.normalization import IMAGENET_MEAN, IMAGENET_STD

STRIDES = (4, 8, 16, 32)
PADDINGS = ('tf_same', 'symmetric')
#: BatchNorm epsilon of the published TensorFlow models (torch's default is 1e-5).
BN_EPS = 1e-3

# (repeats, kernel, first stride, expansion, output channels) per stage, EfficientNet-Lite0;
# the stem has 32 channels. Lite1/2 scale depth (repeats of the middle stages) and width.
_LITE0 = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
VARIANTS = ('efficientnet_lite0',)


class ConvBN(nn.Sequential):
    """[padding] + Conv2d without bias + BatchNorm (eps 1e-3) [+ ReLU6]; conv and BN stay
    adjacent so `fuse_conv_bn` folds them."""

    def __init__(self, cin, cout, kernel, stride=1, groups=1, act=True, padding='tf_same'):
        layers = {}
        if stride == 2 and padding == 'tf_same':
            before = (kernel - 2) // 2
            layers['pad'] = nn.ZeroPad2d((before, kernel - 2 - before, before, kernel - 2 - before))
            pad = 0
        else:
            pad = kernel // 2
        layers['conv'] = nn.Conv2d(cin, cout, kernel, stride, pad, groups=groups, bias=False)
        layers['bn'] = nn.BatchNorm2d(cout, eps=BN_EPS)
        if act:
            layers['act'] = nn.ReLU6(inplace=True)
        super().__init__()
        for name, layer in layers.items():
            self.add_module(name, layer)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation: expand, depthwise, project."""

    def __init__(self, cin, cout, kernel, stride, expand, padding):
        super().__init__()
        hidden = cin * expand
        self.expand = ConvBN(cin, hidden, 1, padding=padding) if expand != 1 else None
        self.depthwise = ConvBN(hidden, hidden, kernel, stride, groups=hidden, padding=padding)
        self.project = ConvBN(hidden, cout, 1, act=False, padding=padding)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        out = self.expand(x) if self.expand is not None else x
        out = self.project(self.depthwise(out))
        return x + out if self.residual else out


class EfficientNetLiteEncoder(nn.Module):
    """Returns {stride: feature map} for strides 4, 8, 16, 32; `channels[stride]` gives widths
    (24, 40, 112, 320 for Lite0). The same interface as MobileNetV2Encoder."""

    def __init__(self, variant: str = 'efficientnet_lite0', padding: str = 'tf_same'):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f'unknown EfficientNet-Lite variant {variant!r}; known: {list(VARIANTS)}')
        if padding not in PADDINGS:
            raise ValueError(f'encoder padding must be one of {list(PADDINGS)}, got {padding!r}')
        # x_lite = (255 (x * std + mean) - 127) / 128 for x normalised with the package's mean/std
        self.register_buffer('input_scale', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255 / 128,
                             persistent=False)
        self.register_buffer('input_shift', (torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255 - 127) / 128,
                             persistent=False)
        self.stem = ConvBN(3, 32, 3, stride=2, padding=padding)
        blocks, taps, cin, stride = [], {}, 32, 2
        for repeats, kernel, first_stride, expand, cout in _LITE0:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, first_stride if i == 0 else 1, expand, padding))
                cin = cout
            stride *= first_stride
            if stride in STRIDES:
                taps[stride] = (len(blocks) - 1, cout)   # the last block at a stride gives its feature
        self.blocks = nn.ModuleList(blocks)
        self.channels = {st: c for st, (_, c) in taps.items()}
        self._tap_of_block = {index: st for st, (index, _) in taps.items()}

    def forward(self, x: torch.Tensor, max_stride: int = 32) -> dict[int, torch.Tensor]:
        """Encode; stop early once the feature at max_stride is computed."""
        return tapped_features(self.stem(x * self.input_scale + self.input_shift), self.blocks, self._tap_of_block,
                               max_stride)
