"""Architecture configuration of a HydraNet: plain data, stored in every checkpoint."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hydranet_ros import OUTPUTS, TASKS


#: The encoders a HydraNet can be built on (model/encoders.py has a builder for each).
ENCODER_NAMES = ('mobilenetv2', 'efficientnet_lite0')


@dataclass(frozen=True)
class HydraNetConfig:
    """Everything needed to rebuild the network's modules (not its weights)."""

    #: The encoder (model/encoders.py): mobilenetv2 (what checkpoints without this key are) or
    #: efficientnet_lite0 (ImageNet weights in a pip package: model/imagenet.py).
    encoder: str = 'mobilenetv2'
    #: MobileNetV2 width multiplier of the encoder (mobilenetv2 only).
    width_mult: float = 1.0
    #: Stride-2 padding of efficientnet_lite0: tf_same (what its weights were trained with) or
    #: symmetric.
    encoder_padding: str = 'tf_same'
    #: Channels of the shared Light-Weight RefineNet decoder at every scale.
    decoder_channels: int = 128
    #: Chained-residual-pooling stages per decoder level.
    crp_stages: int = 2
    #: Semantic classes predicted by the segmentation head. The default is the synthetic world's
    #: 10 classes, what `train` builds unless a dataset names others (a test keeps them equal).
    num_classes: int = 10
    #: Object classes predicted by the detection head (the synthetic world's car, pedestrian).
    num_detection_classes: int = 2
    #: Metric depth is bounded to [depth_min, depth_max] metres.
    depth_min: float = 0.5
    depth_max: float = 80.0
    #: Encoder stride at which the flow cost volume is built (8 or 16).
    flow_stride: int = 16
    #: Search radius of the local correlation, in cells of flow_stride (displacements +-r).
    flow_radius: int = 4
    #: Hidden channels of the detection head.
    detection_channels: int = 64
    #: Hidden channels of the flow refinement at stride 4.
    flow_refine_channels: int = 32
    #: Warped-correlation updates of the coarse flow (0: one cost volume, no warping).
    flow_iterations: int = 0
    #: Search radius of each update's correlation around the warped position, in cells.
    flow_update_radius: int = 2
    #: Radius of a warped-correlation level at stride 8 after the coarse flow (0: none).
    #: Needs flow_stride 16; the cached flow features then hold both strides.
    flow_fine_radius: int = 0
    #: A depth uncertainty head (the Laplace scale of the depth head's error, metres), trained after
    #: the fact with everything else frozen (training/uncertainty.py).
    depth_uncertainty: bool = False
    #: An instance head (centre heatmap and offsets, grouped with the segmentation's thing classes),
    #: trained after the fact with everything else frozen (training/instances.py).
    instances: bool = False

    def __post_init__(self):
        problems = []
        if self.encoder not in ENCODER_NAMES:
            problems.append(f'encoder must be one of {list(ENCODER_NAMES)}, got {self.encoder!r}')
        if self.encoder_padding not in ('tf_same', 'symmetric'):
            problems.append(f"encoder_padding must be tf_same or symmetric, got {self.encoder_padding!r}")
        if not 0.1 <= self.width_mult <= 4.0:
            problems.append(f'width_mult must be in [0.1, 4], got {self.width_mult}')
        for name in ('decoder_channels', 'num_classes', 'num_detection_classes',
                     'detection_channels', 'flow_refine_channels'):
            if int(getattr(self, name)) < 1:
                problems.append(f'{name} must be >= 1, got {getattr(self, name)}')
        if self.crp_stages < 0:
            problems.append(f'crp_stages must be >= 0, got {self.crp_stages}')
        if not 0 < self.depth_min < self.depth_max:
            problems.append(f'need 0 < depth_min < depth_max, got [{self.depth_min}, {self.depth_max}]')
        if self.flow_stride not in (8, 16):
            problems.append(f'flow_stride must be 8 or 16, got {self.flow_stride}')
        if not 1 <= self.flow_radius <= 8:
            problems.append(f'flow_radius must be in [1, 8], got {self.flow_radius}')
        if not 0 <= self.flow_iterations <= 8:
            problems.append(f'flow_iterations must be in [0, 8], got {self.flow_iterations}')
        if not 1 <= self.flow_update_radius <= 4:
            problems.append(f'flow_update_radius must be in [1, 4], got {self.flow_update_radius}')
        if not 0 <= self.flow_fine_radius <= 4:
            problems.append(f'flow_fine_radius must be in [0, 4], got {self.flow_fine_radius}')
        if self.flow_fine_radius and self.flow_stride != 16:
            problems.append('flow_fine_radius needs flow_stride 16')
        if problems:
            raise ValueError('invalid HydraNetConfig: ' + '; '.join(problems))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> 'HydraNetConfig':
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f'unknown HydraNetConfig keys: {unknown}')
        return cls(**data)


def check_tasks(tasks) -> tuple[str, ...]:
    """Normalise a request of outputs (the tasks, and extra outputs such as depth_uncertainty) to
    a tuple in canonical order; None means the four tasks."""
    if tasks is None:
        return TASKS
    if isinstance(tasks, str):
        tasks = [tasks]
    tasks = list(tasks)
    unknown = [t for t in tasks if t not in OUTPUTS]
    if unknown:
        raise ValueError(f'unknown task(s) {unknown}; known outputs are {list(OUTPUTS)}')
    return tuple(t for t in OUTPUTS if t in tasks)
