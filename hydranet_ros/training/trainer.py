"""The multi-task training loop: config in, checkpoint out (CPU, CUDA with AMP, DDP)."""
from __future__ import annotations

import json
import math
import os
import random
import time
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml

from hydranet_ros import TASKS
from hydranet_ros.model import HydraNet, HydraNetConfig
from hydranet_ros.model.checkpoint import CheckpointMetadata, save_checkpoint
from hydranet_ros.training import losses as L
from hydranet_ros.training.balancing import LossBalancer
from hydranet_ros.training.datasets import FolderDataset, SyntheticDataset
from hydranet_ros.training.real_data import ClassMap, MixtureDataset, RealDataset, bag_class_map, bag_frames
from hydranet_ros.training.evaluation import evaluate, headline
from hydranet_ros.training.generalisation import EncoderRecipe
from hydranet_ros.world.classes import DETECTION_CLASSES, SEGMENTATION_CLASSES


@dataclass
class TrainConfig:
    """A training YAML: model (HydraNetConfig keys), data and train sections (checked by resolved()), and a
    name."""
    model: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    name: str = 'hydranet'

    @classmethod
    def load(cls, path) -> 'TrainConfig':
        """Read and check a training YAML; ValueError naming the first problem."""
        raw = yaml.safe_load(Path(path).read_text()) or {}
        unknown = sorted(set(raw) - {'model', 'data', 'train', 'name'})
        if unknown:
            raise ValueError(f'{path}: unknown sections {unknown}')
        config = cls(**raw)
        try:
            config.resolved()
            HydraNetConfig.from_dict(_architecture(config.model))
        except (TypeError, ValueError) as exc:
            raise ValueError(f'{path}: {exc}') from None
        return config

    def resolved(self) -> tuple['TrainSettings', 'DataSettings']:
        """The train and data sections as checked, typed settings over their defaults."""
        return _settings(TrainSettings, self.train, 'train'), _settings(DataSettings, self.data, 'data')


_BALANCING = ('fixed', 'uncertainty', 'dwa')
#: Real datasets read as published (hydranet_ros.training.real_data).
REAL_TYPES = ('kitti_raw', 'kitti_tracking', 'kitti_flow', 'cityscapes', 'bag')
DATA_TYPES = ('synthetic', 'folder', *REAL_TYPES, 'mixture')
#: `model:` keys that are not architecture: where the weights start.
_MODEL_START_KEYS = ('encoder_weights',)


def _architecture(model: dict) -> dict:
    """The HydraNetConfig keys of a `model:` section (encoder_weights left out)."""
    return {k: v for k, v in (model or {}).items() if k not in _MODEL_START_KEYS}


