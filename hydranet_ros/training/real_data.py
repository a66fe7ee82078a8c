"""Real datasets for training: KITTI and Cityscapes read as published, mapped onto the model's
classes, resized to the network input, mixed with sampling weights.

Each sample carries the labels its dataset has; every other task is missing for it (the
asymmetric-annotation training the trainer already does): KITTI raw gives depth (LiDAR) and
frame pairs, KITTI tracking adds boxes, KITTI flow 2015 gives flow, Cityscapes gives
segmentation, boxes and depth (stereo). DontCare regions and objects of classes the model does
not have become ignore regions of the detection loss, never background.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from torch.utils.data import Dataset

from hydranet_ros.training import cityscapes, kitti
from hydranet_ros.model.normalization import IMAGENET_MEAN, IMAGENET_STD
from hydranet_ros.training.augmentation import Augmentation
from hydranet_ros.training.samples import Sample, resize_sparse_depth, to_tensors, zoom_sample
from hydranet_ros import IGNORE

#: The class names a dataset's labels come in (what a class map's keys name).
DATASET_CLASSES = {
    'kitti': {'segmentation': [], 'detection': list(kitti.KITTI_TYPES)},
    'cityscapes': {'segmentation': cityscapes.TRAIN_NAMES, 'detection': list(cityscapes.INSTANCE_CLASSES.values())},
}


@dataclass(frozen=True)
class ClassMap:
    """A dataset's classes onto the model's, many-to-one; anything unmapped is ignored."""
    segmentation: dict        # dataset class id -> model class id
    detection: dict           # dataset class name -> model detection class id

    @classmethod
    def from_names(cls, table: dict | None, dataset: str, model_segmentation, model_detection) -> ClassMap:
        """table: {'segmentation': {dataset name: model name}, 'detection': {...}} (names); a name
        neither side knows is a ValueError naming it."""
        table = table or {}
        unknown = sorted(set(table) - {'segmentation', 'detection'})
        if unknown:
            raise ValueError(f'class_map: unknown sections {unknown}; use segmentation and detection')
        known = DATASET_CLASSES[dataset]
        seg_names = [c['name'] if isinstance(c, dict) else str(c) for c in model_segmentation]
        det_names = [str(n) for n in model_detection]
        seg, det = {}, {}
        for section, theirs, ours, out in (('segmentation', known['segmentation'], seg_names, seg),
                                           ('detection', known['detection'], det_names, det)):
            for src, dst in (table.get(section) or {}).items():
                if src not in theirs:
                    raise ValueError(f'class_map.{section}: {dataset} has no class {src!r}; it has {theirs}')
                if dst not in ours:
                    raise ValueError(f'class_map.{section}: the model has no class {dst!r}; it has {ours}')
                out[theirs.index(src) if section == 'segmentation' else src] = ours.index(dst)
        return cls(seg, det)

    def segmentation_lut(self) -> np.ndarray:
        lut = np.full(256, IGNORE, np.uint8)
        for src, dst in self.segmentation.items():
            lut[src] = dst
        return lut



def resize_sample(sample: Sample, size) -> Sample:
    """Every label of a native-resolution sample onto the network input (h, w): images by area,
    classes and instance ids nearest, depth point by point, flow nearest with its vectors scaled, boxes scaled."""
    h, w = size
    H, W = sample['image'].shape[:2]
    sx, sy = w / W, h / H
    out = Sample(sample)
    for key in ('image', 'prev_image'):
        out[key] = cv2.resize(sample[key], (w, h), interpolation=cv2.INTER_AREA)
    for key in ('segmentation', 'instances'):
        if sample.get(key) is not None:
            out[key] = cv2.resize(sample[key], (w, h), interpolation=cv2.INTER_NEAREST)
    if sample.get('depth') is not None:
        out['depth'] = resize_sparse_depth(sample['depth'], (h, w))
    if sample.get('flow') is not None:
        flow = cv2.resize(sample['flow'], (w, h), interpolation=cv2.INTER_NEAREST)
        flow[..., 0] *= sx
        flow[..., 1] *= sy
        out['flow'] = flow
    for key in ('boxes', 'ignore_boxes'):
        if sample.get(key) is not None:
            out[key] = (np.asarray(sample[key], np.float32).reshape(-1, 4) * [sx, sy, sx, sy]).astype(np.float32)
    return out


def _rgb(path) -> np.ndarray:
    return cv2.cvtColor(cityscapes.read_png(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _boxes(objects, class_map: ClassMap):
    """[(name, box)] -> (boxes, classes, ignore boxes): mapped classes become targets, the rest
    (DontCare, classes the model lacks) ignore regions."""
    boxes, classes, ignore = [], [], []
    for name, box in objects:
        if name in class_map.detection:
            boxes.append(box)
            classes.append(class_map.detection[name])
        else:
            ignore.append(box)
    return (np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int64),
            np.array(ignore, np.float32).reshape(-1, 4))


def load_kitti(item: dict, class_map: ClassMap) -> Sample:
    """One KITTI frame (raw, tracking or flow 2015 item) at native resolution."""
    image = _rgb(item['image'])
    sample = Sample(image=image, prev_image=_rgb(item['previous']) if item.get('previous') else image)
    if item.get('velodyne') is not None and item['velodyne'].is_file():
        c = item['calib']
        sample['depth'] = kitti.lidar_depth(kitti.read_velodyne(item['velodyne']), c['P2'], c['R_rect'],
                                            c['Tr_velo_cam'], image.shape[:2])
    elif item.get('depth_png') is not None:
        sample['depth'] = kitti.read_depth_png(item['depth_png'])
    if item.get('labels') is not None:
        sample['boxes'], sample['classes'], sample['ignore_boxes'] = _boxes(
            [(obj['type'], obj['box']) for obj in item['labels']], class_map)
    if item.get('flow_png') is not None:
        flow, _ = kitti.read_flow_png(item['flow_png'])
        sample['flow'] = -flow                     # the time-reversed pair (kitti module docstring)
    return sample


def load_cityscapes(item: dict, class_map: ClassMap) -> Sample:
    """One Cityscapes frame at native resolution; `instances`: uint16 ids of the instances of the
    classes mapped for detection (the instance head's targets)."""
    image = _rgb(item['image'])
    sample = Sample(image=image, prev_image=_rgb(item['previous']) if item.get('previous') else image)
    if item.get('label_ids') is not None:
        train_ids = cityscapes.label_ids_to_train_ids(cityscapes.read_png(item['label_ids']))
        sample['segmentation'] = class_map.segmentation_lut()[train_ids]
    if item.get('instance_ids') is not None:
        raw = cityscapes.read_png(item['instance_ids'])
        sample['boxes'], sample['classes'], sample['ignore_boxes'] = _boxes(cityscapes.instance_boxes(raw), class_map)
        sample['instances'] = cityscapes.instance_id_image(raw, set(class_map.detection))
    if item.get('disparity') is not None and item.get('camera') is not None:
        baseline, fx = cityscapes.read_camera(item['camera'])
        sample['depth'] = cityscapes.disparity_to_depth(cityscapes.read_png(item['disparity']), baseline, fx)
    return sample


class RealDataset(Dataset):
    """A list of dataset items, each loaded at native resolution, resized to input_size and
    made into training tensors. `has_flow` is false for a frame without a previous one."""

    LOADERS = {'kitti': load_kitti, 'cityscapes': load_cityscapes}

    def __init__(self, items: list[dict], dataset: str, input_size, class_map: ClassMap,
                 num_detection_classes: int, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 augment: bool = False, seed: int = 0, augmentation: Augmentation | None = None):
        self.items, self.dataset, self.size = items, dataset, tuple(int(v) for v in input_size)
        self.class_map, self.num_det = class_map, num_detection_classes
        self.mean, self.std, self.augment = mean, std, augment
        # zoom only: real frames keep their own colours and look
        self.augmentation = augmentation or Augmentation()
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(self.items)

    def load(self, i) -> Sample:
        """Item i resized to the network input, as numpy arrays."""
        return resize_sample(self.LOADERS[self.dataset](self.items[i], self.class_map), self.size)

    def __getitem__(self, i):
        sample = self.load(i)
        item = self.items[i]
        if item.get('previous') is None and item.get('previous_image') is None:
            sample['flow'], sample['flow_valid'] = None, False
        sample = zoom_sample(sample, self.augmentation.zoom(self.rng, self.augment))
        flip = bool(self.augment and self.rng.random() < 0.5)
        return to_tensors(sample, self.num_det, self.mean, self.std, flip)


class MixtureDataset(Dataset):
    """Several datasets in one run, each drawn with its weight (sample_index), whatever its size."""

    def __init__(self, parts: list[tuple[Dataset, float]]):
        if not parts or any(w <= 0 for _, w in parts):
            raise ValueError('a mixture needs datasets with weights > 0')
        self.parts = [p for p, _ in parts]
        weights = np.array([w for _, w in parts], np.float64)
        self.weights = weights / weights.sum()
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self):
        return int(self.offsets[-1])

    def __getitem__(self, i):
        part = int(np.searchsorted(self.offsets, i, side='right') - 1)
        return self.parts[part][int(i - self.offsets[part])]

    def labelled_indices(self, task: str):
        """The global indices of the samples that carry task's labels (every part must say)."""
        return np.concatenate([np.asarray(p.labelled_indices(task), np.int64) + int(off)
                               for p, off in zip(self.parts, self.offsets)])

    def sample_index(self, rng) -> int:
        """A dataset by weight, then one of its samples uniformly: the global index."""
        part = int(rng.choice(len(self.parts), p=self.weights))
        return int(self.offsets[part] + rng.integers(0, len(self.parts[part])))


