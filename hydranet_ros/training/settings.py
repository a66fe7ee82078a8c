"""The settings of a training run: a training YAML (`model`, `data`, `train` sections and a name,
optionally on a `base:` config it changes) read into checked, typed settings over their defaults."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hydranet_ros import TASKS
from hydranet_ros.model import HydraNetConfig
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
    def load(cls, path, check_paths: bool = True) -> 'TrainConfig':
        """Read and check a training YAML (over its `base:` chain); ValueError naming the first
        problem. check_paths=False skips checking that the folders it names exist (configs of
        data this machine does not have)."""
        raw = read_config(path)
        config = cls(**raw)
        try:
            config.resolved(check_paths)
            HydraNetConfig.from_dict(_architecture(config.model))
        except (TypeError, ValueError) as exc:
            raise ValueError(f'{path}: {exc}') from None
        return config

    def resolved(self, check_paths: bool = True) -> tuple['TrainSettings', 'DataSettings']:
        """The train and data sections as checked, typed settings over their defaults."""
        train = _settings(TrainSettings, self.train, 'train', check_paths)
        data = _settings(DataSettings, self.data, 'data', check_paths)
        kinds = {s.get('type') for s in data.sources if isinstance(s, dict)} if data.type == 'mixture' else {data.type}
        if train.sampler == 'task_balanced' and kinds != {'synthetic'}:
            raise ValueError(f'train.sampler task_balanced needs to know which samples carry which labels: synthetic '
                             f'drives (or a mixture of them) say so, a {"/".join(sorted(kinds - {"synthetic"}))} '
                             f'source does not')
        return train, data


_SECTIONS = ('model', 'data', 'train', 'name')


def merge_config(base: dict, change: dict) -> dict:
    """base with change laid over it: tables merged key by key at every depth, anything else
    (numbers, strings, lists) replaced."""
    out = dict(base)
    for key, value in change.items():
        out[key] = merge_config(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) \
            else value
    return out


def read_config(path, _chain: tuple = ()) -> dict:
    """A training YAML as one dict: with `base: OTHER.yaml` (relative to this file's folder, as
    detectron2's `_BASE_`), the base's settings with this file's laid over them (merge_config), so
    an experiment's file says only what differs. Unknown sections, a missing base and a circular
    chain are refused."""
    path = Path(path).resolve()
    if path in _chain:
        raise ValueError(f'{path}: base chain loops back to itself ({" -> ".join(p.name for p in _chain)})')
    if not path.is_file():
        where = f' (base of {_chain[-1]})' if _chain else ''
        raise ValueError(f'{path}: no such training config{where}')
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f'{path}: a training config is a mapping of sections, got {type(raw).__name__}')
    unknown = sorted(set(raw) - {*_SECTIONS, 'base'})
    if unknown:
        raise ValueError(f'{path}: unknown sections {unknown}')
    base = raw.pop('base', None)
    if base is None:
        return raw
    return merge_config(read_config(path.parent / str(base), (*_chain, path)), raw)


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
    # which samples a batch draws: dataset (every sample alike; a mixture's sources by their weights) or
    # task_balanced (a task drawn uniformly for each slot, then a sample that labels it: rare labels
    # come as often as common ones; synthetic drives and mixtures of them)
    sampler: str = 'dataset'
    eval_every: int = 250
    eval_samples: int = 64
    seed: int = 0
    amp: bool = True                                     # CUDA only: autocast in amp_dtype
    amp_dtype: str = 'bf16'                              # bf16 (no loss scaling needed) or fp16
    channels_last: bool = True                           # CUDA only: NHWC convolutions
    tasks: tuple = TASKS
    # tasks whose outputs must not change (docs/MODEL.md "Adding a head without forgetting"): the
    # encoder, the decoder and these heads frozen (BatchNorm too), so only the heads of `tasks` train
    keep: tuple = ()
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

    def validate(self, check_paths: bool = True):
        for name in ('steps', 'batch_size', 'eval_every', 'eval_samples', 'log_every', 'photometric_scales'):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f'train.{name} must be an integer >= 1, got {getattr(self, name)!r}')
        for name in ('lr', 'weight_decay', 'photometric', 'flow_photometric', 'smoothness', 'rigid_flow',
                     'feature_distance'):
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
        missing = [str(d) for d in self.appearance_from if check_paths and not Path(d).is_dir()]
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
        if self.sampler not in ('dataset', 'task_balanced'):
            raise ValueError(f"train.sampler must be 'dataset' or 'task_balanced', got {self.sampler!r}")
        if self.balancing not in _BALANCING:
            raise ValueError(f'train.balancing must be one of {list(_BALANCING)}, got {self.balancing!r}')
        if not self.tasks or set(self.tasks) - set(TASKS):
            raise ValueError(f'train.tasks must be a non-empty subset of {list(TASKS)}, got {list(self.tasks)}')
        if set(self.keep) - set(TASKS) or set(self.keep) & set(self.tasks):
            raise ValueError(f'train.keep must name tasks of {list(TASKS)} that train.tasks does not train, '
                             f'got keep {list(self.keep)} with tasks {list(self.tasks)}')
        if self.keep and not (self.init_from or self.resume):
            raise ValueError('train.keep keeps a trained network\'s outputs: it needs train.init_from (the checkpoint '
                             'whose outputs to keep)')
        for table in ('weights', 'head_lr'):
            unknown = set(getattr(self, table)) - set(TASKS)
            if unknown:
                raise ValueError(f'train.{table} names unknown tasks {sorted(unknown)}; tasks are {list(TASKS)}')


_SYNTHETIC_SOURCE_KEYS = ('type', 'weight', 'seeds', 'frames_per_seed', 'style', 'camera', 'cameras', 'labels',
                          'label_fraction', 'odometry')


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
    # synthetic: a task's labels kept on this share of the samples only (the rest withheld), e.g.
    # {depth: 0.1}: rare labels, as when one task is ten times dearer to label
    label_fraction: dict = field(default_factory=dict)

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
            from hydranet_ros.training.samples import letterbox_content
            h, w = letterbox_content(camera, self.input_size)
        else:
            h, w = self.input_size
        return float(PinholeCamera.preset(camera).scaled(int(w), int(h)).fx)

    def validate(self, check_paths: bool = True):   # noqa: ARG002 (no folder is checked here)
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
        if self.label_fraction and self.type != 'synthetic':
            raise ValueError('data.label_fraction thins the labels of synthetic drives; '
                             + ('set it on the mixture\'s synthetic sources' if self.type == 'mixture'
                                else f'a {self.type} dataset has the labels it has'))
        _check_label_fraction(self.label_fraction)
        for src in (s for s in self.sources if isinstance(s, dict) and 'label_fraction' in s):
            if src.get('type') != 'synthetic':
                raise ValueError(f"data.sources: label_fraction thins synthetic drives' labels, not a "
                                 f"{src.get('type')} source's")
            _check_label_fraction(src['label_fraction'])


def _check_label_fraction(table):
    """data.label_fraction (or a synthetic source's): {task: share in (0, 1]}; ValueError otherwise."""
    if not isinstance(table, dict):
        raise ValueError(f'data.label_fraction must be a table {{task: share of samples}}, got {table!r}')
    for task, share in table.items():
        if task not in TASKS:
            raise ValueError(f'data.label_fraction names {task!r}; tasks are {list(TASKS)}')
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
            raise ValueError(f'data.label_fraction.{task} must be a share in (0, 1], got {share!r}')


#: Settings whose value is a table of the user's own keys (merged key by key).
_OPEN_TABLES = {'weights', 'head_lr', 'class_map'}


#: keys that existed once, and why they are gone (a config that still sets one is told so)
_REMOVED = {'train.consistency': 'removed: the depth-segmentation consistency term was measured and made depth '
                                 'worse (docs/MODEL.md, "Cross-task consistency"); delete the key'}


def _settings(cls, given: dict, section: str, check_paths: bool = True):
    """cls from the defaults with `given` merged in: nested tables key by key (`weights:
    {segmentation: 2}` keeps the other tasks' weights); unknown keys and bad values refused."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(given or {}) - set(fields))
    removed = [k for k in unknown if f'{section}.{k}' in _REMOVED]
    if removed:
        raise ValueError('; '.join(f'{section}.{k}: {_REMOVED[f"{section}.{k}"]}' for k in removed))
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
    settings.validate(check_paths)
    return settings