@dataclass(frozen=True)
class TrainSettings:
    """The `train:` section, every key with its default; checked by validate()."""
    steps: int = 1000
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    head_lr: dict = field(default_factory=dict)          # task -> learning rate of that head
    # an ImageNet encoder trained to generalise (training/generalisation.py, docs/TRAINING.md)
    encoder_lr: float | None = None                      # the encoder's learning rate (default: lr)
    freeze_encoder_blocks: int = 0                       # stem + first N encoder blocks kept as they start
    freeze_encoder_bn: bool = False                      # encoder BatchNorm statistics and affine kept
    feature_distance: float = 0.0                        # DAFormer's ImageNet feature distance weight
    feature_distance_classes: tuple = ('car', 'pedestrian')   # where it applies (segmentation classes)
    balancing: str = 'fixed'                             # fixed, uncertainty, dwa
    weights: dict = field(default_factory=lambda: {'segmentation': 1.0, 'depth': 1.0, 'flow': 0.2, 'detection': 1.0})
    consistency: float = 0.0
    eval_every: int = 250
    eval_samples: int = 64
    seed: int = 0
    amp: bool = True                                     # CUDA only: autocast in amp_dtype
    amp_dtype: str = 'bf16'                              # bf16 (no loss scaling needed) or fp16
    channels_last: bool = True                           # CUDA only: NHWC convolutions
    tasks: tuple = TASKS
    output: str = 'models/hydranet_trained.pt'
    resume: str | None = None
    init_from: str | None = None
    log_every: int = 10
    augment: bool = True
    zoom: tuple = (1.0, 1.0)                             # random focal-length zoom range (augment), e.g. [1, 1.5]
    color_jitter: float = 0.0                            # photometric augmentation strength (augment), e.g. 0.2
    hue_jitter: float = 0.0                              # hue rotation up to this x 180 degrees, grey at half (augment)
    class_colour_jitter: float = 0.0                     # each class its own colour change (synthetic drives)
    # another camera's look on the labelled data (augment; docs/TRAINING.md section 8): folders of that
    # camera's unlabeled images (pseudo-label's output, a dataset folder) whose global light and colour
    # the labelled images take on (Fourier domain adaptation), and that camera's noise and JPEG
    appearance_from: tuple = ()                          # folders of the target camera's images
    appearance_beta: float = 0.01                        # low-frequency window, x min(H, W) (FDA's beta)
    appearance_probability: float = 0.5                  # share of labelled samples shown in the target look
    sensor_noise: tuple = (0.0, 0.0)                     # Gaussian noise sigma range, 0-255 (0: off)
    jpeg_quality: tuple = (0, 0)                         # JPEG round-trip quality range, 1-100 (0: off)
    sensor_probability: float = 0.5                      # share of labelled samples given that sensor
    # self-supervision from video (training/self_supervised.py): weights of the photometric terms
    photometric: float = 0.0                             # depth + pose head, needs intrinsics
    flow_photometric: float = 0.0                        # flow, occlusion by forward-backward consistency
    smoothness: float = 0.001                            # edge-aware smoothness within those terms
    rigid_flow: float = 0.0                              # flow pulled to depth + motion's rigid flow where
                                                         # that explains the pixel better (needs photometric)
    rigid_flow_movers: tuple = ()                        # segmentation class names never pulled to it (where
                                                         # the network's own segmentation sees them): movers
    photometric_scales: int = 1                          # depth term at full, 1/2, 1/4 ... resolution (averaged)
    pose_source: str = 'auto'                            # camera motion: auto (odometry where a sample has it,
                                                         # else the pose head) or network (always the pose head)
    threads: int = 0

    def validate(self):
        for name in ('steps', 'batch_size', 'eval_every', 'eval_samples', 'log_every', 'photometric_scales'):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f'train.{name} must be an integer >= 1, got {getattr(self, name)!r}')
        for name in ('lr', 'weight_decay', 'consistency', 'photometric', 'flow_photometric', 'smoothness',
                     'rigid_flow', 'feature_distance'):
            if not isinstance(getattr(self, name), (int, float)) or getattr(self, name) < 0:
                raise ValueError(f'train.{name} must be a number >= 0, got {getattr(self, name)!r}')
        for name in ('color_jitter', 'hue_jitter', 'class_colour_jitter'):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f'train.{name} must be a number in [0, 1), got {value!r}')
        if len(self.zoom) != 2 or not 1.0 <= self.zoom[0] <= self.zoom[1]:
            raise ValueError(f'train.zoom must be [min, max] with 1 <= min <= max, got {list(self.zoom)}')
        if not 0 < self.appearance_beta < 0.5:
            raise ValueError(f'train.appearance_beta must be in (0, 0.5), got {self.appearance_beta!r}')
        for name in ('appearance_probability', 'sensor_probability'):
            if not isinstance(getattr(self, name), (int, float)) or not 0 <= getattr(self, name) <= 1:
                raise ValueError(f'train.{name} must be a number in [0, 1], got {getattr(self, name)!r}')
        if len(self.sensor_noise) != 2 or not 0 <= self.sensor_noise[0] <= self.sensor_noise[1]:
            raise ValueError('train.sensor_noise must be [min, max] with 0 <= min <= max, '
                             f'got {list(self.sensor_noise)}')
        quality = list(self.jpeg_quality)
        if len(quality) != 2 or not (quality == [0, 0] or 1 <= quality[0] <= quality[1] <= 100):
            raise ValueError(f'train.jpeg_quality must be [min, max] within 1-100 (or [0, 0]: off), got {quality}')
        missing = [str(d) for d in self.appearance_from if not Path(d).is_dir()]
        if missing:
            raise ValueError(f'train.appearance_from: no such folder: {", ".join(missing)}')
        if not isinstance(self.rigid_flow_movers, (tuple, list)):
            raise ValueError(f'train.rigid_flow_movers must be a list of class names, got {self.rigid_flow_movers!r}')
        if self.rigid_flow_movers and (not self.rigid_flow or 'segmentation' not in self.tasks):
            raise ValueError('train.rigid_flow_movers needs train.rigid_flow > 0 and the segmentation task '
                             '(the network\'s own segmentation says where the movers are)')
        if self.encoder_lr is not None and (not isinstance(self.encoder_lr, (int, float)) or self.encoder_lr < 0):
            raise ValueError(f'train.encoder_lr must be a number >= 0, got {self.encoder_lr!r}')
        if not isinstance(self.freeze_encoder_blocks, int) or self.freeze_encoder_blocks < 0:
            raise ValueError(f'train.freeze_encoder_blocks must be an integer >= 0, got {self.freeze_encoder_blocks!r}')
        if self.pose_source not in ('auto', 'network'):
            raise ValueError(f"train.pose_source must be 'auto' or 'network', got {self.pose_source!r}")
        if self.amp_dtype not in ('bf16', 'fp16'):
            raise ValueError(f"train.amp_dtype must be 'bf16' or 'fp16', got {self.amp_dtype!r}")
        if self.balancing not in _BALANCING:
            raise ValueError(f'train.balancing must be one of {list(_BALANCING)}, got {self.balancing!r}')
        if not self.tasks or set(self.tasks) - set(TASKS):
            raise ValueError(f'train.tasks must be a non-empty subset of {list(TASKS)}, got {list(self.tasks)}')
        for table in ('weights', 'head_lr'):
            unknown = set(getattr(self, table)) - set(TASKS)
            if unknown:
                raise ValueError(f'train.{table} names unknown tasks {sorted(unknown)}; tasks are {list(TASKS)}')


_SYNTHETIC_SOURCE_KEYS = ('type', 'weight', 'seeds', 'frames_per_seed', 'style', 'camera', 'cameras', 'labels',
                          'odometry')


