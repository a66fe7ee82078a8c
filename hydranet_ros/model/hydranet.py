"""HydraNet: one shared encoder and decoder, four task heads in a ModuleDict."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hydranet_ros.model.config import HydraNetConfig, check_tasks
from hydranet_ros.model.decoder import LightWeightRefineDecoder
from hydranet_ros.model.depth_head import DepthHead
from hydranet_ros.model.depth_uncertainty_head import DepthUncertaintyHead
from hydranet_ros.model.instance_head import InstanceHead
from hydranet_ros.model.detection_head import DetectionHead
from hydranet_ros.model.encoders import build_encoder
from hydranet_ros.model.head_inputs import HeadInputs
from hydranet_ros.model.flow_head import FlowHead, pack_flow_features
from hydranet_ros.model.segmentation_head import SegmentationHead

#: Output key of the current frame's flow features (what the temporal cache keeps).
FLOW_FEATURES = 'flow_features'
#: Inputs smaller than this on either side cannot pass the stride-32 encoder meaningfully.
MIN_INPUT_SIZE = 32
_ALIGN = 32


def is_network_input_size(size) -> bool:
    """Whether size is a network input size a checkpoint can record and a graph be exported at:
    [height, width], each at least MIN_INPUT_SIZE and a multiple of the encoder's stride 32."""
    try:
        values = [int(v) for v in size]
    except (TypeError, ValueError):
        return False
    return len(values) == 2 and min(values) >= MIN_INPUT_SIZE and not any(v % _ALIGN for v in values)


class HydraNet(nn.Module):
    """forward(images, tasks) -> {task: tensor} for the requested tasks only.

    Outputs, for an input [B, 3, H, W] (normalised):
      segmentation: [B, num_classes, H, W] logits
      depth:        [B, 1, H, W] metres in [depth_min, depth_max]
      flow:         [B, 2, H, W] (u, v) pixels, previous frame -> this frame
      detection:    [B, num_detection_classes + 4, ceil(H/32)*8, ceil(W/32)*8] stride-4 maps
                    (heatmap, size w/h in pixels, offset); decode with decode_detections
      depth_uncertainty (with config.depth_uncertainty): [B, 1, H, W] Laplace scale of the depth
                    error, metres
      instances (with config.instances): [B, 3, ceil(H/4), ceil(W/4)] centre heatmap and offsets
                    to the centre in input pixels; group with inference.instances
    Any H, W >= 32 works: the input is padded to a multiple of 32 and outputs cropped back.
    """

    def __init__(self, config: HydraNetConfig | None = None):
        super().__init__()
        self.config = config = config or HydraNetConfig()
        self.encoder = build_encoder(config)
        ch = self.encoder.channels
        self.decoder = LightWeightRefineDecoder(ch, config.decoder_channels, config.crp_stages)
        dc = config.decoder_channels
        self.heads = nn.ModuleDict({
            'segmentation': SegmentationHead(dc, config.num_classes),
            'depth': DepthHead(dc, config.depth_min, config.depth_max),
            'flow': FlowHead(ch[config.flow_stride], dc, config.flow_radius,
                             config.flow_refine_channels, config.flow_iterations,
                             config.flow_update_radius, ch[8], config.flow_fine_radius),
            'detection': DetectionHead(dc, config.num_detection_classes, config.detection_channels),
        })
        if config.depth_uncertainty:
            self.heads['depth_uncertainty'] = DepthUncertaintyHead(dc)
        if config.instances:
            self.heads['instances'] = InstanceHead(dc)

    @property
    def flow_stride(self) -> int:
        return self.config.flow_stride

    def encode_flow_features(self, images: torch.Tensor) -> torch.Tensor:
        """Only the encoder, only as deep as the flow cost volume needs (for cold starts)."""
        padded, _ = self._pad(images)
        return self.flow_features(self.encoder(padded, max_stride=self.flow_stride))

    def flow_features(self, feats: dict) -> torch.Tensor:
        """What a frame keeps for the next frame's flow, from its encoder features: the
        stride-16 features, or with a fine level those and the stride-8 ones packed."""
        if self.config.flow_fine_radius:
            return pack_flow_features(feats[8], feats[self.flow_stride])
        return feats[self.flow_stride]

    def forward(self, images: torch.Tensor, tasks=None, previous_features: torch.Tensor | None = None,
                return_flow_features: bool = False,
                previous_images: torch.Tensor | None = None,
                previous_valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """previous_images (training): encode the previous frames inside this call instead of
        passing cached previous_features, so wrappers like DistributedDataParallel see one
        forward. previous_valid: [B] bool, False where an image has no previous frame; its own
        features stand in, so its flow is a well-defined near-zero field instead of the
        correlation with whatever filled that slot (one batch mixes cameras that have a
        previous frame with cameras that have none)."""
        tasks = check_tasks(tasks)
        missing = [t for t in tasks if t not in self.heads]
        if missing:
            raise ValueError(f'this network has no {missing} head(s); it has {list(self.heads)}')
        if previous_images is not None and previous_features is None and 'flow' in tasks:
            previous_features = self.encode_flow_features(previous_images)
        padded, (h, w) = self._pad(images)
        feats = self.encoder(padded)
        out: dict[str, torch.Tensor] = {}
        current = self.flow_features(feats)
        if return_flow_features:
            out[FLOW_FEATURES] = current
        if not tasks:
            return out
        if previous_valid is not None and previous_features is not None:
            previous_features = torch.where(previous_valid.view(-1, 1, 1, 1), previous_features.to(current.dtype),
                                            current)
        inputs = HeadInputs(self.decoder(feats), tuple(padded.shape[-2:]), current, previous_features)
        for task in tasks:
            head = self.heads[task]
            stride = head.output_stride
            out[task] = head(inputs)[..., :-(-h // stride), :-(-w // stride)]   # crop the padding
        return out

    def head_inputs(self, images: torch.Tensor) -> tuple[HeadInputs, tuple[int, int]]:
        """(what every head but flow is called with, the unpadded (H, W)): encoder and decoder once,
        for training one head over a frozen trunk."""
        padded, size = self._pad(images)
        return HeadInputs(self.decoder(self.encoder(padded)), tuple(padded.shape[-2:])), size

    @staticmethod
    def _pad(images: torch.Tensor):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f'expected images [B, 3, H, W], got {tuple(images.shape)}')
        h, w = images.shape[-2:]
        if h < MIN_INPUT_SIZE or w < MIN_INPUT_SIZE:
            raise ValueError(f'input {w}x{h} is smaller than the network minimum '
                             f'{MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} pixels')
        ph, pw = (-h) % _ALIGN, (-w) % _ALIGN
        if ph or pw:
            images = F.pad(images, (0, pw, 0, ph))
        return images, (h, w)
