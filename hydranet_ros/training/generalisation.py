"""Training an ImageNet-initialised encoder to generalise beyond the synthetic world.

The ingredients the domain-generalisation literature names for a synthetic-to-real encoder, each a
`train:` key (docs/TRAINING.md), measured one by one in docs/MODEL.md:

- `encoder_lr`: the encoder's own learning rate, lower than the decoder's and heads' (`lr`), so
  fine-tuning moves ImageNet features less than the parts that start from scratch;
- `freeze_encoder_blocks`: the stem and the first N blocks (stages for MobileNetV2) keep their
  ImageNet weights: low-level filters are what synthetic textures would otherwise re-tune;
- `freeze_encoder_bn`: the encoder's BatchNorm keeps ImageNet's statistics and affine parameters
  (small synthetic batches would replace real-image statistics with rendered ones);
- `feature_distance`: DAFormer's ImageNet feature distance (Hoyer et al., CVPR 2022): the L2
  distance between the stride-32 features of the encoder being trained and of a frozen copy of
  the ImageNet encoder, on the cells the labels call thing classes (`feature_distance_classes`),
  so what ImageNet knows of cars and people is not forgotten on rendered ones.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def _encoder_prefix(encoder: nn.Module, blocks: int) -> list[nn.Module]:
    """The stem and the first `blocks` blocks (EfficientNet-Lite) or stages (MobileNetV2)."""
    parts = getattr(encoder, 'blocks', None)
    if parts is None:
        parts = encoder.stages
    if blocks > len(parts):
        raise ValueError(f'train.freeze_encoder_blocks {blocks}: this encoder has {len(parts)} blocks')
    return [encoder.stem, *list(parts)[:blocks]]


class EncoderRecipe:
    """What `train()` does to the encoder beyond plain fine-tuning (all off by default)."""

    def __init__(self, model: nn.Module, freeze_blocks: int = 0, freeze_bn: bool = False,
                 feature_distance: float = 0.0, thing_classes: list[int] | None = None, keep=()):
        """keep: tasks whose outputs stay as they start (train.keep): the encoder, the decoder and
        those heads frozen, BatchNorm statistics included."""
        self.freeze_bn = bool(freeze_bn)
        self.weight = float(feature_distance)
        self.thing_classes = list(thing_classes or [])
        self._encoder = model.encoder
        self._frozen = _encoder_prefix(model.encoder, int(freeze_blocks)) if freeze_blocks else []
        if keep:
            self._frozen = [model.encoder, model.decoder, *(model.heads[t] for t in keep)]
        for module in self._frozen:
            module.requires_grad_(False)
        if self.freeze_bn:
            for module in self._bn_layers():
                module.requires_grad_(False)
        self._reference = None
        self._captured = None
        if self.weight > 0:
            # the ImageNet encoder as it is now (before any step), frozen, in eval mode
            self._reference = copy.deepcopy(model.encoder).eval().requires_grad_(False)
            model.encoder.register_forward_hook(self._capture)

    def _bn_layers(self):
        return [m for m in self._encoder.modules() if isinstance(m, nn.BatchNorm2d)]

    def train_mode(self):
        """After model.train(): frozen parts and (with freeze_bn) every encoder BatchNorm keep
        their statistics."""
        for module in self._frozen:
            module.eval()
        if self.freeze_bn:
            for module in self._bn_layers():
                module.eval()

    def _capture(self, _module, inputs, output):
        # the current frames' forward is the one with stride-32 features (the previous frames'
        # encode stops at the flow stride); keep its input and features
        if 32 in output:
            self._captured = (inputs[0], output[32])

    def feature_distance(self, batch: dict) -> torch.Tensor | None:
        """The weighted feature-distance term of the last forward (None when off)."""
        if self._reference is None or self._captured is None:
            return None
        images, features = self._captured
        self._captured = None
        with torch.no_grad():
            self._reference.to(images.device)
            reference = self._reference(images)[32].float()
        distance = (features.float() - reference).pow(2).sum(1).add(1e-8).sqrt()   # [B, h, w]
        mask = self._thing_mask(batch, distance.shape[-2:]).to(distance.device)
        if not mask.any():
            return distance.sum() * 0.0
        return self.weight * distance[mask].mean()

    def _thing_mask(self, batch: dict, size) -> torch.Tensor:
        labels = batch.get('segmentation')
        if not self.thing_classes or labels is None:
            return torch.ones((batch['image'].shape[0], *size), dtype=torch.bool)
        h, w = labels.shape[-2:]
        # labels at the input size; cells of the padded stride-32 grid beyond them are not things
        cells = F.interpolate(labels[:, None].float(), size=(-(-h // 32), -(-w // 32)), mode='nearest')[:, 0]
        things = torch.zeros_like(cells, dtype=torch.bool)
        for c in self.thing_classes:
            things |= cells == c
        things &= batch['has_segmentation'].view(-1, 1, 1).bool()
        out = torch.zeros((labels.shape[0], *size), dtype=torch.bool, device=labels.device)
        out[:, :things.shape[1], :things.shape[2]] = things[:, :size[0], :size[1]]
        return out