@dataclass(frozen=True)
class DataSettings:
    """The `data:` section, every key with its default; checked by validate()."""
    type: str = 'synthetic'                              # synthetic, folder, kitti_*, cityscapes, mixture
    camera: str = 'kitti'
    input_size: tuple = (128, 416)                       # (height, width)
    train_seeds: tuple = tuple(range(20))
    frames_per_seed: int = 40
    val_seeds: tuple = (1000, 1001)
    val_frames_per_seed: int = 20
    root: str | None = None                              # folder datasets
    # The dataset's classes, recorded in the checkpoint: [{name, color}] (or names) and [name].
    segmentation_classes: tuple = tuple({'name': n, 'color': list(c)} for n, c in SEGMENTATION_CLASSES)
    detection_classes: tuple = tuple(DETECTION_CLASSES)
    # real datasets (docs/TRAINING.md): the dataset's classes onto the model's, and where to read
    class_map: dict = field(default_factory=dict)        # {segmentation: {theirs: ours}, detection: {...}}
    split: str = 'train'                                 # cityscapes
    sequences: tuple = ()                                # kitti_tracking: these sequences only
    depth_source: str = 'lidar'                          # kitti_raw: lidar or completion
    completion_root: str | None = None                   # kitti_raw with depth_source completion
    sources: tuple = ()                                  # mixture: [{type, root, weight, ...}]
    # synthetic: the world's style (classic, varied, heldout), several cameras (one per seed in
    # turn) and letterboxing into input_size as the node does (docs/MODEL.md)
    style: str = 'classic'
    val_style: str | None = None                         # default: style
    cameras: tuple = ()                                  # default: (camera,)
    letterbox: bool = False
    labels: tuple = ('segmentation', 'depth', 'flow', 'detection')   # synthetic: the labels training may see
    odometry: bool = False                               # synthetic: samples carry their camera motion, as odometry

    def training_focal_px(self) -> float | None:
        """The focal length (pixels at the network input) of the training camera (data.camera) for a
        synthetic dataset, or a mixture with a synthetic source (that source's camera): depth labels
        of other cameras are normalised to it. None for real data alone (the trainer then keeps the
        init_from checkpoint's)."""
        camera = self.camera
        if self.type == 'mixture':
            synthetic = [s for s in self.sources if isinstance(s, dict) and s.get('type') == 'synthetic']
            if not synthetic:
                return None
            camera = synthetic[0].get('camera', self.camera)
        elif self.type != 'synthetic':
            return None
        from hydranet_ros.world.camera import PinholeCamera
        if self.letterbox:
            from hydranet_ros.training.datasets import letterbox_content
            h, w = letterbox_content(camera, self.input_size)
        else:
            h, w = self.input_size
        return float(PinholeCamera.preset(camera).scaled(int(w), int(h)).fx)

    def validate(self):
        if self.type not in DATA_TYPES:
            raise ValueError(f'data.type must be one of {list(DATA_TYPES)}, got {self.type!r}')
        if self.type not in ('synthetic', 'mixture') and not self.root:
            raise ValueError(f'data.root is needed for a {self.type} dataset')
        if self.depth_source not in ('lidar', 'completion'):
            raise ValueError(f"data.depth_source must be 'lidar' or 'completion', got {self.depth_source!r}")
        if self.type == 'mixture':
            if not self.sources:
                raise ValueError('data.sources is needed for a mixture: [{type, root, weight}, ...]')
            for k, src in enumerate(self.sources):
                if isinstance(src, dict) and src.get('type') == 'synthetic':
                    unknown = set(src) - set(_SYNTHETIC_SOURCE_KEYS)
                    if unknown or not src.get('seeds'):
                        raise ValueError(f'data.sources[{k}]: a synthetic source takes seeds (a list) and '
                                         f'{sorted(set(_SYNTHETIC_SOURCE_KEYS) - {"type", "seeds"})}; got {src!r}')
                elif not isinstance(src, dict) or src.get('type') not in (*REAL_TYPES, 'folder') or not src.get('root'):
                    raise ValueError(f'data.sources[{k}] needs type (one of {list(REAL_TYPES) + ["folder"]}) and root, '
                                     f'or type synthetic with seeds; got {src!r}')
                if not float(src.get('weight', 1.0)) > 0:
                    raise ValueError(f'data.sources[{k}].weight must be > 0')
        if len(self.input_size) != 2 or not all(isinstance(v, int) and v > 0 for v in self.input_size):
            raise ValueError(f'data.input_size must be [height, width] in pixels, got {list(self.input_size)}')
        if not self.segmentation_classes or not self.detection_classes:
            raise ValueError('data.segmentation_classes and data.detection_classes must not be empty')
        from hydranet_ros.world.camera import PinholeCamera
        from hydranet_ros.world.styles import STYLE_NAMES
        for name in (self.style, self.val_style or self.style):
            if name not in STYLE_NAMES:
                raise ValueError(f'data.style must be one of {list(STYLE_NAMES)}, got {name!r}')
        for cam in (self.camera, *self.cameras):
            PinholeCamera.preset(cam)     # raises with the known names
        if set(self.labels) - {'segmentation', 'depth', 'flow', 'detection'}:
            raise ValueError(f'data.labels must name tasks (segmentation, depth, flow, detection), got '
                             f'{list(self.labels)}')


#: Settings whose value is a table of the user's own keys (merged key by key).
_OPEN_TABLES = {'weights', 'head_lr', 'class_map'}


