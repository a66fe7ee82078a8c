"""Checkpoints: one file with the weights and everything needed to use them.

Format: a torch.save'd dict of plain data only,
    {'format': 'hydranet_ros.checkpoint', 'format_version': 1,
     'metadata': {...}, 'state_dict': {name: tensor}}
loaded with torch.load(weights_only=True), so a checkpoint can never execute code.
"""
from __future__ import annotations

import copy
import hashlib
import io
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hydranet_ros import OUTPUTS, TASKS
from hydranet_ros.model.config import HydraNetConfig
from hydranet_ros.model.hydranet import HydraNet, is_network_input_size
from hydranet_ros.model.normalization import IMAGENET_MEAN, IMAGENET_STD

FORMAT = 'hydranet_ros.checkpoint'
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A file that cannot be used as a hydranet_ros checkpoint; the message says why."""


@dataclass
class CheckpointMetadata:
    """What a checkpoint says about its network. Stored as plain data."""

    architecture: dict
    tasks: list = field(default_factory=lambda: list(TASKS))
    #: [{'name': str, 'color': [r, g, b]}] per segmentation class id.
    segmentation_classes: list = field(default_factory=list)
    #: class names per detection class id.
    detection_classes: list = field(default_factory=list)
    #: per-channel mean and std of RGB in [0, 1].
    normalization: dict = field(default_factory=lambda: {'mean': list(IMAGENET_MEAN),
                                                         'std': list(IMAGENET_STD)})
    #: network input size [height, width] images are letterboxed to.
    input_size: list = field(default_factory=lambda: [384, 640])
    #: [min, max] metres (copied from the architecture for readers of the metadata).
    depth_range: list = field(default_factory=list)
    name: str = 'hydranet'
    #: free-form training summary (dataset, steps, losses, metrics).
    training: dict = field(default_factory=dict)
    #: horizontal focal length, in pixels of the network input, of the camera the network was
    #: trained with (its metric depth is for that focal length); None: not known.
    camera_focal_px: float | None = None

    @property
    def segmentation_names(self) -> list[str]:
        """The segmentation class names, by class id."""
        return [c['name'] if isinstance(c, dict) else str(c) for c in self.segmentation_classes]

    def training_focal_px(self) -> float | None:
        """The training camera's focal length at the network input, as recorded (None when not;
        hydranet_ros.world.camera.checkpoint_focal_px also derives it for checkpoints of the
        synthetic world from before it was recorded)."""
        return float(self.camera_focal_px) if self.camera_focal_px else None

    def __post_init__(self):
        config = HydraNetConfig.from_dict(self.architecture)  # validates
        if not self.depth_range:
            self.depth_range = [config.depth_min, config.depth_max]
        if not self.segmentation_classes:
            self.segmentation_classes = [{'name': f'class_{i}', 'color': _default_color(i)}
                                         for i in range(config.num_classes)]
        if not self.detection_classes:
            self.detection_classes = [f'object_{i}' for i in range(config.num_detection_classes)]
        problems = []
        if len(self.segmentation_classes) != config.num_classes:
            problems.append(f'{len(self.segmentation_classes)} segmentation classes named, '
                            f'architecture has {config.num_classes}')
        if len(self.detection_classes) != config.num_detection_classes:
            problems.append(f'{len(self.detection_classes)} detection classes named, '
                            f'architecture has {config.num_detection_classes}')
        bad_tasks = [t for t in self.tasks if t not in OUTPUTS]
        if bad_tasks:
            problems.append(f'unknown tasks {bad_tasks}')
        if 'depth_uncertainty' in self.tasks and not config.depth_uncertainty:
            problems.append('tasks name depth_uncertainty but the architecture has no depth uncertainty head')
        if 'instances' in self.tasks and not config.instances:
            problems.append('tasks name instances but the architecture has no instance head')
        if not is_network_input_size(self.input_size):
            problems.append(f'input_size must be [height, width], multiples of 32, got {self.input_size}')
        norm = self.normalization
        if (sorted(norm) != ['mean', 'std'] or len(norm['mean']) != 3 or len(norm['std']) != 3
                or min(norm['std']) <= 0):
            problems.append(f'normalization must be {{mean: [3], std: [3] > 0}}, got {norm}')
        if problems:
            raise CheckpointError('invalid checkpoint metadata: ' + '; '.join(problems))

    @property
    def config(self) -> HydraNetConfig:
        return HydraNetConfig.from_dict(self.architecture)

    def to_dict(self) -> dict:
        return copy.deepcopy(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict) -> 'CheckpointMetadata':
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f'unknown metadata keys {unknown}')
        return cls(**copy.deepcopy(data))


def _default_color(i: int) -> list:
    # Spread hues with a fixed-step generator so neighbouring ids differ clearly.
    return [(37 * i + 80) % 256, (91 * i + 40) % 256, (151 * i + 160) % 256]


@dataclass
class LoadedCheckpoint:
    """A verified checkpoint: the network, its metadata and the file's sha256."""
    model: HydraNet
    metadata: CheckpointMetadata
    sha256: str
    path: Path | None = None

    @property
    def model_id(self) -> str:
        return f'{self.metadata.name}@{self.sha256[:12]}'


