"""KITTI and Cityscapes read in their published layouts: miniature datasets written here (PNGs,
velodyne .bin points, calibration and label text, 16-bit PNGs, JSON) and every label checked
against hand-computed values; class maps; mixtures; sparse depth; a short fine-tune."""
import json

import cv2
import numpy as np
import pytest
import torch

from hydranet_ros.training import cityscapes, kitti
from hydranet_ros.training.losses import depth_loss, focal_heatmap_loss
from hydranet_ros.training.real_data import ClassMap, MixtureDataset, RealDataset, load_cityscapes, load_kitti
from hydranet_ros.world.classes import DETECTION_CLASSES, SEGMENTATION_CLASSES

H, W = 48, 64
F_PX, CX, CY = 100.0, 32.0, 24.0
P2 = [F_PX, 0, CX, 0, 0, F_PX, CY, 0, 0, 0, 1, 0]
# velodyne (x forward, y left, z up) -> camera (x right, y down, z forward)
VELO_TO_CAM = [0, -1, 0, 0, 0, 0, -1, 0, 1, 0, 0, 0]
MODEL_SEG = [{'name': n, 'color': list(c)} for n, c in SEGMENTATION_CLASSES]
KITTI_MAP = ClassMap.from_names({'detection': {'Car': 'car', 'Van': 'car', 'Pedestrian': 'pedestrian'}},
                                'kitti', MODEL_SEG, DETECTION_CLASSES)


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


def _image(seed):
    return np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)


def _points(path, points):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.asarray(points, np.float32).tofile(path)


# Camera point (1, -0.5, 10) lands on pixel u = 100 * 1 / 10 + 32 = 42, v = 100 * -0.5 / 10 + 24 = 19;
# (2, -1, 20) on the same pixel, farther; (0, 0, -5) is behind the camera.
POINTS = [[10, -1, 0.5, 0.3], [20, -2, 1.0, 0.3], [-5, 0, 0, 0.1]]


def write_kitti_raw(root):
    date = root / '2011_09_26'
    date.mkdir(parents=True)
    (date / 'calib_cam_to_cam.txt').write_text(
        'calib_time: 09-Jan-2012 13:57:47\n'
        f'P_rect_02: {" ".join(map(str, P2))}\nR_rect_00: 1 0 0 0 1 0 0 0 1\n')
    r, t = np.array(VELO_TO_CAM).reshape(3, 4)[:, :3], [0, 0, 0]
    (date / 'calib_velo_to_cam.txt').write_text(f'R: {" ".join(map(str, r.ravel()))}\nT: {" ".join(map(str, t))}\n')
    drive = date / '2011_09_26_drive_0001_sync'
    for k in range(2):
        _png(drive / 'image_02' / 'data' / f'{k:010d}.png', _image(k))
        _points(drive / 'velodyne_points' / 'data' / f'{k:010d}.bin', POINTS)
    return root


def test_lidar_point_at_known_camera_coordinates_lands_on_its_pixel_with_its_depth(tmp_path):
    items = kitti.raw_frames(write_kitti_raw(tmp_path / 'raw'))
    assert len(items) == 2 and items[0]['previous'] is None and items[1]['previous'] == items[0]['image']
    sample = load_kitti(items[1], KITTI_MAP)
    depth = sample['depth']
    assert depth.shape == (H, W) and np.isfinite(depth).sum() == 1
    assert depth[19, 42] == pytest.approx(10.0)               # the nearer of the two points wins
    assert sample.get('segmentation') is None and sample.get('boxes') is None
    ds = RealDataset(items, 'kitti', (H, W), KITTI_MAP, 2)
    t = ds[1]
    assert t['has_depth'] and not t['has_segmentation'] and not t['has_detection'] and not t['has_flow']
    assert float(t['depth'][19, 42]) == pytest.approx(10.0) and torch.isfinite(t['depth']).sum() == 1


def test_sparse_depth_survives_resizing_point_by_point(tmp_path):
    items = kitti.raw_frames(write_kitti_raw(tmp_path / 'raw'))
    small = RealDataset(items, 'kitti', (24, 32), KITTI_MAP, 2).load(0)['depth']
    # pixel (19, 42) at half size: cell (int(19.5 / 2), int(42.5 / 2)) = (9, 21)
    assert np.isfinite(small).sum() == 1 and small[9, 21] == pytest.approx(10.0)