def bag_frames(path, camera: str = '/camera', ground_truth: str = '/ground_truth',
               odometry: str = '/odom') -> tuple[list[dict], dict]:
    """A bag recorded with this package's tools (make-bag, record): one item per camera image
    with whatever ground truth shares its stamp (segmentation, depth, flow, detections under the
    ground-truth prefix; any subset), and the class names of the bag's LabelInfo topics. Decoded
    into memory: split very long bags (or record fewer topics) for training.
    With odometry (nav_msgs/Odometry) and the camera mount on /tf_static, each item also gets
    'camera_pose': the camera's optical frame -> the odometry frame (4x4) at the image's stamp."""
    from hydranet_ros.bag import convert
    from hydranet_ros.bag.storage import deserialize, open_reader, read_messages
    from hydranet_ros.image_codec import image_to_numpy, image_to_rgb
    topics = {f'{camera}/image_raw': 'image', f'{ground_truth}/segmentation': 'segmentation',
              f'{ground_truth}/depth': 'depth', f'{ground_truth}/flow': 'flow',
              f'{ground_truth}/detections': 'detection',
              f'{ground_truth}/segmentation/label_info': 'segmentation_names',
              f'{ground_truth}/detections/label_info': 'detection_names', odometry: 'odometry',
              '/tf_static': 'tf_static'}
    by_stamp: dict[int, dict] = {}
    odoms, mounts, camera_frame = [], {}, None
    names = {'segmentation': [], 'detection': []}
    reader = open_reader(path)
    try:
        for conn, _, raw in read_messages(reader, set(topics)):
            key = topics[conn.topic]
            msg = deserialize(raw, conn.msgtype)
            if key == 'odometry':
                odoms.append((convert.stamp_ns(msg.header.stamp), msg.child_frame_id, convert.pose_of(msg)))
                continue
            if key == 'tf_static':
                for t in msg.transforms:
                    mounts[t.child_frame_id] = (t.header.frame_id, convert.pose_of(t))
                continue
            if key.endswith('_names'):
                table = {int(c.class_id): c.class_name for c in msg.class_map}
                names[key[:-len('_names')]] = [table.get(i, f'class_{i}') for i in range(max(table, default=-1) + 1)]
                continue
            entry = by_stamp.setdefault(convert.stamp_ns(msg.header.stamp), {})
            if key == 'image':
                entry['image'] = image_to_rgb(msg).copy()
                camera_frame = msg.header.frame_id
            elif key == 'flow':
                entry['flow'] = image_to_numpy(msg.flow).astype(np.float32)
            elif key == 'detection':
                boxes, scores, classes = convert.detection_boxes(msg)
                entry['detection'] = (boxes[scores > 0], classes[scores > 0], boxes[scores <= 0])
            else:
                entry[key] = image_to_numpy(msg).copy()
    finally:
        reader.close()
    items, previous = [], None
    mount = _mount(mounts, camera_frame, odoms[0][1]) if odoms and camera_frame is not None else None
    trajectory = Trajectory(odoms) if mount is not None else None
    for stamp in sorted(by_stamp):
        entry = by_stamp[stamp]
        if 'image' not in entry:
            continue
        items.append({**entry, 'previous_image': previous, 'sequence': str(path), 'stamp': stamp})
        if mount is not None:
            body = trajectory.at(stamp)
            if body is not None:
                items[-1]['camera_pose'] = body @ mount
        previous = entry['image']
    if not items:
        raise FileNotFoundError(f'{path}: no {camera}/image_raw images')
    return items, names


