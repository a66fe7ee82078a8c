"""The real-frame check (bench/real_frames.py) and the readers it scores through: CamVid in the
SegNet layout with its class merge, KITTI-layout labels as some exports write them, and the check
end to end on a miniature dev set written here (no real frame is ever in the repository)."""
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hydranet_ros import IGNORE
from hydranet_ros.training import camvid, kitti
from hydranet_ros.world.classes import SEGMENTATION_CLASSES

ROOT = Path(__file__).resolve().parents[1]
MODEL_NAMES = [n for n, _ in SEGMENTATION_CLASSES]


def _bench():
    spec = importlib.util.spec_from_file_location('real_frames', ROOT / 'bench' / 'real_frames.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_camvid(root, labels_by_split):
    """SegNet-layout CamVid: <split>/<name>.png and <split>annot/<name>.png."""
    for split, frames in labels_by_split.items():
        for k, labels in enumerate(frames):
            (root / split).mkdir(parents=True, exist_ok=True)
            (root / f'{split}annot').mkdir(parents=True, exist_ok=True)
            rgb = np.random.default_rng(k).integers(0, 255, (*labels.shape, 3), dtype=np.uint8)
            assert cv2.imwrite(str(root / split / f'f{k:03d}.png'), rgb)
            assert cv2.imwrite(str(root / f'{split}annot' / f'f{k:03d}.png'), labels.astype(np.uint8))
    return root


def test_camvid_frames_and_labels_are_read_per_split(tmp_path):
    labels = np.arange(12, dtype=np.uint8).repeat(4).reshape(6, 8)
    root = write_camvid(tmp_path, {'train': [labels, labels], 'val': [labels]})
    items = camvid.frames(root)
    assert [(i['split'], i['name']) for i in items] == [('train', 'f000'), ('train', 'f001'), ('val', 'f000')]
    rgb, read = camvid.read_frame(items[0])
    assert rgb.shape == (6, 8, 3) and np.array_equal(read, labels)
    with pytest.raises(FileNotFoundError, match='test'):
        camvid.frames(root, splits=('test',))


def test_camvid_bad_labels_are_refused_with_the_file_named(tmp_path):
    root = write_camvid(tmp_path, {'train': [np.full((4, 4), 12, np.uint8)]})
    with pytest.raises(ValueError, match='class id 12'):
        camvid.read_frame(camvid.frames(root, splits=('train',))[0])
    (root / 'trainannot' / 'f000.png').unlink()
    with pytest.raises(FileNotFoundError, match='labels'):
        camvid.frames(root, splits=('train',))


def test_camvid_and_model_classes_meet_on_the_eight_shared_ones():
    theirs, ours = camvid.shared_ids(MODEL_NAMES)
    ids = {n: i for i, n in enumerate(camvid.CAMVID_CLASSES)}
    assert theirs[ids['pavement']] == camvid.SHARED_NAMES.index('sidewalk')
    assert theirs[ids['tree']] == camvid.SHARED_NAMES.index('vegetation')
    for unscored in ('sign', 'fence', 'bicyclist'):
        assert theirs[ids[unscored]] == IGNORE
    assert theirs[camvid.UNLABELLED] == IGNORE
    road = camvid.SHARED_NAMES.index('road')
    assert ours[MODEL_NAMES.index('road')] == road == ours[MODEL_NAMES.index('lane_marking')]
    assert ours[MODEL_NAMES.index('terrain')] == camvid.OTHER            # a miss wherever predicted
    with pytest.raises(ValueError, match="'pole'"):
        camvid.shared_ids([n for n in MODEL_NAMES if n != 'pole'])


def test_kitti_labels_run_together_without_newlines_are_read_record_by_record(tmp_path):
    path = tmp_path / '000000.txt'
    path.write_text('car 0.00 0 0.00 118.25 389.20 524.38 536.53 0 0 0 0 0 0 0.00car 0.00 0 0.00 575.66 399.04 '
                    '662.71 431.12 0 0 0 0 0 0 0.00\nDontCare -1 -1 -10 5 6 7 8 -1 -1 -1 -1000 -1000 -1000 -10\n')
    labels = kitti.read_object_labels(path)
    assert [lab['type'] for lab in labels] == ['car', 'car', 'DontCare']
    assert np.allclose(labels[1]['box'], [575.66, 399.04, 662.71, 431.12]) and labels[2]['occluded'] == -1
    path.write_text('Car 0.00 0 0.00 1 2\n')
    with pytest.raises(ValueError, match='5 fields'):
        kitti.read_object_labels(path)


def _kitti_layout(root, rgb, labels, p2=None, scan=None):
    for sub in ('image_2', 'label_2', 'calib', 'velodyne'):
        (root / sub).mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(root / 'image_2' / '000000.png'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    (root / 'label_2' / '000000.txt').write_text(labels)
    if p2 is not None:
        eye = '1 0 0 0 1 0 0 0 1'
        (root / 'calib' / '000000.txt').write_text(
            f'P2: {" ".join(map(str, p2))}\nR0_rect: {eye}\nTr_velo_to_cam: 0 -1 0 0 0 0 -1 0 1 0 0 0\n')
        np.asarray(scan, np.float32).tofile(root / 'velodyne' / '000000.bin')


@pytest.fixture(scope='module')
def world_checkpoint(tmp_path_factory):
    """A tiny untrained network with the synthetic world's classes (the bundled model's)."""
    import torch
    from hydranet_ros.model.checkpoint import CheckpointMetadata, save_checkpoint
    from hydranet_ros.model.hydranet import HydraNet
    from hydranet_ros.world.classes import DETECTION_CLASSES
    from node_harness import TINY
    torch.manual_seed(0)
    config = type(TINY).from_dict({**TINY.to_dict(), 'num_classes': len(SEGMENTATION_CLASSES)})
    meta = CheckpointMetadata(architecture=config.to_dict(), input_size=[96, 128], name='tiny_world',
                              segmentation_classes=[{'name': n, 'color': list(c)} for n, c in SEGMENTATION_CLASSES],
                              detection_classes=list(DETECTION_CLASSES))
    path = tmp_path_factory.mktemp('models') / 'tiny_world.pt'
    save_checkpoint(path, HydraNet(config), meta)
    return path


def test_the_check_scores_each_set_and_a_perfect_segmentation_scores_one(world_checkpoint, tmp_path):
    """End to end on a miniature dev set: CamVid labels written from the model's own segmentation
    (mapped to CamVid ids) must score IoU 1 on every class present, labels off by one class must not;
    a KITTI-layout frame gives box AP and LiDAR depth where calib and scan are there."""
    from hydranet_ros.inference import Predictor
    bench = _bench()
    predictor = Predictor(world_checkpoint, device='cpu', backend='torch', score_threshold=0.05)
    to_camvid = np.full(256, camvid.UNLABELLED, np.uint8)
    for k, (theirs, ours) in enumerate(camvid.SHARED):
        for name in ours:
            to_camvid[predictor.segmentation_names.index(name)] = camvid.CAMVID_CLASSES.index(theirs)
    frames = [np.random.default_rng(k).integers(0, 255, (96, 128, 3), dtype=np.uint8) for k in range(2)]
    own = [to_camvid[predictor.predict([f], tasks=['segmentation'])[0].segmentation] for f in frames]
    dev = tmp_path / 'dev'
    write_camvid(dev / 'camvid', {'train': own[:1], 'val': own[1:]})
    for split, k in (('train', 0), ('val', 0)):       # the frames the labels were made from
        rgb = frames[0 if split == 'train' else 1]
        cv2.imwrite(str(dev / 'camvid' / split / f'f{k:03d}.png'), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    _kitti_layout(dev / 'kitti', frames[0], 'Car 0 0 0 10 20 60 70 0 0 0 0 0 0 0\n',
                  p2=[100, 0, 64, 0, 0, 100, 48, 0, 0, 0, 1, 0], scan=[[10, 0, 0, 0.3], [12, 1, 0.5, 0.3]])
    out = tmp_path / 'report'
    assert bench.main([str(dev), str(world_checkpoint), '--out', str(out)]) == 0
    results = next(iter(json.loads((out / 'results.json').read_text()).values()))
    present = [v for v in results['camvid']['iou'].values() if v == v]
    assert results['camvid']['frames'] == 2 and present and all(v == 1.0 for v in present)
    assert results['kitti']['gt_boxes']['car'] == 1 and results['kitti']['lidar_pixels'] == 2
    assert 0.0 <= results['kitti']['abs_rel'] and results['boxes_pooled']['gt_boxes']['car'] == 1
    assert sorted(p.name for p in out.glob('*.png')) == sorted(
        f'{predictor.model_id.replace("@", "_")}_{s}.png' for s in ('camvid', 'kitti'))
    # labels that disagree with the prediction everywhere score below one
    for split in ('train', 'val'):
        path = dev / 'camvid' / f'{split}annot' / 'f000.png'
        shifted = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(path), np.where(shifted == camvid.CAMVID_CLASSES.index('sky'), 1, 0).astype(np.uint8))
    metrics, _ = bench.score_camvid(predictor, dev / 'camvid')
    assert metrics['miou8'] < 1.0


def test_the_check_names_what_a_dev_set_folder_lacks(tmp_path):
    bench = _bench()
    with pytest.raises(SystemExit, match='camvid/'):
        bench.dev_sets(tmp_path)