def write_kitti_tracking(root):
    seq = '0001'
    for k in range(2):
        _png(root / 'image_02' / seq / f'{k:06d}.png', _image(10 + k))
        _points(root / 'velodyne' / seq / f'{k:06d}.bin', POINTS)
    (root / 'label_02').mkdir(parents=True)
    (root / 'label_02' / f'{seq}.txt').write_text(
        '0 1 Car 0 0 -1.5 10 8 30 28 1.5 1.6 3.9 1 1.5 10 0\n'
        '0 -1 DontCare -1 -1 -10 40 4 60 20 -1 -1 -1 -1000 -1000 -1000 -10\n'
        '1 1 Car 0 0 -1.5 12 8 32 28 1.5 1.6 3.9 1 1.5 10 0\n'
        '1 2 Van 0 1 -1.5 2 30 14 44 2.0 1.8 4.5 -3 1.5 12 0\n'
        '1 3 Tram 0 0 -1.5 40 10 62 30 3.4 2.5 15 5 1.5 20 0\n')
    (root / 'calib').mkdir()
    (root / 'calib' / f'{seq}.txt').write_text(
        f'P2: {" ".join(map(str, P2))}\nR_rect 1 0 0 0 1 0 0 0 1\nTr_velo_cam {" ".join(map(str, VELO_TO_CAM))}\n')
    return root


def test_tracking_labels_boxes_classes_and_ignore_regions(tmp_path):
    items = kitti.tracking_frames(write_kitti_tracking(tmp_path / 'tracking'))
    first, second = (load_kitti(i, KITTI_MAP) for i in items)
    car = DETECTION_CLASSES.index('car')
    np.testing.assert_array_equal(first['boxes'], [[10, 8, 30, 28]])
    assert list(first['classes']) == [car]
    np.testing.assert_array_equal(first['ignore_boxes'], [[40, 4, 60, 20]])       # DontCare
    np.testing.assert_array_equal(second['boxes'], [[12, 8, 32, 28], [2, 30, 14, 44]])
    assert list(second['classes']) == [car, car]                                    # Van -> car
    np.testing.assert_array_equal(second['ignore_boxes'], [[40, 10, 62, 30]])       # Tram: unmapped
    assert first['depth'][19, 42] == pytest.approx(10.0)
    t = RealDataset(items, 'kitti', (H, W), KITTI_MAP, 2)[0]
    ignore = t['det_ignore'].numpy()
    # the DontCare box spans cells whose centres ((c + 0.5) * 4) lie in x 40..60, y 4..20
    assert ignore[1:5, 10:15].all() and ignore.sum() == 4 * 5
    assert t['det_mask'].sum() == 1 and t['det_heat'][car].max() == 1.0


def test_ignore_regions_take_no_heatmap_penalty():
    target = torch.zeros(1, 1, 8, 8)
    pred = torch.full((1, 1, 8, 8), 0.01)
    pred[..., 2:4, 2:4] = 0.9            # confident "detections" inside an ignore region
    ignore = torch.zeros(1, 8, 8)
    ignore[:, 2:4, 2:4] = 1
    base = focal_heatmap_loss(torch.full((1, 1, 8, 8), 0.01), target)
    assert focal_heatmap_loss(pred, target) > 10 * base
    assert focal_heatmap_loss(pred, target, ignore=ignore) == pytest.approx(float(base) * 60 / 64, rel=1e-5)


