"""The adaptation loop's tools: a HydraNet exported as pseudo-label teachers labels exactly as the
node's Predictor would, depth rescaled to each bag's lens; folders letterboxed and focal-normalised
as the synthetic world is; a mixture with a synthetic source; styled bags (ROS-free)."""
import json

import cv2
import numpy as np
import pytest
import torch

from hydranet_ros.model.checkpoint import CheckpointMetadata, save_checkpoint
from hydranet_ros.model.config import HydraNetConfig
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.training.pseudo_label import Options, TeacherSpec, label_input
from hydranet_ros.training.teachers import export_teachers, main as teachers_main

SEG = ['road', 'car', 'person', 'sky']
DET = ['car', 'person']
FOCAL = 120.0     # the focal length (network-input pixels) the test model's depth is metric for


@pytest.fixture(scope='module')
def model_with_a_lens(tmp_path_factory):
    torch.manual_seed(3)
    cfg = HydraNetConfig(width_mult=0.25, decoder_channels=16, crp_stages=1, num_classes=4, num_detection_classes=2)
    meta = CheckpointMetadata(architecture=cfg.to_dict(), input_size=[64, 128], name='lens',
                              segmentation_classes=SEG, detection_classes=DET, camera_focal_px=FOCAL)
    path = tmp_path_factory.mktemp('m') / 'lens.pt'
    save_checkpoint(path, HydraNet(cfg), meta)
    return path


