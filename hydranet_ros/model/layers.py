"""Small building blocks shared by the encoder, decoder and heads."""
from torch import nn


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of divisor, never more than 10% below value."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvBNAct(nn.Sequential):
    """Conv2d without bias, BatchNorm, optional ReLU6."""

    def __init__(self, cin, cout, kernel=3, stride=1, groups=1, act=True):
        layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout)]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class SeparableHead(nn.Sequential):
    """Depthwise 3x3 + pointwise projection: a dense head at a fraction of a full 3x3 conv.

    A 3x3 convolution straight to the outputs is what makes the reference design's
    segmentation head cost ~30% of the network; the separable form costs 9*C + C*out MACs
    per pixel instead of 9*C*out.
    """

    def __init__(self, cin, cout, hidden=None):
        layers = [ConvBNAct(cin, cin, 3, groups=cin)]
        if hidden:
            layers += [ConvBNAct(cin, hidden, 1), nn.Conv2d(hidden, cout, 1)]
        else:
            layers.append(nn.Conv2d(cin, cout, 1))
        super().__init__(*layers)


def tapped_features(x, modules, taps: dict, max_stride: int) -> dict:
    """Run x through modules in turn; {stride: output} of the modules taps names ({index: stride}),
    stopping once the feature at max_stride is computed (an encoder's early stop)."""
    feats = {}
    for index, module in enumerate(modules):
        x = module(x)
        st = taps.get(index)
        if st is not None:
            feats[st] = x
            if st >= max_stride:
                break
    return feats
