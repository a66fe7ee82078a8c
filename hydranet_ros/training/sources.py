"""The data sources a training run reads, built from the `data:` section by one table.

`SOURCES` maps each `data.type` (and each type a mixture's `sources` may name) to its builder, so
adding a dataset type is one entry and one function. Every builder takes the source's spec (a
dict: type, root or seeds, and that source's own keys) and the run's `BuildContext`, and gets the
run's `Augmentation` at construction; the target camera's own frames (folders under
`train.appearance_from`) get it without that camera's look.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from hydranet_ros.model import HydraNetConfig
from hydranet_ros.training.augmentation import AppearanceTransfer, Augmentation
from hydranet_ros.training.datasets import FolderDataset, SyntheticDataset, image_files
from hydranet_ros.training.real_data import ClassMap, MixtureDataset, RealDataset, bag_class_map, bag_frames
from hydranet_ros.training.settings import DataSettings

_ALL_LABELS = ('segmentation', 'depth', 'flow', 'detection')


@dataclass(frozen=True)
class BuildContext:
    """What every source of one run shares."""
    data: DataSettings
    model: HydraNetConfig
    augment: bool = True
    focal_px: float | None = None              # the training focal length depth labels are normalised to
    augmentation: Augmentation = Augmentation()
    look_targets: tuple = ()                   # resolved folders of the target camera's own frames


def augmentation_from(tcfg) -> tuple[Augmentation, tuple]:
    """(the run's Augmentation, the target camera's folders) from the `train:` settings."""
    targets = tuple(Path(d).resolve() for d in tcfg.appearance_from)
    appearance = AppearanceTransfer(image_files(targets), tcfg.appearance_beta, tcfg.appearance_probability) \
        if targets else None
    sensor = {'noise_sigma': tuple(float(v) for v in tcfg.sensor_noise),
              'jpeg_quality': tuple(int(v) for v in tcfg.jpeg_quality),
              'probability': float(tcfg.sensor_probability)} \
        if tcfg.sensor_noise[1] > 0 or tcfg.jpeg_quality[1] > 0 else None
    aug = Augmentation(zoom_range=tuple(float(v) for v in tcfg.zoom), color_jitter=float(tcfg.color_jitter),
                       hue_jitter=float(tcfg.hue_jitter), class_colour_jitter=float(tcfg.class_colour_jitter),
                       appearance=appearance, sensor=sensor)
    return aug, targets


def _synthetic(spec: dict, ctx: BuildContext) -> Dataset:
    """Labelled drives of the synthetic world (rendered now, kept in memory)."""
    data = ctx.data
    return SyntheticDataset(spec['seeds'], int(spec.get('frames_per_seed', data.frames_per_seed)), data.input_size,
                            spec.get('camera', data.camera), ctx.model.num_detection_classes, augment=ctx.augment,
                            style=spec.get('style', 'classic'), cameras=spec.get('cameras') or None,
                            letterbox=data.letterbox, training_focal_px=ctx.focal_px,
                            labels=tuple(spec.get('labels', _ALL_LABELS)), odometry=bool(spec.get('odometry', False)),
                            augmentation=ctx.augmentation, label_fraction=spec.get('label_fraction') or {})


def _is_target(root, targets) -> bool:
    root = Path(root).resolve()
    return any(root == t or t in root.parents or root in t.parents for t in targets)


def _folder(spec: dict, ctx: BuildContext) -> Dataset:
    """A dataset folder (world.export, pseudo-label): already in the model's classes."""
    aug = ctx.augmentation.without_look() if _is_target(spec['root'], ctx.look_targets) else ctx.augmentation
    return FolderDataset(spec['root'], ctx.data.input_size, ctx.model.num_detection_classes, augment=ctx.augment,
                         letterbox=ctx.data.letterbox, training_focal_px=ctx.focal_px, augmentation=aug)