def save_checkpoint(path, model: HydraNet, metadata: CheckpointMetadata) -> str:
    """Write model weights and metadata to path atomically; return the file's sha256."""
    if model.config.to_dict() != metadata.config.to_dict():
        raise CheckpointError('metadata architecture differs from the model being saved')
    payload = {'format': FORMAT, 'format_version': FORMAT_VERSION,
               'metadata': metadata.to_dict(),
               'state_dict': {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_bytes(data)
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()


def load_checkpoint(path, expected_sha256: str | None = None, map_location='cpu') -> LoadedCheckpoint:
    """Load and check a checkpoint; raise FileNotFoundError or CheckpointError with the reason."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256:
        if digest != expected_sha256.strip().lower():
            raise CheckpointError(f'{path}: sha256 {digest} does not match the pinned {expected_sha256}')
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise CheckpointError(f'{path} is not a hydranet_ros checkpoint (not a torch zip archive)')
    try:
        payload = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f'{path}: refused to load; it holds objects other than plain data '
                              f'and tensors, and checkpoints must never execute code ({exc})') from None
    except Exception as exc:  # zip/pickle framing errors: not a torch file at all
        raise CheckpointError(f'{path} is not a hydranet_ros checkpoint ({type(exc).__name__}: {exc})') from None
    if not isinstance(payload, dict) or payload.get('format') != FORMAT:
        raise CheckpointError(f'{path} is not a hydranet_ros checkpoint (no "{FORMAT}" marker)')
    version = payload.get('format_version')
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f'{path}: invalid format_version {version!r}')
    if version > FORMAT_VERSION:
        raise CheckpointError(f'{path} has checkpoint format version {version}, newer than this '
                              f'hydranet_ros supports ({FORMAT_VERSION}); upgrade hydranet_ros')
    try:
        metadata = CheckpointMetadata.from_dict(payload['metadata'])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f'{path}: bad metadata: {exc}') from None
    model = HydraNet(metadata.config)
    state = payload.get('state_dict')
    if not isinstance(state, dict):
        raise CheckpointError(f'{path}: no state_dict')
    check_state_dict(model, state, source=str(path))
    model.load_state_dict(state)
    model.eval()
    return LoadedCheckpoint(model=model, metadata=metadata, sha256=digest, path=path)


def check_state_dict(model: torch.nn.Module, state: dict, source: str = 'state_dict'):
    """Raise CheckpointError listing missing, unexpected and mis-shaped keys, if any."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(f'{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}'
                    for k in set(expected) & set(state)
                    if not isinstance(state[k], torch.Tensor) or state[k].shape != expected[k].shape)
    if missing or unexpected or shapes:
        def _some(items):
            return ', '.join(items[:10]) + (f' ... (+{len(items) - 10} more)' if len(items) > 10 else '')
        parts = []
        if missing:
            parts.append(f'missing keys [{_some(missing)}]')
        if unexpected:
            parts.append(f'unexpected keys [{_some(unexpected)}]')
        if shapes:
            parts.append(f'shape mismatches [{_some(shapes)}]')
        raise CheckpointError(f'{source}: architecture mismatch: ' + '; '.join(parts))
