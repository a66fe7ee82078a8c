"""Start the encoder from ImageNet: MobileNetV2 weights in torchvision's published layout.

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

from hydranet_ros.model.encoder import MobileNetV2Encoder

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


def load_encoder_weights(encoder: MobileNetV2Encoder, source) -> str:
    """Copy torchvision-layout MobileNetV2 weights (a state dict, or a file of one) into encoder.
    EncoderWeightsError naming missing and mis-shaped keys when they do not fit; returns a
    one-line report. Keys torchvision has that dense tasks do not use (the last 1x1 layer,
    the classifier) are ignored."""
    if not isinstance(source, dict):
        path = Path(source)
        if not path.is_file():
            raise EncoderWeightsError(f'encoder_weights: no file at {path}')
        try:
            source = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as exc:   # pickle, zip or format errors: one message
            raise EncoderWeightsError(f'encoder_weights: {path} is not a torch state dict ({exc})') from None
        if isinstance(source, dict) and 'state_dict' in source and isinstance(source['state_dict'], dict):
            source = source['state_dict']
        if not isinstance(source, dict):
            raise EncoderWeightsError(f'encoder_weights: {path} holds a {type(source).__name__}, not a state dict')
    own = encoder.state_dict()
    mapping = torchvision_key_map(encoder)
    missing = [k for k in mapping if k not in source]
    mismatched = [f'{k} {tuple(source[k].shape)} vs {tuple(own[v].shape)}' for k, v in mapping.items()
                  if k in source and tuple(source[k].shape) != tuple(own[v].shape)]
    if missing or mismatched:
        problems = []
        if missing:
            problems.append(f'{len(missing)} missing (first: {missing[:3]})')
        if mismatched:
            problems.append(f'{len(mismatched)} of other shapes (first: {mismatched[:3]}; '
                            'ImageNet MobileNetV2 weights fit width_mult 1.0 only)')
        raise EncoderWeightsError('encoder_weights do not fit this encoder: ' + '; '.join(problems))
    encoder.load_state_dict({v: source[k] for k, v in mapping.items()}, strict=True)
    unused = len([k for k in source if k not in mapping])
    return (f'encoder: {len(mapping)} tensors from ImageNet MobileNetV2 weights '
            f'({unused} unused: last layer, classifier)')
