"""The encoders a HydraNet can be built on, by `HydraNetConfig.encoder` name: one builder each."""
from __future__ import annotations

from typing import Callable

from torch import nn

from hydranet_ros.model.efficientnet_lite import EfficientNetLiteEncoder
from hydranet_ros.model.encoder import MobileNetV2Encoder

#: name -> builder(config); every encoder returns {stride: feature} for 4, 8, 16, 32 and has
#: `channels` and `forward(x, max_stride)`.
ENCODERS: dict[str, Callable[..., nn.Module]] = {
    'mobilenetv2': lambda config: MobileNetV2Encoder(config.width_mult),
    'efficientnet_lite0': lambda config: EfficientNetLiteEncoder('efficientnet_lite0', config.encoder_padding),
}


def build_encoder(config) -> nn.Module:
    """The encoder that config.encoder names (HydraNetConfig checks the name)."""
    return ENCODERS[config.encoder](config)