def _settings(cls, given: dict, section: str):
    """cls from the defaults with `given` merged in: nested tables key by key (`weights:
    {segmentation: 2}` keeps the other tasks' weights); unknown keys and bad values refused."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(given or {}) - set(fields))
    if unknown:
        raise ValueError(f'{section}: unknown keys {unknown}; known: {sorted(fields)}')
    defaults = cls()
    values = {}
    for key, value in (given or {}).items():
        if key in _OPEN_TABLES and isinstance(value, dict):
            value = {**getattr(defaults, key), **value}
        elif isinstance(value, list):
            value = tuple(value)
        values[key] = value
    settings = cls(**values)
    settings.validate()
    return settings


def _dist():
    if int(os.environ.get('WORLD_SIZE', '1')) > 1 and not dist.is_initialized():
        backend = 'nccl' if torch.cuda.is_available() else 'gloo'
        dist.init_process_group(backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def make_datasets(data: 'DataSettings', model_cfg: HydraNetConfig, rank: int = 0, augment: bool = True,
                  focal_px: float | None = None):
    """(training set, validation set or None) for the data settings; under DDP each rank renders its share of the
    synthetic seeds. focal_px: the training focal length (default data.training_focal_px())."""
    focal_px = focal_px or data.training_focal_px()
    if data.type == 'synthetic':
        common = dict(cameras=data.cameras or None, letterbox=data.letterbox, training_focal_px=focal_px)
        train = SyntheticDataset(data.train_seeds[rank::max(1, int(os.environ.get('WORLD_SIZE', '1')))]
                                 or data.train_seeds, data.frames_per_seed, data.input_size,
                                 data.camera, model_cfg.num_detection_classes, augment=augment,
                                 style=data.style, labels=data.labels, odometry=bool(data.odometry), **common)
        val = SyntheticDataset(data.val_seeds, data.val_frames_per_seed, data.input_size,
                               data.camera, model_cfg.num_detection_classes, style=data.val_style or data.style,
                               **common)
        return train, val
    if data.type == 'folder':
        return (FolderDataset(data.root, data.input_size, model_cfg.num_detection_classes, augment=augment,
                              letterbox=data.letterbox, training_focal_px=focal_px), None)
    if data.type in REAL_TYPES:
        return real_dataset(dataclasses.asdict(data), data, model_cfg, augment), None
    if data.type == 'mixture':
        parts = [(_synthetic_source(src, data, model_cfg, augment, focal_px) if src.get('type') == 'synthetic' else
                  real_dataset({**dataclasses.asdict(data), 'class_map': {}, **src}, data, model_cfg, augment,
                               focal_px), float(src.get('weight', 1.0))) for src in data.sources]
        return MixtureDataset(parts), None
    raise ValueError(f"data.type must be 'synthetic' or 'folder', got '{data.type}'")


def _weights(batch, key):
    """A batch's label weights, or None when every one is 1 (real labels: the unweighted losses)."""
    w = batch.get(key)
    if w is None or bool((w == 1).all()):
        return None
    return w


def compute_losses(model, batch, tasks, cfg: HydraNetConfig, consistency: float, ssl=None):
    """({task: loss} for the tasks labelled in the batch, the extra terms added to the balanced
    total (depth-segmentation consistency, weighted self-supervision) or None, {self-supervised
    term: unweighted value})."""
    out = model(batch['image'], tasks, previous_images=batch['prev_image'] if 'flow' in tasks else None)
    losses = {}
    if 'segmentation' in tasks:
        losses['segmentation'] = L.segmentation_loss(out['segmentation'], batch['segmentation'],
                                                     batch['has_segmentation'], weight=_weights(batch, 'seg_weight'))
    if 'depth' in tasks:
        losses['depth'] = L.depth_loss(out['depth'], batch['depth'], batch['has_depth'], cfg.depth_min, cfg.depth_max,
                                       weight=_weights(batch, 'depth_weight'))
    if 'flow' in tasks:
        losses['flow'] = L.flow_loss(out['flow'], batch['flow'], batch['has_flow'])
    if 'detection' in tasks:
        losses['detection'] = L.detection_loss(out['detection'], batch['det_heat'], batch['det_size'],
                                               batch['det_offset'], batch['det_mask'], batch['has_detection'],
                                               cfg.num_detection_classes, ignore=batch.get('det_ignore'),
                                               weight=_weights(batch, 'det_weight'))
    extra = None
    if consistency > 0 and 'depth' in tasks:
        extra = consistency * L.depth_edge_consistency(out['depth'], batch['segmentation'],
                                                       batch['has_segmentation'] & batch['has_depth'])
    terms = {}
    if ssl is not None:
        terms = ssl.terms(getattr(model, 'module', model), batch, out)
        if terms:
            extra = ssl.total(terms) if extra is None else extra + ssl.total(terms)
    return losses, extra, terms


def _synthetic_source(src: dict, data: 'DataSettings', model_cfg: HydraNetConfig, augment: bool, focal_px):
    """A mixture's synthetic source: labelled drives of the world beside real or pseudo-labelled data."""
    return SyntheticDataset(src['seeds'], int(src.get('frames_per_seed', 20)), data.input_size,
                            src.get('camera', data.camera), model_cfg.num_detection_classes, augment=augment,
                            style=src.get('style', 'classic'), cameras=src.get('cameras') or None,
                            letterbox=data.letterbox, training_focal_px=focal_px,
                            labels=tuple(src.get('labels', ('segmentation', 'depth', 'flow', 'detection'))),
                            odometry=bool(src.get('odometry', False)))