def test_flow_png_decodes_to_vectors_and_validity_and_pairs_time_reversed(tmp_path):
    root = tmp_path / 'flow'
    _png(root / 'image_2' / '000000_10.png', _image(20))
    _png(root / 'image_2' / '000000_11.png', _image(21))
    raw = np.zeros((H, W, 3), np.uint16)                       # B, G, R = valid, v, u as written
    raw[..., 2] = int(2.5 * 64 + 2 ** 15)
    raw[..., 1] = int(-1.25 * 64 + 2 ** 15)
    raw[:, : W // 2, 0] = 1
    _png(root / 'flow_occ' / '000000_10.png', raw)
    flow, valid = kitti.read_flow_png(root / 'flow_occ' / '000000_10.png')
    assert valid[:, : W // 2].all() and not valid[:, W // 2:].any()
    np.testing.assert_allclose(flow[valid], np.tile([2.5, -1.25], (valid.sum(), 1)))
    assert np.isnan(flow[~valid]).all()
    item, = kitti.flow_frames(root)
    assert item['image'].name == '000000_10.png' and item['previous'].name == '000000_11.png'
    sample = load_kitti(item, KITTI_MAP)
    np.testing.assert_allclose(sample['flow'][0, 0], [-2.5, 1.25])
    np.testing.assert_array_equal(sample['prev_image'], cv2.cvtColor(_image(21), cv2.COLOR_BGR2RGB))


def test_depth_completion_png(tmp_path):
    raw = np.zeros((H, W), np.uint16)
    raw[5, 6] = int(12.5 * 256)
    _png(tmp_path / 'd.png', raw)
    depth = kitti.read_depth_png(tmp_path / 'd.png')
    assert depth[5, 6] == 12.5 and np.isnan(depth).sum() == H * W - 1


def write_cityscapes(root):
    city, stem = 'aachen', 'aachen_000000_000019'
    _png(root / 'leftImg8bit' / 'train' / city / f'{stem}_leftImg8bit.png', _image(30))
    _png(root / 'leftImg8bit_sequence' / 'train' / city / 'aachen_000000_000018_leftImg8bit.png', _image(31))
    labels = np.zeros((H, W), np.uint8)
    labels[30:, :] = 7          # road
    labels[10:20, 5:25] = 26    # car
    labels[5:40, 50:56] = 24    # person
    _png(root / 'gtFine' / 'train' / city / f'{stem}_gtFine_labelIds.png', labels)
    inst = labels.astype(np.uint16)
    inst[10:20, 5:15] = 26001
    inst[10:20, 15:25] = 26002
    inst[5:40, 50:56] = 24001
    _png(root / 'gtFine' / 'train' / city / f'{stem}_gtFine_instanceIds.png', inst)
    disparity = np.zeros((H, W), np.uint16)
    disparity[30:, :] = 20 * 256 + 1          # d = 20 px
    _png(root / 'disparity' / 'train' / city / f'{stem}_disparity.png', disparity)
    (root / 'camera' / 'train' / city).mkdir(parents=True)
    (root / 'camera' / 'train' / city / f'{stem}_camera.json').write_text(json.dumps(
        {'extrinsic': {'baseline': 0.2, 'pitch': 0.0}, 'intrinsic': {'fx': 2000.0, 'fy': 2000.0, 'u0': 32, 'v0': 24}}))
    return root


def test_cityscapes_labels_instances_disparity_and_sequence(tmp_path):
    root = write_cityscapes(tmp_path / 'cs')
    cmap = ClassMap.from_names({'segmentation': {'road': 'road', 'car': 'car', 'person': 'pedestrian'},
                                'detection': {'car': 'car'}}, 'cityscapes', MODEL_SEG, DETECTION_CLASSES)
    item, = cityscapes.frames(root)
    assert item['previous'].name == 'aachen_000000_000018_leftImg8bit.png'
    s = load_cityscapes(item, cmap)
    seg_id = {c['name']: i for i, c in enumerate(MODEL_SEG)}
    assert s['segmentation'][35, 0] == seg_id['road'] and s['segmentation'][12, 8] == seg_id['car']
    assert s['segmentation'][20, 52] == seg_id['pedestrian'] and s['segmentation'][0, 0] == 255
    np.testing.assert_array_equal(s['boxes'], [[5, 10, 15, 20], [15, 10, 25, 20]])
    assert list(s['classes']) == [DETECTION_CLASSES.index('car')] * 2
    np.testing.assert_array_equal(s['ignore_boxes'], [[50, 5, 56, 40]])   # person: not mapped for detection
    assert s['depth'][35, 10] == pytest.approx(0.2 * 2000 / 20) and np.isnan(s['depth'][0, 0])
    # the instance head's targets: the two cars (mapped for detection) apart, the unmapped person not
    ids = s['instances']
    assert ids.dtype == np.uint16 and set(np.unique(ids)) == {0, 1, 2}
    assert ids[12, 8] != ids[12, 20] and ids[12, 8] > 0 and ids[20, 52] == 0 and ids[35, 0] == 0
    assert cityscapes.instance_id_image(cityscapes.read_png(item['instance_ids']), {'car', 'person'}).max() == 3


def test_class_map_names_are_checked():
    with pytest.raises(ValueError, match="cityscapes has no class 'cars'"):
        ClassMap.from_names({'segmentation': {'cars': 'car'}}, 'cityscapes', MODEL_SEG, DETECTION_CLASSES)
    with pytest.raises(ValueError, match="the model has no class 'truck'"):
        ClassMap.from_names({'detection': {'Truck': 'truck'}}, 'kitti', MODEL_SEG, DETECTION_CLASSES)


def test_mixture_draws_each_dataset_by_its_weight(tmp_path):
    a = RealDataset(kitti.raw_frames(write_kitti_raw(tmp_path / 'raw')), 'kitti', (H, W), KITTI_MAP, 2)
    b = RealDataset(kitti.tracking_frames(write_kitti_tracking(tmp_path / 'trk')), 'kitti', (H, W), KITTI_MAP, 2)
    mix = MixtureDataset([(a, 3.0), (b, 1.0)])
    rng = np.random.default_rng(0)
    draws = np.array([mix.sample_index(rng) for _ in range(4000)])
    assert len(mix) == 4 and abs((draws < 2).mean() - 0.75) < 0.03
    assert mix[3]['has_detection'] and not mix[0]['has_detection']


def test_depth_loss_uses_only_the_few_valid_pixels():
    torch.manual_seed(0)
    pred = torch.rand(1, 1, 40, 50) * 10 + 1
    target = torch.full((1, 40, 50), float('nan'))
    idx = torch.randperm(2000)[:60]                         # 3% valid, like projected LiDAR
    target.view(-1)[idx] = torch.rand(60) * 10 + 1
    loss = depth_loss(pred, target, torch.tensor([True]), 0.5, 80.0)
    d = torch.log(pred.view(-1)[idx]) - torch.log(target.view(-1)[idx])
    assert float(loss) == pytest.approx(float(torch.sqrt((d ** 2).mean() - 0.85 * d.mean() ** 2) * 10), rel=1e-5)


@pytest.mark.parametrize('kind,writer,expect', [
    ('kitti', write_kitti_raw, {'type': 'kitti_raw', 'samples': 2, 'labels_per_task': {'depth': 2, 'pairs': 1}}),
    ('kitti', write_kitti_tracking, {'type': 'kitti_tracking', 'samples': 2,
                                     'boxes_per_class': {'Car': 2, 'Van': 1, 'Tram': 1}, 'ignore_regions': 1}),
    ('cityscapes', write_cityscapes, {'type': 'cityscapes', 'samples': 1, 'boxes_per_class': {'car': 2, 'person': 1}}),
])
def test_dataset_info_on_each_layout(tmp_path, kind, writer, expect):
    import subprocess

    from hydranet_ros.paths import SOURCE_ROOT
    root = writer(tmp_path / 'data')
    exe = SOURCE_ROOT / 'install' / 'hydranet_ros' / 'lib' / 'hydranet_ros' / 'dataset-info'
    preview = tmp_path / 'preview.png'
    out = subprocess.run([str(exe), '--type', kind, '--root', str(root), '--preview', str(preview)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    for key, value in expect.items():
        if isinstance(value, dict):
            assert all(summary[key].get(k) == v for k, v in value.items()), summary[key]
        else:
            assert summary[key] == value
    if 'depth' in summary['labels_per_task']:
        assert 0 < summary['valid_depth_pixels_per_frame']['mean'] < 0.5
    image = cv2.imread(str(preview))
    assert image.shape[1] == 4 * image.shape[0] * W // H     # image | depth | boxes | segmentation
    bad = subprocess.run([str(exe), '--type', 'kitti', '--root', str(tmp_path / 'nothing')],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and 'not a KITTI' in bad.stderr and 'Traceback' not in bad.stderr


def test_shipped_real_data_configs_load():
    from hydranet_ros.paths import SOURCE_ROOT
    from hydranet_ros.training.trainer import TrainConfig
    for name in ('train_kitti.yaml', 'train_cityscapes_kitti.yaml'):
        cfg = TrainConfig.load(SOURCE_ROOT / 'config' / name)
        _, data = cfg.resolved()
        assert data.type == 'mixture' and len(data.sources) >= 2 and cfg.model['encoder_weights']


def test_a_short_fine_tune_of_the_bundled_model_on_miniature_kitti(tmp_path):
    """A few CPU steps from the bundled model on a KITTI tracking set (boxes, LiDAR depth) mixed
    with flow 2015: every loss finite, and the total falls."""
    from hydranet_ros.model.registry import weights
    from hydranet_ros.training.trainer import TrainConfig, train
    tracking = write_kitti_tracking(tmp_path / 'tracking')
    flow_root = tmp_path / 'flow'
    _png(flow_root / 'image_2' / '000000_10.png', _image(40))
    _png(flow_root / 'image_2' / '000000_11.png', _image(41))
    raw = np.zeros((H, W, 3), np.uint16)
    raw[..., 2], raw[..., 1], raw[..., 0] = int(3 * 64 + 2 ** 15), 2 ** 15, 1
    _png(flow_root / 'flow_occ' / '000000_10.png', raw)
    architecture = {k: v for k, v in weights().load().metadata.architecture.items()
                    if k not in ('num_classes', 'num_detection_classes')}     # the bundled network's
    config = TrainConfig(
        name='kitti_mini', model=architecture,
        data={'type': 'mixture', 'input_size': [128, 416], 'sources': [
            {'type': 'kitti_tracking', 'root': str(tracking), 'weight': 1.0,
             'class_map': {'detection': {'Car': 'car', 'Van': 'car', 'Pedestrian': 'pedestrian'}}},
            {'type': 'kitti_flow', 'root': str(flow_root), 'weight': 0.5}]},
        train={'steps': 12, 'batch_size': 2, 'lr': 0.0005, 'tasks': ['depth', 'flow', 'detection'],
               'init_from': str(weights().path()), 'augment': False, 'threads': 2, 'eval_every': 12,
               'output': str(tmp_path / 'kitti_mini.pt')})
    result = train(config, progress=False, log=lambda m: None)
    losses = result['losses']
    assert set(losses) == {'depth', 'flow', 'detection'}
    total = np.sum([losses[t] for t in ('depth', 'detection')], axis=0)
    assert np.isfinite(total).all() and np.isfinite(losses['flow']).all()
    assert total[-4:].mean() < total[:4].mean(), total


def test_a_bag_recorded_by_the_package_trains_with_whatever_ground_truth_it_has(tmp_path):
    from hydranet_ros.bag.make_bag import write_drive
    from hydranet_ros.training.real_data import bag_class_map, bag_frames
    bag = tmp_path / 'drive'
    write_drive(bag, 7, 3, (64, 96))
    items, names = bag_frames(bag)
    assert len(items) == 3 and names['segmentation'][:2] == ['road', 'lane_marking']
    assert names['detection'] == DETECTION_CLASSES
    cmap = bag_class_map(names, None, MODEL_SEG, DETECTION_CLASSES)
    ds = RealDataset(items, 'bag', (64, 96), cmap, 2)
    first, second = ds[0], ds[1]
    assert first['has_segmentation'] and first['has_depth'] and first['has_detection'] and not first['has_flow']
    assert second['has_flow']
    raw = items[1]
    np.testing.assert_array_equal(second['segmentation'].numpy(), raw['segmentation'])     # identity by name
    # the same bag read with a prefix it does not have: images only, every task missing
    bare, _ = bag_frames(bag, ground_truth='/nothing')
    t = RealDataset(bare, 'bag', (64, 96), cmap, 2)[1]
    assert not any(bool(t[f'has_{k}']) for k in ('segmentation', 'depth', 'flow', 'detection'))
    from hydranet_ros.model import HydraNetConfig
    from hydranet_ros.training.trainer import TrainConfig, make_datasets
    _, data = TrainConfig(data={'type': 'bag', 'root': str(tmp_path), 'input_size': [64, 96]}).resolved()
    train_set, _ = make_datasets(data, HydraNetConfig())
    assert len(train_set) == 3 and train_set[2]['has_flow']


def test_raw_drive_with_depth_completion_ground_truth(tmp_path):
    root = write_kitti_raw(tmp_path / 'raw')
    completion = tmp_path / 'completion'
    raw = np.zeros((H, W), np.uint16)
    raw[7, 9] = int(33.25 * 256)
    _png(completion / '2011_09_26_drive_0001_sync' / 'proj_depth' / 'groundtruth' / 'image_02' / '0000000001.png', raw)
    items = kitti.raw_frames(root, depth_source='completion', completion_root=completion)
    assert items[0]['depth_png'] is None            # the benchmark has no ground truth for some frames
    sample = load_kitti(items[1], KITTI_MAP)
    assert sample['depth'][7, 9] == 33.25 and np.isfinite(sample['depth']).sum() == 1


def test_bags_with_different_classes_are_refused_in_one_source(tmp_path, monkeypatch):
    from hydranet_ros.bag.make_bag import write_drive
    from hydranet_ros.model import HydraNetConfig
    from hydranet_ros.training import sources
    from hydranet_ros.training.trainer import TrainConfig, make_datasets
    write_drive(tmp_path / 'a', 7, 2, (64, 96))
    write_drive(tmp_path / 'b', 8, 2, (64, 96))
    _, data = TrainConfig(data={'type': 'bag', 'root': str(tmp_path), 'input_size': [64, 96]}).resolved()
    assert len(make_datasets(data, HydraNetConfig())[0]) == 4        # the same classes: one source
    real = sources.bag_frames

    def renamed(path):               # bag b as if recorded with other detection classes
        items, names = real(path)
        if path.name == 'b':
            names = {**names, 'detection': ['truck', 'cyclist']}
        return items, names
    monkeypatch.setattr(sources, 'bag_frames', renamed)
    with pytest.raises(ValueError, match="LabelInfo classes .* differ from the other bags"):
        make_datasets(data, HydraNetConfig())