def _bag(spec: dict, ctx: BuildContext) -> Dataset:
    """Recorded bags (one, or a folder of them) with ground truth or pseudo-labels on their topics."""
    items, names = [], None
    for path in sorted(Path(spec['root']).glob('*/metadata.yaml')) or [Path(spec['root']) / 'metadata.yaml']:
        more, bag_names = bag_frames(path.parent)
        if names is not None and bag_names != names:
            raise ValueError(f'{path.parent}: its LabelInfo classes {bag_names} differ from the other bags\' '
                             f'{names}; train bags with different classes as separate mixture sources')
        items, names = items + more, bag_names
    data = ctx.data
    class_map = bag_class_map(names, spec.get('class_map'), data.segmentation_classes, data.detection_classes)
    return RealDataset(items, 'bag', data.input_size, class_map, ctx.model.num_detection_classes, augment=ctx.augment,
                       augmentation=ctx.augmentation)


def _published(spec: dict, ctx: BuildContext) -> Dataset:
    """KITTI (raw, tracking, flow) and Cityscapes, read as published."""
    from hydranet_ros.training import cityscapes, kitti
    kind, data = spec['type'], ctx.data
    dataset = 'cityscapes' if kind == 'cityscapes' else 'kitti'
    class_map = ClassMap.from_names(spec.get('class_map'), dataset, data.segmentation_classes, data.detection_classes)
    readers = {'kitti_raw': lambda: kitti.raw_frames(spec['root'], spec.get('depth_source', 'lidar'),
                                                     spec.get('completion_root')),
               'kitti_tracking': lambda: kitti.tracking_frames(spec['root'], spec.get('sequences') or None),
               'kitti_flow': lambda: kitti.flow_frames(spec['root']),
               'cityscapes': lambda: cityscapes.frames(spec['root'], spec.get('split', 'train'))}
    return RealDataset(readers[kind](), dataset, data.input_size, class_map, ctx.model.num_detection_classes,
                       augment=ctx.augment, augmentation=ctx.augmentation)


#: data.type (or a mixture source's type) -> builder(spec, ctx)
SOURCES = {'synthetic': _synthetic, 'folder': _folder, 'bag': _bag, 'kitti_raw': _published,
           'kitti_tracking': _published, 'kitti_flow': _published, 'cityscapes': _published}


def _top_level_spec(data: DataSettings, rank: int) -> dict:
    """The data section as one source's spec (a synthetic run's seeds shared out among DDP ranks)."""
    spec = dataclasses.asdict(data)
    if data.type == 'synthetic':
        world = max(1, int(os.environ.get('WORLD_SIZE', '1')))
        spec.update(seeds=list(data.train_seeds[rank::world] or data.train_seeds), cameras=data.cameras or None)
    return spec


def make_datasets(data: DataSettings, model_cfg: HydraNetConfig, rank: int = 0, augment: bool = True,
                  focal_px: float | None = None, augmentation: Augmentation | None = None, look_targets=()):
    """(training set, validation set or None) for the data settings; under DDP each rank renders its
    share of the synthetic seeds. focal_px: the training focal length (default
    data.training_focal_px()). class_colour_jitter without a synthetic source is refused (it would
    do nothing)."""
    ctx = BuildContext(data, model_cfg, augment, focal_px or data.training_focal_px(),
                       augmentation or Augmentation(), tuple(look_targets))
    if data.type == 'mixture':
        # a real source reads the data section's keys it does not set itself (class_map: its own only)
        train = MixtureDataset([(SOURCES[src['type']](src if src['type'] == 'synthetic' else
                                                      {**dataclasses.asdict(data), 'class_map': {}, **src}, ctx),
                                 float(src.get('weight', 1.0))) for src in data.sources])
    else:
        train = SOURCES[data.type](_top_level_spec(data, rank), ctx)
    parts = getattr(train, 'parts', [train])
    if ctx.augmentation.class_colour_jitter > 0 and not any(isinstance(p, SyntheticDataset) for p in parts):
        raise ValueError('train.class_colour_jitter paints classes by the class maps of every frame, which only '
                         'synthetic drives have; this training set has no synthetic source')
    val = None
    if data.type == 'synthetic':
        val = SyntheticDataset(data.val_seeds, data.val_frames_per_seed, data.input_size, data.camera,
                               model_cfg.num_detection_classes, style=data.val_style or data.style,
                               cameras=data.cameras or None, letterbox=data.letterbox, training_focal_px=ctx.focal_px)
    return train, val