def real_dataset(spec: dict, data: 'DataSettings', model_cfg: HydraNetConfig, augment: bool = False,
                 focal_px: float | None = None):
    """A RealDataset for one source: spec holds type, root and the source's own class_map, split,
    sequences, depth_source, completion_root; the model's classes come from data."""
    from hydranet_ros.training import cityscapes, kitti
    kind = spec['type']
    if kind == 'folder':     # e.g. pseudo-label's output: already in the model's classes
        return FolderDataset(spec['root'], data.input_size, model_cfg.num_detection_classes, augment=augment,
                             letterbox=data.letterbox, training_focal_px=focal_px)
    if kind == 'bag':
        items, names = [], None
        for path in sorted(Path(spec['root']).glob('*/metadata.yaml')) or [Path(spec['root']) / 'metadata.yaml']:
            more, bag_names = bag_frames(path.parent)
            if names is not None and bag_names != names:
                raise ValueError(f'{path.parent}: its LabelInfo classes {bag_names} differ from the other bags\' '
                                 f'{names}; train bags with different classes as separate mixture sources')
            items, names = items + more, bag_names
        class_map = bag_class_map(names, spec.get('class_map'), data.segmentation_classes, data.detection_classes)
        return RealDataset(items, 'bag', data.input_size, class_map, model_cfg.num_detection_classes, augment=augment)
    dataset = 'cityscapes' if kind == 'cityscapes' else 'kitti'
    class_map = ClassMap.from_names(spec.get('class_map'), dataset, data.segmentation_classes,
                                    data.detection_classes)
    if kind == 'kitti_raw':
        items = kitti.raw_frames(spec['root'], spec.get('depth_source', 'lidar'), spec.get('completion_root'))
    elif kind == 'kitti_tracking':
        items = kitti.tracking_frames(spec['root'], spec.get('sequences') or None)
    elif kind == 'kitti_flow':
        items = kitti.flow_frames(spec['root'])
    else:
        items = cityscapes.frames(spec['root'], spec.get('split', 'train'))
    return RealDataset(items, dataset, data.input_size, class_map, model_cfg.num_detection_classes, augment=augment)


class InitFromError(ValueError):
    """The init_from checkpoint cannot start this network (missing, unreadable or another network)."""


def init_from_checkpoint(model: HydraNet, path) -> str:
    """Start from a trained HydraNet checkpoint: copy every tensor whose name and shape match,
    keep the new modules' initial weights (e.g. a flow level added to a trained model).
    Raises InitFromError when the file is not a readable checkpoint or fewer than half of its
    tensors fit (another network, not a fine-tuning start)."""
    from hydranet_ros.model.checkpoint import CheckpointError, load_checkpoint
    try:
        source = load_checkpoint(path).model.state_dict()
    except (CheckpointError, OSError) as exc:
        raise InitFromError(f'init_from: {exc}') from exc
    own = model.state_dict()
    loaded = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    if 2 * len(loaded) < len(source):
        raise InitFromError(f'init_from {path}: only {len(loaded)} of its {len(source)} tensors fit this '
                         'architecture; it is not a start for this network')
    mismatched = sorted(k for k in source if k in own and own[k].shape != source[k].shape)
    model.load_state_dict(loaded, strict=False)
    new = sorted(set(own) - set(loaded))
    return (f'init_from {path}: {len(loaded)} tensors loaded, {len(new)} new'
            + (f', {len(mismatched)} with other shapes kept new' if mismatched else '')
            + (f' (first new: {new[0]})' if new else ''))


def _model_config(config: TrainConfig, dcfg: dict) -> tuple[HydraNetConfig, list]:
    """The network's configuration and the dataset's segmentation classes ({name, color}), checked
    against each other before any step (the checkpoint records these names)."""
    seg_classes = [c if isinstance(c, dict) else {'name': str(c), 'color': [128, 128, 128]}
                   for c in dcfg.segmentation_classes]
    mcfg = HydraNetConfig.from_dict({'num_classes': len(seg_classes),
                                     'num_detection_classes': len(dcfg.detection_classes),
                                     **_architecture(config.model)})
    if mcfg.num_classes != len(seg_classes) or mcfg.num_detection_classes != len(dcfg.detection_classes):
        raise ValueError(f'model: {mcfg.num_classes} segmentation / {mcfg.num_detection_classes} detection classes, '
                         f'but data names {len(seg_classes)} / {len(dcfg.detection_classes)} '
                         f'(data.segmentation_classes, data.detection_classes)')
    return mcfg, seg_classes


def _class_indices(names, seg_classes: list, key: str) -> list[int]:
    """Segmentation class names -> the model's class indices; an unknown name is refused with the list."""
    known = [c['name'] for c in seg_classes]
    unknown = [str(n) for n in names if n not in known]
    if unknown:
        raise ValueError(f'{key}: {unknown} are not segmentation classes of this model; they are {known}')
    return [known.index(n) for n in names]


def _seed_and_device(tcfg: dict, rank: int) -> torch.device:
    seed = int(tcfg.seed) + rank
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(int(tcfg.seed))     # same initial weights on every rank
    if tcfg.threads:
        torch.set_num_threads(int(tcfg.threads))
    if torch.cuda.is_available():
        return torch.device('cuda', rank % max(torch.cuda.device_count(), 1))
    return torch.device('cpu')