def _drive(root, k, n=2, size=(60, 150)):
    rng = np.random.default_rng(0)
    (root / 'images').mkdir(parents=True)
    images = []
    for i in range(n):
        img = cv2.GaussianBlur(rng.integers(0, 255, (*size, 3), dtype=np.uint8), (5, 5), 0)
        cv2.imwrite(str(root / 'images' / f'{i:06d}.png'), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        images.append(img)
    (root / 'camera.json').write_text(json.dumps({'k': k}))
    return images


def test_a_hydranet_as_teachers_labels_as_the_predictor_does(model_with_a_lens, tmp_path):
    from hydranet_ros.inference.predictor import Predictor
    paths = export_teachers(model_with_a_lens, tmp_path / 't')
    specs = tuple(TeacherSpec.load(p) for p in paths)
    assert [s.task for s in specs] == ['segmentation', 'depth', 'detection']
    assert specs[1].focal_px == pytest.approx(FOCAL) and specs[0].classes == tuple(SEG)
    fx = 200.0                                # this robot's lens, in its own 150x60 image pixels
    images = _drive(tmp_path / 'in' / 'robot', [fx, 0, 75, 0, fx, 30, 0, 0, 1])
    opts = Options(out=str(tmp_path / 'out'), segmentation_classes=tuple(SEG), detection_classes=tuple(DET))
    label_input(tmp_path / 'in' / 'robot', specs, opts)
    out = tmp_path / 'out' / 'robot'
    pred = Predictor(model_with_a_lens, device='cpu', backend='torch', fuse=False, score_threshold=0.3)
    res = pred.predict(images[0], tasks=['segmentation', 'depth', 'detection'], focal_px=fx)[0]
    seg = cv2.imread(str(out / 'segmentation' / '000000.png'), cv2.IMREAD_UNCHANGED)
    assert (seg == res.segmentation).mean() > 0.97
    depth = np.load(out / 'depth' / '000000.npy')
    # the node's depth for this lens: the network's x (fx at the input / training focal)
    assert res.depth_scale == pytest.approx(fx * 128 / 150 / FOCAL, rel=1e-3) and res.depth_scale != 1.0
    ratio = depth / res.depth
    assert np.nanmedian(ratio) == pytest.approx(1.0, abs=0.01)
    boxes = json.loads((out / 'boxes' / '000000.json').read_text())
    assert len(boxes) == sum(d.score >= 0.3 for d in res.detections)


def test_a_depth_teacher_with_a_focal_length_needs_the_bags_intrinsics(model_with_a_lens, tmp_path):
    export_teachers(model_with_a_lens, tmp_path / 't', tasks=['depth'])
    spec = TeacherSpec.load(tmp_path / 't' / 'depth.onnx')
    _drive(tmp_path / 'in' / 'robot', None, n=1)
    with pytest.raises(ValueError, match='no camera_info'):
        label_input(tmp_path / 'in' / 'robot', (spec,),
                    Options(out=str(tmp_path / 'o'), segmentation_classes=tuple(SEG), detection_classes=tuple(DET)))


def test_teachers_cli_refuses_a_missing_head_and_a_bad_size(tiny_checkpoint, tmp_path, capsys):
    assert teachers_main([str(tiny_checkpoint), str(tmp_path / 'a'), '--size', '100x7']) == 2
    assert '--size' in capsys.readouterr().err
    assert teachers_main([str(tiny_checkpoint), str(tmp_path / 'b'), '--tasks', 'flow']) == 2
    assert teachers_main([str(tiny_checkpoint), str(tmp_path / 'c'), '--tasks', 'segmentation']) == 0
    assert (tmp_path / 'c' / 'seg.yaml').is_file() and not (tmp_path / 'c' / 'depth.onnx').exists()


def test_folders_letterbox_and_normalise_depth_to_the_training_lens(tmp_path):
    from hydranet_ros.training.datasets import FolderDataset
    root = tmp_path / 'd'
    _drive(root, [100.0, 0, 50, 0, 100.0, 20, 0, 0, 1], n=1, size=(40, 100))
    (root / 'depth').mkdir()
    np.save(root / 'depth' / '000000.npy', np.full((40, 100), 10.0, np.float32))
    (root / 'segmentation').mkdir()
    cv2.imwrite(str(root / 'segmentation' / '000000.png'), np.zeros((40, 100), np.uint8))
    item = FolderDataset(root, (64, 128), letterbox=True, training_focal_px=64.0)[0]
    # 100x40 fits 128x51 (x1.28); the rest is padding as the Predictor pads: zero, no labels
    assert item['image'].shape == (3, 64, 128)
    assert (item['image'][:, 52:] == 0).all() and (item['segmentation'][52:] == 255).all()
    assert (item['segmentation'][:50] == 0).all()
    assert item['intrinsics'][0, 0] == pytest.approx(128.0)
    # the lens at the input is 128 px, the training lens 64: the same scene looks twice as near to it
    assert np.nanmedian(item['depth'][:50].numpy()) == pytest.approx(10.0 * 64 / 128, rel=1e-3)
    plain = FolderDataset(root, (64, 128))[0]
    assert np.nanmedian(plain['depth'].numpy()) == pytest.approx(10.0) and (plain['segmentation'] == 0).all()


def test_a_mixture_with_a_synthetic_source_keeps_the_lens_of_the_model_it_grows_from(model_with_a_lens, tmp_path):
    from hydranet_ros.model.checkpoint import load_checkpoint
    from hydranet_ros.training.trainer import TrainConfig, train
    _drive(tmp_path / 'pl' / 'robot', [100.0, 0, 75, 0, 100.0, 30, 0, 0, 1], n=3)
    model = {'width_mult': 0.25, 'decoder_channels': 16, 'crp_stages': 1}
    common = {'steps': 2, 'batch_size': 2, 'eval_every': 100, 'threads': 1, 'tasks': ['segmentation', 'depth']}
    mixed = TrainConfig(
        name='mix', model=model,
        data={'type': 'mixture', 'input_size': [64, 128], 'letterbox': True,
              'sources': [{'type': 'folder', 'root': str(tmp_path / 'pl')},
                          {'type': 'synthetic', 'seeds': [5], 'frames_per_seed': 2, 'camera': 'vga',
                           'style': 'varied'}]},
        train={**common, 'output': str(tmp_path / 'mix.pt')})
    train(mixed, progress=False, log=lambda *a: None)
    # a synthetic source names the lens: VGA letterboxed into 128x64 -> 85x64, fx 525 * 64 / 480
    assert load_checkpoint(tmp_path / 'mix.pt').metadata.camera_focal_px == pytest.approx(525.0 * 64 / 480, rel=0.02)
    tuned = TrainConfig(
        name='tuned', model=model,
        data={'type': 'folder', 'root': str(tmp_path / 'pl'), 'input_size': [64, 128], 'letterbox': True,
              'segmentation_classes': SEG, 'detection_classes': DET},
        train={**common, 'tasks': ['segmentation'], 'init_from': str(model_with_a_lens),
               'output': str(tmp_path / 'tuned.pt')})
    train(tuned, progress=False, log=lambda *a: None)
    assert load_checkpoint(tmp_path / 'tuned.pt').metadata.camera_focal_px == pytest.approx(FOCAL)


def test_a_synthetic_source_must_name_its_seeds():
    from hydranet_ros.training.trainer import TrainConfig
    cfg = TrainConfig(name='x', model={}, data={'type': 'mixture', 'sources': [{'type': 'synthetic', 'root': '/x'}]},
                      train={})
    with pytest.raises(ValueError, match='synthetic source takes seeds'):
        cfg.resolved()


def test_make_bag_renders_the_style_asked_for(tmp_path):
    from hydranet_ros.bag.make_bag import write_drive
    from hydranet_ros.training.real_data import bag_frames
    from hydranet_ros.world import World
    write_drive(tmp_path / 'b', seed=7, frames=1, size=(60, 200), style='heldout', ground_truth=False)
    frames, _ = bag_frames(tmp_path / 'b')
    world = World(7, 'kitti', size=(60, 200), style='heldout')
    assert np.array_equal(frames[0]['image'], next(iter(world.frames(1))).rgb)
    assert not np.array_equal(frames[0]['image'], next(iter(World(7, 'kitti', size=(60, 200)).frames(1))).rgb)


# --- odometry: camera motion (and metric scale) for the photometric terms -------------------------

def test_bag_odometry_and_mount_give_the_true_camera_motion(tmp_path):
    from hydranet_ros.bag.make_bag import write_drive
    from hydranet_ros.training.datasets import _relative_pose
    from hydranet_ros.training.real_data import bag_frames
    from hydranet_ros.world import World
    write_drive(tmp_path / 'b', seed=11, frames=3, size=(60, 200), style='varied', ground_truth=False)
    frames, _ = bag_frames(tmp_path / 'b')
    world = World(11, 'kitti', size=(60, 200), style='varied')
    stamps = [f.stamp for f in world.frames(3)]
    for i in (1, 2):
        measured = np.linalg.inv(frames[i - 1]['camera_pose']) @ frames[i]['camera_pose']
        np.testing.assert_allclose(measured, _relative_pose(world, stamps[i - 1], stamps[i]), atol=1e-6)
    assert np.linalg.norm(measured[:3, 3]) > 0.3          # the car moved
    write_drive(tmp_path / 'n', seed=11, frames=2, size=(60, 200), odometry=False, ground_truth=False)
    assert all('camera_pose' not in f for f in bag_frames(tmp_path / 'n')[0])
    summary = label_input(tmp_path / 'n', (), Options(out=str(tmp_path / 'o'), segmentation_classes=tuple(SEG),
                                                      detection_classes=tuple(DET)))
    assert summary['odometry_frames'] == 0 and summary['frames'] == 2


def test_odometry_between_messages_is_interpolated():
    from hydranet_ros.bag.convert import matrix_from_pose
    from hydranet_ros.training.real_data import Trajectory
    half_turn_z = np.array([0, 0, np.sin(np.pi / 8), np.cos(np.pi / 8)])      # 45 degrees about z
    odoms = [(100_000_000, 'base_link', matrix_from_pose((2, 0, 0), half_turn_z)), (0, 'base_link', np.eye(4))]
    trajectory = Trajectory(odoms)                                             # any order
    mid = trajectory.at(50_000_000)
    np.testing.assert_allclose(mid[:3, 3], [1, 0, 0])
    assert np.degrees(np.arctan2(mid[1, 0], mid[0, 0])) == pytest.approx(22.5, abs=0.1)
    assert trajectory.at(105_000_000) is not None and trajectory.at(400_000_000) is None   # past the last
    assert Trajectory(odoms, max_interval_ns=50_000_000).at(50_000_000) is None           # a gap in odometry


def test_pseudo_labelled_folders_carry_odometry_and_a_mirror_keeps_it_consistent(tmp_path):
    from hydranet_ros.bag.make_bag import write_drive
    from hydranet_ros.training import self_supervised as ss
    from hydranet_ros.training.datasets import FolderDataset
    from hydranet_ros.world import World
    (tmp_path / 'bags').mkdir()
    write_drive(tmp_path / 'bags' / 'd', seed=11, frames=2, size=(96, 160), camera='vga', style='varied',
                ground_truth=False)
    summary = label_input(tmp_path / 'bags' / 'd', (), Options(out=str(tmp_path / 'pl'),
                                                               segmentation_classes=tuple(SEG),
                                                               detection_classes=tuple(DET)))
    assert summary['tasks']['depth'] == {'real': 0, 'pseudo': 0, 'none': 2, 'mean_confidence': None}
    assert summary['odometry_frames'] == 2
    assert (tmp_path / 'pl' / 'd' / 'poses' / '000001.json').is_file()
    ds = FolderDataset(tmp_path / 'pl', (96, 160))
    plain = ds[1]
    ds.augment, ds.rng = True, np.random.default_rng(1)
    while True:                                   # draw until the augmentation mirrors the sample
        flipped = ds[1]
        if not torch.equal(flipped['image'], plain['image']):
            break
    truth = next(iter(World(11, 'vga', size=(96, 160), style='varied').frames(2, start=1))).depth
    depth = torch.from_numpy(np.where(np.isfinite(truth), truth, 200.0).astype(np.float32))[None, None]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def loss(item, d):
        cur, prev = item['image'][None] * std + mean, item['prev_image'][None] * std + mean
        warped, valid = ss.warp_by_depth(prev, d, item['intrinsics'][None], item['pose'][None])
        return float(ss.masked_mean(ss.photometric_error(warped, cur), valid))
    assert plain['has_pose'] and flipped['has_pose']
    base = loss(plain, depth)
    assert loss(flipped, depth.flip(-1)) == pytest.approx(base, rel=0.05)
    # odometry fixes the metric scale: the true depth explains the frames better than a scaled one
    assert base < 0.8 * loss(plain, depth * 1.5) and base < 0.8 * loss(plain, depth / 1.5)


def test_odometry_replaces_the_pose_head_where_a_sample_has_it():
    from hydranet_ros.training.self_supervised import SelfSupervision
    cfg = HydraNetConfig(width_mult=0.25, decoder_channels=16, crp_stages=1, num_classes=4, num_detection_classes=2)
    model = HydraNet(cfg)
    ssl = SelfSupervision(model.encoder.channels[32], 1.0, 0.0, 0.001, (0.5,) * 3, (0.2,) * 3)
    known = torch.eye(4).repeat(3, 1, 1)
    known[:, 2, 3] = -1.0
    batch = {'image': torch.rand(3, 3, 64, 64), 'prev_image': torch.rand(3, 3, 64, 64), 'pose': known,
             'has_pose': torch.tensor([True, False, True])}
    t = ssl.camera_motion(model, batch, torch.tensor([True, True, True]))
    assert torch.equal(t[0], known[0]) and torch.equal(t[2], known[2]) and not torch.equal(t[1], known[1])
    model.eval()                    # this frame encoded once for both sources, the same motions
    features = {}
    shared = [ssl.camera_motion(model, batch, torch.tensor([True] * 3), s, features) for s in ('prev', 'prev')]
    assert list(features) == ['this'] and torch.allclose(shared[0], shared[1])
    assert torch.allclose(shared[0], ssl.camera_motion(model, batch, torch.tensor([True] * 3)))
    ssl.use_odometry = False
    assert not torch.equal(ssl.camera_motion(model, batch, torch.tensor([True, True, True]))[0], known[0])