def _mount(mounts: dict, camera_frame: str, body_frame: str, max_hops: int = 16):
    """camera frame -> body frame (4x4) through the static transforms, or None when they do not link."""
    t, frame = np.eye(4), camera_frame
    for _ in range(max_hops):
        if frame == body_frame:
            return t
        if frame not in mounts:
            return None
        parent, child_to_parent = mounts[frame]
        t, frame = child_to_parent @ t, parent
    return None


class Trajectory:
    """Odometry poses (4x4) by stamp; at(stamp) interpolates between the two messages around it
    (position linearly, orientation by normalised quaternion interpolation)."""

    def __init__(self, odoms: list, max_interval_ns: int = 200_000_000, max_extrapolation_ns: int = 10_000_000):
        """odoms: (stamp_ns, frame, 4x4) in any order. An image between two messages more than
        max_interval_ns apart, or beyond the first or last by more than max_extrapolation_ns,
        gets no pose."""
        self.odoms = sorted(odoms, key=lambda o: o[0])
        self.stamps = np.array([o[0] for o in self.odoms], np.int64)
        self.max_interval_ns, self.max_extrapolation_ns = max_interval_ns, max_extrapolation_ns

    def at(self, stamp: int):
        """The pose at stamp (4x4), or None."""
        from hydranet_ros.bag.convert import matrix_from_pose, quaternion_from_matrix
        stamps, odoms = self.stamps, self.odoms
        i = int(np.searchsorted(stamps, stamp))
        if i < len(odoms) and stamps[i] == stamp:
            return odoms[i][2]
        if i == 0 or i == len(odoms):
            j = 0 if i == 0 else len(odoms) - 1
            return odoms[j][2] if abs(int(stamps[j]) - stamp) <= self.max_extrapolation_ns else None
        a, b = odoms[i - 1], odoms[i]
        if b[0] - a[0] > self.max_interval_ns:
            return None
        f = (stamp - a[0]) / (b[0] - a[0])
        qa, qb = quaternion_from_matrix(a[2][:3, :3]), quaternion_from_matrix(b[2][:3, :3])
        if qa @ qb < 0:
            qb = -qb
        return matrix_from_pose((1 - f) * a[2][:3, 3] + f * b[2][:3, 3], (1 - f) * qa + f * qb)