def _optimizer(model: HydraNet, balancer: LossBalancer, tcfg: dict) -> torch.optim.Optimizer:
    """AdamW with one group for the shared encoder + decoder, one per head (head_lr), one for the
    balancer's learned weights (no decay)."""
    head_lr = tcfg.head_lr or {}
    encoder_lr = tcfg.lr if tcfg.encoder_lr is None else float(tcfg.encoder_lr)
    groups = [{'params': list(model.encoder.parameters()), 'lr': encoder_lr},
              {'params': list(model.decoder.parameters()), 'lr': tcfg.lr}]
    for t in TASKS:
        groups.append({'params': list(model.heads[t].parameters()), 'lr': float(head_lr.get(t, tcfg.lr))})
    groups.append({'params': list(balancer.parameters()), 'lr': tcfg.lr, 'weight_decay': 0.0})
    return torch.optim.AdamW(groups, weight_decay=tcfg.weight_decay)


def _learning_rate_scale(step: int, total_steps: int, warmup_steps: int = 50) -> float:
    """Cosine decay over the run, linear warm-up over its first steps."""
    return 0.5 * (1 + math.cos(math.pi * step / max(total_steps, 1))) * min(1.0, (step + 1) / warmup_steps)


def _state_path(tcfg: dict) -> Path:
    return Path(tcfg.output).with_suffix('.state.pt')


def _data_rngs(train_set) -> list:
    """The random generators that decide what the next batches are: the sampler's is passed
    separately; these are the datasets' own (augmentation), mixtures' parts included."""
    parts = getattr(train_set, 'parts', [train_set])
    return [p.rng for p in parts if isinstance(getattr(p, 'rng', None), np.random.Generator)]


def _save_state(path: Path, model, optimizer, balancer, step: int, history: list, rng=None, scaler=None,
                running=None, train_set=None, ssl=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    rngs = ([rng] if rng is not None else []) + (_data_rngs(train_set) if train_set is not None else [])
    torch.save({'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
                'balancer': balancer.state_dict(), 'step': step, 'history': history,
                'data_rng': json.dumps([g.bit_generator.state for g in rngs]),
                'scaler': scaler.state_dict() if scaler is not None else None,
                'running': json.dumps(running) if running is not None else None,
                'self_supervision': ssl.state_dict() if ssl is not None else None}, path)


def _resume(path, device, model, optimizer, balancer, rng=None, scaler=None, running=None,
            train_set=None, ssl=None) -> tuple[int, list]:
    """Everything a run needs to go on as if it never stopped, from a .state.pt: model, optimiser,
    balancing state (DWA history included), the data position (the sampler's random state), the
    loss scaler and the running losses (DWA's epochs)."""
    state = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(state['model'])
    optimizer.load_state_dict(state['optimizer'])
    balancer.load_state_dict(state['balancer'])
    rngs = ([rng] if rng is not None else []) + (_data_rngs(train_set) if train_set is not None else [])
    saved = json.loads(state['data_rng']) if state.get('data_rng') else []
    for generator, saved_state in zip(rngs, saved):
        generator.bit_generator.state = saved_state
    if scaler is not None and state.get('scaler'):
        scaler.load_state_dict(state['scaler'])
    if running is not None and state.get('running'):
        running.update(json.loads(state['running']))
    if ssl is not None and state.get('self_supervision'):
        ssl.load_state_dict(state['self_supervision'])
    return int(state['step']), list(state.get('history', []))


def _train_step(net, model, batch, tasks, mcfg, tcfg, balancer, optimizer, scaler, use_amp, device,
                ssl=None, recipe=None) -> dict:
    """One optimisation step; the per-task losses and the self-supervised terms."""
    dtype = torch.bfloat16 if tcfg.amp_dtype == 'bf16' else torch.float16
    with torch.autocast(device.type, dtype=dtype, enabled=use_amp):
        losses, extra, terms = compute_losses(net, batch, tasks, mcfg, float(tcfg.consistency), ssl)
        distance = recipe.feature_distance(batch) if recipe is not None else None
        if distance is not None:
            extra = distance if extra is None else extra + distance
            terms = {**terms, 'feature_distance': distance.detach()}
        total = balancer({k: v.float() for k, v in losses.items()})
        if extra is not None:
            total = total + extra
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
    scaler.step(optimizer)
    scaler.update()
    return {**losses, **terms}


def _save_checkpoint(config, model, mcfg, tasks, seg_classes, tcfg, dcfg, summary, focal=None) -> str:
    # real datasets mix cameras: not one focal length (docs/TRAINING.md), unless fine-tuned from a
    # checkpoint that has one, or mixed with the synthetic world
    focal = focal or dcfg.training_focal_px()
    meta = CheckpointMetadata(
        architecture=mcfg.to_dict(), tasks=tasks, camera_focal_px=focal,
        segmentation_classes=seg_classes, detection_classes=[str(n) for n in dcfg.detection_classes],
        input_size=list(dcfg.input_size), name=config.name, training=json.loads(json.dumps(summary, default=str)))
    return save_checkpoint(tcfg.output, model.cpu(), meta)


def _look_augmentation(train_set, tcfg: TrainConfig, log):
    """Give the labelled parts of the training set the target camera's look and sensor
    (train.appearance_from, sensor_noise, jpeg_quality); the target's own folders (those under
    appearance_from, or holding it) keep their frames as recorded. class_colour_jitter without a
    synthetic source is refused (it would do nothing)."""
    from hydranet_ros.training.datasets import AppearanceTransfer, FolderDataset, SyntheticDataset, image_files
    targets = [Path(d).resolve() for d in tcfg.appearance_from]
    appearance = AppearanceTransfer(image_files(targets), tcfg.appearance_beta, tcfg.appearance_probability) \
        if targets else None
    sensor = {'noise_sigma': tuple(float(v) for v in tcfg.sensor_noise),
              'jpeg_quality': tuple(int(v) for v in tcfg.jpeg_quality),
              'probability': float(tcfg.sensor_probability)} \
        if tcfg.sensor_noise[1] > 0 or tcfg.jpeg_quality[1] > 0 else None
    parts = getattr(train_set, 'parts', [train_set])
    if tcfg.class_colour_jitter > 0 and not any(isinstance(p, SyntheticDataset) for p in parts):
        raise ValueError('train.class_colour_jitter paints classes by the class maps of every frame, which only '
                         'synthetic drives have; this training set has no synthetic source')
    if appearance is None and sensor is None:
        return
    given = 0
    for part in parts:
        root = Path(part.root).resolve() if isinstance(part, FolderDataset) else None
        if root is not None and any(root == t or t in root.parents or root in t.parents for t in targets):
            continue
        part.appearance, part.sensor = appearance, sensor
        given += 1
    log(f'look augmentation: {given} labelled source(s)'
        + (f', the look of {len(appearance.files)} target images (beta {tcfg.appearance_beta})' if appearance else '')
        + (f', sensor {sensor}' if sensor else ''))


def train(config: TrainConfig, progress: bool = True, log=print) -> dict:
    """Train (or resume, or grow from init_from) a HydraNet as the config says; the checkpoint
    is written by rank 0. Steps: settings, data, network, optimiser, resume, the loop (step,
    balancing epochs, evaluation + state), the checkpoint."""
    rank, world = _dist()
    tcfg, dcfg = config.resolved()
    mcfg, seg_classes = _model_config(config, dcfg)
    movers = _class_indices(tcfg.rigid_flow_movers, seg_classes, 'train.rigid_flow_movers')   # before any render
    tasks = [t for t in TASKS if t in tcfg.tasks]
    device = _seed_and_device(tcfg, rank)
    focal = dcfg.training_focal_px()
    if focal is None and tcfg.init_from and not tcfg.resume:
        from hydranet_ros.model.checkpoint import load_checkpoint
        focal = load_checkpoint(tcfg.init_from).metadata.training_focal_px()   # fine-tuning keeps its lens
    t_data = time.time()
    train_set, val_set = make_datasets(dcfg, mcfg, rank, augment=bool(tcfg.augment), focal_px=focal)
    for part in getattr(train_set, 'parts', [train_set]):
        part.zoom_range = tuple(float(v) for v in tcfg.zoom)
        part.color_jitter = float(tcfg.color_jitter)
        part.hue_jitter = float(tcfg.hue_jitter)
        part.class_colour_jitter = float(tcfg.class_colour_jitter)
    _look_augmentation(train_set, tcfg, log if rank == 0 else (lambda *_: None))
    data_s = time.time() - t_data
    if rank == 0:
        log(f'data: {len(train_set)} training pairs, {len(val_set) if val_set else 0} validation pairs '
            f'({data_s:.0f} s to render)')
    model = HydraNet(mcfg).to(device)
    resuming = bool(tcfg.resume and Path(tcfg.resume).is_file())
    if tcfg.init_from and not resuming:
        report = init_from_checkpoint(model, tcfg.init_from)
        if rank == 0:
            log(report)
    elif config.model.get('encoder_weights') and not resuming:
        from hydranet_ros.model.imagenet import load_encoder_weights
        report = load_encoder_weights(model.encoder, config.model['encoder_weights'])
        if rank == 0:
            log(report)
    recipe = EncoderRecipe(model, tcfg.freeze_encoder_blocks, tcfg.freeze_encoder_bn, tcfg.feature_distance,
                           _class_indices(tcfg.feature_distance_classes, seg_classes, 'train.feature_distance_classes'))
    balancer = LossBalancer(tasks, tcfg.balancing, tcfg.weights).to(device)
    optimizer = _optimizer(model, balancer, tcfg)
    ssl = None
    if tcfg.photometric > 0 or tcfg.flow_photometric > 0:
        from hydranet_ros.model.checkpoint import IMAGENET_MEAN, IMAGENET_STD
        from hydranet_ros.training.self_supervised import SelfSupervision
        ssl = SelfSupervision(model.encoder.channels[32], float(tcfg.photometric), float(tcfg.flow_photometric),
                              float(tcfg.smoothness), IMAGENET_MEAN, IMAGENET_STD,
                              training_focal_px=focal, use_odometry=tcfg.pose_source == 'auto',
                              rigid_flow=float(tcfg.rigid_flow), scales=int(tcfg.photometric_scales),
                              rigid_flow_movers=movers).to(device)
        if list(ssl.parameters()):
            optimizer.add_param_group({'params': list(ssl.parameters()), 'lr': tcfg.lr})
    base_lrs = [g['lr'] for g in optimizer.param_groups]
    step, history = 0, []
    use_amp = bool(tcfg.amp) and device.type == 'cuda'
    # bf16 keeps fp32's range: no loss scaling; fp16 needs it
    scaler = torch.amp.GradScaler('cuda', enabled=use_amp and tcfg.amp_dtype == 'fp16')
    # Every process draws the same global batch and trains on its share of it, so N processes
    # with batch_size B step like one process with B (BatchNorm statistics aside: per process
    # on CPU, synchronised on CUDA).
    rng = np.random.default_rng(int(tcfg.seed))
    if int(tcfg.batch_size) % world:
        raise ValueError(f'train.batch_size {tcfg.batch_size} is the global batch: it must divide by the '
                         f'{world} processes')
    running = {t: [] for t in tasks}
    if ssl is not None:
        running.update({k: [] for k, w in (('photometric', tcfg.photometric),
                                            ('flow_photometric', tcfg.flow_photometric)) if w > 0})
    if resuming:
        step, history = _resume(tcfg.resume, device, model, optimizer, balancer, rng, scaler, running, train_set,
                                ssl)
        if rank == 0:
            log(f'resumed from {tcfg.resume} at step {step}')
    if device.type == 'cuda' and tcfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if world > 1 and device.type == 'cuda':
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    net = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True) if world > 1 else model
    total_steps = int(tcfg.steps)
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm
        bar = tqdm(total=total_steps, initial=step, desc='train', dynamic_ncols=True)
    started = time.time()
    epoch_len = max(len(train_set) // int(tcfg.batch_size), 1)
    model.train()
    while step < total_steps:
        scale = _learning_rate_scale(step, total_steps)
        recipe.train_mode()      # after evaluation too: frozen BatchNorm stays in eval mode
        for g, base in zip(optimizer.param_groups, base_lrs):
            g['lr'] = base * scale
        if hasattr(train_set, 'sample_index'):     # a mixture draws each dataset by its weight
            indices = [train_set.sample_index(rng) for _ in range(int(tcfg.batch_size))]
        else:
            indices = rng.integers(0, len(train_set), int(tcfg.batch_size))
        items = [train_set[int(i) % len(train_set)] for i in indices[rank::world]]
        batch = {k: torch.stack([it[k] for it in items]).to(device) for k in items[0]}
        if device.type == 'cuda' and tcfg.channels_last:
            for key in ('image', 'prev_image'):
                batch[key] = batch[key].contiguous(memory_format=torch.channels_last)
        losses = _train_step(net, model, batch, tasks, mcfg, tcfg, balancer, optimizer, scaler, use_amp, device,
                             ssl, recipe)
        step += 1
        for t, v in losses.items():
            running.setdefault(t, []).append(float(v.detach()))
        if bar is not None:
            bar.update(1)
            if step % int(tcfg.log_every) == 0:
                bar.set_postfix({{'flow_photometric': 'fph'}.get(t, t[:3]): f'{np.mean(v[-20:]):.3f}'
                                 for t, v in running.items() if v})
        if step % epoch_len == 0:
            balancer.end_epoch({t: float(np.mean(running[t][-epoch_len:])) for t in tasks if running.get(t)})
        checkpoint_now = step % int(tcfg.eval_every) == 0 or step == total_steps
        if rank == 0 and val_set is not None and checkpoint_now:
            head = headline(evaluate(model, val_set, tasks, max_samples=int(tcfg.eval_samples)))
            if ssl is not None and 'depth' in tasks and 'depth' not in dcfg.labels:
                # depth learned from video alone is known up to scale: its curve is median-scaled
                scaled = evaluate(model, val_set, ['depth'], max_samples=int(tcfg.eval_samples), median_scaled=True)
                head['abs_rel_median_scaled'] = scaled['depth']['abs_rel']
            history.append({'step': step, **head, 'weights': balancer.current_weights(),
                            'elapsed_s': time.time() - started})
            log(f'step {step}: ' + ', '.join(f'{k} {v:.3f}' for k, v in head.items()))
        if rank == 0 and checkpoint_now:
            _save_state(_state_path(tcfg), model, optimizer, balancer, step, history, rng, scaler, running,
                        train_set, ssl)
    if bar is not None:
        bar.close()
    elapsed = time.time() - started
    result = {'steps': step, 'train_seconds': elapsed, 'history': history, 'losses': running}
    if rank == 0:
        summary = {'data': {k: getattr(dcfg, k) for k in ('type', 'camera', 'input_size', 'frames_per_seed')}
                   | {'train_seeds': f"{len(dcfg.train_seeds)} seeds", 'val_seeds': dcfg.val_seeds},
                   'steps': step, 'batch_size': tcfg.batch_size, 'balancing': tcfg.balancing,
                   'train_seconds': round(elapsed, 1), 'render_seconds': round(data_s, 1),
                   'device': str(device), 'world_size': world, 'final': history[-1] if history else {}}
        sha = _save_checkpoint(config, model, mcfg, tasks, seg_classes, tcfg, dcfg, summary, focal)
        result['sha256'] = sha
        result['output'] = tcfg.output
        log(f'saved {tcfg.output} (sha256 {sha[:12]}) after {step} steps in {elapsed:.0f} s')
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return result