def load_bag(item: dict, class_map: ClassMap) -> Sample:
    """One bag frame (items from bag_frames) at native resolution, classes mapped."""
    image = item['image']
    sample = Sample(image=image, prev_image=item['previous_image'] if item['previous_image'] is not None else image)
    if item.get('segmentation') is not None:
        sample['segmentation'] = class_map.segmentation_lut()[item['segmentation']]
    if item.get('depth') is not None:
        depth = item['depth'].astype(np.float32)
        sample['depth'] = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype(np.float32)
    if item.get('flow') is not None and item['previous_image'] is not None:
        sample['flow'] = item['flow']
    if item.get('detection') is not None:
        boxes, classes, ignore = item['detection']
        keep = [i for i, c in enumerate(classes) if int(c) in class_map.detection]
        sample['boxes'] = boxes[keep].astype(np.float32).reshape(-1, 4)
        sample['classes'] = np.array([class_map.detection[int(classes[i])] for i in keep], np.int64)
        dropped = [i for i in range(len(classes)) if i not in keep]
        sample['ignore_boxes'] = np.concatenate([ignore, boxes[dropped]]).astype(np.float32).reshape(-1, 4)
    return sample


def bag_class_map(names: dict, table: dict | None, model_segmentation, model_detection) -> ClassMap:
    """A bag's classes (from its LabelInfo) onto the model's: by the table {theirs: ours} where
    given, else by equal names; unmatched classes are ignored."""
    table = table or {}
    seg_names = [c['name'] if isinstance(c, dict) else str(c) for c in model_segmentation]
    det_names = [str(n) for n in model_detection]
    seg, det = {}, {}
    for section, theirs, ours, out in (('segmentation', names['segmentation'], seg_names, seg),
                                       ('detection', names['detection'], det_names, det)):
        mapping = table.get(section) or {n: n for n in theirs if n in ours}
        for src, dst in mapping.items():
            if src not in theirs or dst not in ours:
                raise ValueError(f'class_map.{section}: {src!r} -> {dst!r}: the bag has {theirs}, the model {ours}')
            out[theirs.index(src)] = ours.index(dst)
    return ClassMap(seg, det)


RealDataset.LOADERS['bag'] = load_bag
