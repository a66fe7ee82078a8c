"""Training end to end on tiny data: single process, resume, 2-process DDP (gloo), datasets."""
import json
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml

from hydranet_ros.model.checkpoint import load_checkpoint
from hydranet_ros.training.datasets import FolderDataset
from hydranet_ros.training.samples import Sample, to_tensors

TINY = {'name': 'tiny', 'model': {'width_mult': 0.35, 'decoder_channels': 16},
        'data': {'input_size': [64, 192], 'train_seeds': [0, 1], 'frames_per_seed': 3,
                 'val_seeds': [500], 'val_frames_per_seed': 2},
        'train': {'steps': 4, 'batch_size': 2, 'eval_every': 2, 'eval_samples': 2, 'threads': 1}}


def _config(tmp_path, **train):
    cfg = json.loads(json.dumps(TINY))
    cfg['train'].update({'output': str(tmp_path / 'out' / 'tiny.pt'), **train})
    path = tmp_path / 'train.yaml'
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(args, timeout=600):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout)


def test_train_cli_writes_a_loadable_checkpoint_and_resumes(tmp_path):
    cfg = _config(tmp_path)
    out = _run(['-m', 'hydranet_ros.training.train', '--config', str(cfg), '--no-progress'])
    assert out.returncode == 0, out.stderr
    ckpt = load_checkpoint(tmp_path / 'out' / 'tiny.pt')
    assert ckpt.metadata.name == 'tiny' and ckpt.metadata.training['steps'] == 4
    # the training camera's focal length at the network input: KITTI's fx at 192 px wide
    assert ckpt.metadata.camera_focal_px == pytest.approx(721.5377 * 192 / 1242)
    assert [c['name'] for c in ckpt.metadata.segmentation_classes][:2] == ['road', 'lane_marking']
    assert ckpt.metadata.training['final']['step'] == 4 and 'miou' in ckpt.metadata.training['final']
    state = tmp_path / 'out' / 'tiny.state.pt'
    assert state.is_file()
    resumed = _run(['-m', 'hydranet_ros.training.train', '--config', str(cfg), '--no-progress',
                    '--steps', '6', '--resume', str(state)])
    assert resumed.returncode == 0, resumed.stderr
    assert 'resumed from' in resumed.stdout
    assert load_checkpoint(tmp_path / 'out' / 'tiny.pt').metadata.training['steps'] == 6


def test_train_cli_bad_config(tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('model: {}\noptimiser: {}\n')
    out = _run(['-m', 'hydranet_ros.training.train', '--config', str(bad)])
    assert out.returncode == 2 and 'unknown sections' in out.stderr


def test_train_cli_init_from_a_missing_file(tmp_path):
    cfg = _config(tmp_path, init_from=str(tmp_path / 'nope.pt'))
    out = _run(['-m', 'hydranet_ros.training.train', '--config', str(cfg), '--no-progress'])
    assert out.returncode == 2 and 'init_from' in out.stderr and 'Traceback' not in out.stderr


def test_two_processes_step_like_one_with_the_same_global_batch(tmp_path):
    """torchrun with 2 gloo processes and batch_size 2 (one sample each) against one process with
    batch_size 2: the same losses at every step and the same weights at the end. The samples are
    all one image, so BatchNorm's per-process statistics (CPU has no SyncBatchNorm) equal the
    single process's; what is checked is the rest: the shared draw of the global batch, gradient
    averaging, the optimiser, rank 0 saving."""
    root = tmp_path / 'data'
    for sub in ('images', 'segmentation', 'depth'):
        (root / sub).mkdir(parents=True)
    rgb = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    cv2.imwrite(str(root / 'images' / '000.png'), rgb)
    cv2.imwrite(str(root / 'segmentation' / '000.png'), (np.arange(96)[None, :] // 24).repeat(64, 0).astype(np.uint8))
    np.save(root / 'depth' / '000.npy', np.linspace(2, 30, 64 * 96, dtype=np.float32).reshape(64, 96))
    runs = {}
    for label, launcher in (('one', ['-m', 'hydranet_ros.training.train']),
                            ('two', ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                                     '-m', 'hydranet_ros.training.train'])):
        cfg = {'name': 'ddp', 'model': {'width_mult': 0.35, 'decoder_channels': 16},
               'data': {'type': 'folder', 'root': str(root), 'input_size': [64, 96]},
               'train': {'steps': 4, 'batch_size': 2, 'lr': 0.001, 'threads': 1, 'augment': False,
                         'tasks': ['segmentation', 'depth'], 'eval_every': 4,
                         'output': str(tmp_path / label / 'ddp.pt')}}
        path = tmp_path / f'{label}.yaml'
        path.write_text(yaml.safe_dump(cfg))
        out = _run([*launcher, '--config', str(path), '--no-progress'])
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        runs[label] = (load_checkpoint(tmp_path / label / 'ddp.pt'),
                       torch.load(tmp_path / label / 'ddp.state.pt', weights_only=True))
    (one, one_state), (two, two_state) = runs['one'], runs['two']
    assert two.metadata.training['world_size'] == 2 and one.metadata.training['world_size'] == 1
    losses_one, losses_two = json.loads(one_state['running']), json.loads(two_state['running'])
    for task in ('segmentation', 'depth'):
        np.testing.assert_allclose(losses_two[task], losses_one[task], rtol=1e-4, err_msg=task)
    # Weights agree within half of one Adam step (lr 1e-3): Adam divides by sqrt(v), so float
    # rounding in the tiniest gradients moves a weight by a fraction of lr. BatchNorm's running
    # statistics are buffers, not weights, and are left out: running_var's unbiased estimate
    # divides by (pixels - 1) per process (6 vs 12 pixels at stride 32 for one sample vs two).
    a, b = dict(one.model.named_parameters()), dict(two.model.named_parameters())
    for key in a:
        torch.testing.assert_close(b[key].detach(), a[key].detach(), atol=5e-4, rtol=0, msg=key)
    assert len(a) > 200
    first = next(k for k in a if k.endswith('weight'))
    assert not torch.equal(a[first].detach(), HydraNet_init_weight(first)), 'training moved the weights'


def HydraNet_init_weight(key):
    """The tensor `key` as the trainer initialises it (seed 0, the test's architecture)."""
    from hydranet_ros.model import HydraNet, HydraNetConfig
    torch.manual_seed(0)
    return HydraNet(HydraNetConfig(width_mult=0.35, decoder_channels=16, num_classes=10,
                                   num_detection_classes=2)).state_dict()[key]


def test_flip_augmentation_flips_flow_and_boxes():
    h, w = 8, 12
    img = np.zeros((h, w, 3), np.uint8)
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = np.arange(w)[None, :]
    sample = Sample(image=img, prev_image=img, flow=flow, boxes=np.array([[1.0, 2.0, 5.0, 6.0]], np.float32),
                    classes=np.array([0]))
    out = to_tensors(sample, 2, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), flip=True)
    assert out['flow'][0, 0, 0].item() == -(w - 1)           # mirrored and negated
    assert out['det_mask'].sum() == 1 and out['det_mask'][1, 2] == 1   # centre x 3 -> 9 -> cell 2
    assert not out['has_segmentation'] and not out['has_depth'] and out['has_flow'] and out['has_detection']


def test_folder_dataset_with_missing_labels(tmp_path):
    (tmp_path / 'images').mkdir()
    (tmp_path / 'segmentation').mkdir()
    (tmp_path / 'depth').mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / 'images' / f'{i:03d}.png'), np.full((20, 40, 3), 40 * i, np.uint8))
    cv2.imwrite(str(tmp_path / 'segmentation' / '001.png'), np.full((20, 40), 2, np.uint8))
    np.save(tmp_path / 'depth' / '002.npy', np.full((20, 40), 7.5, np.float32))
    ds = FolderDataset(tmp_path, (16, 32))
    a, b, c = ds[0], ds[1], ds[2]
    assert a['image'].shape == (3, 16, 32)
    assert not a['has_segmentation'] and b['has_segmentation'] and (b['segmentation'] == 2).all()
    assert c['has_depth'] and torch.allclose(c['depth'], torch.full((16, 32), 7.5))
    assert not a['has_flow'] and not c['has_detection']
    with pytest.raises(FileNotFoundError):
        FolderDataset(tmp_path / 'nothing', (16, 32))


def test_init_from_copies_the_trained_tensors_and_keeps_new_levels(tmp_path):
    from hydranet_ros.model import HydraNet, HydraNetConfig
    from hydranet_ros.model.checkpoint import CheckpointMetadata, save_checkpoint
    from hydranet_ros.training.trainer import init_from_checkpoint
    torch.manual_seed(0)
    small = dict(width_mult=0.35, decoder_channels=16, num_classes=10, num_detection_classes=2)
    base = HydraNet(HydraNetConfig(**small))
    meta = CheckpointMetadata(architecture=base.config.to_dict(), tasks=['segmentation', 'depth', 'flow', 'detection'],
                              segmentation_classes=[{'name': f'c{i}', 'color': [i, i, i]} for i in range(10)],
                              detection_classes=['car', 'pedestrian'], input_size=[64, 96], name='base')
    save_checkpoint(tmp_path / 'base.pt', base, meta)
    grown = HydraNet(HydraNetConfig(**small, flow_iterations=1, flow_fine_radius=2))
    report = init_from_checkpoint(grown, tmp_path / 'base.pt')
    assert 'tensors loaded' in report and ' new' in report
    for name, tensor in base.encoder.state_dict().items():
        assert torch.equal(grown.encoder.state_dict()[name], tensor), name
    assert torch.equal(grown.heads['flow'].estimate[-1].weight, base.heads['flow'].estimate[-1].weight)
    assert torch.count_nonzero(grown.heads['flow'].fine_update[-1].weight) == 0   # new, still at its start
    other = HydraNet(HydraNetConfig(width_mult=1.0, decoder_channels=32, num_classes=10, num_detection_classes=2))
    with pytest.raises(ValueError, match='not a start for this network'):
        init_from_checkpoint(other, tmp_path / 'base.pt')


# --- training configuration and state (defects found in review) ---------------------------------
def test_nested_settings_merge_key_by_key_and_unknown_keys_are_refused():
    from hydranet_ros.training.trainer import TrainConfig
    train, data = TrainConfig(train={'weights': {'segmentation': 2.0}, 'head_lr': {'flow': 0.01}}).resolved()
    assert train.weights == {'segmentation': 2.0, 'depth': 1.0, 'flow': 0.2, 'detection': 1.0}
    assert train.head_lr == {'flow': 0.01} and data.type == 'synthetic' and train.steps == 1000
    with pytest.raises(ValueError, match=r"train: unknown keys \['stpes'\]"):
        TrainConfig(train={'stpes': 10}).resolved()
    with pytest.raises(ValueError, match='data: unknown keys'):
        TrainConfig(data={'input_sise': [64, 64]}).resolved()


@pytest.mark.parametrize('section,values,words', [
    ('train', {'steps': 0}, 'train.steps must be an integer >= 1'),
    ('train', {'lr': -1}, 'train.lr must be a number >= 0'),
    ('train', {'balancing': 'magic'}, 'train.balancing must be one of'),
    ('train', {'tasks': ['depth', 'edges']}, 'train.tasks must be a non-empty subset'),
    ('train', {'weights': {'dpeth': 2}}, 'train.weights names unknown tasks'),
    ('data', {'type': 'folder'}, 'data.root is needed'),
    ('data', {'input_size': [64]}, 'data.input_size must be [height, width]'),
])
def test_bad_training_settings_are_refused_with_the_reason(tmp_path, section, values, words):
    from hydranet_ros.training.trainer import TrainConfig
    with pytest.raises(ValueError, match=re.escape(words)):
        TrainConfig(**{section: values}).resolved()
    path = tmp_path / 'bad.yaml'
    path.write_text(yaml.safe_dump({section: values}))
    out = _run(['-m', 'hydranet_ros.training.train', '--config', str(path)])
    assert out.returncode == 2 and words in out.stderr and 'Traceback' not in out.stderr


def test_augment_setting_reaches_the_training_set(tmp_path):
    from hydranet_ros.model import HydraNetConfig
    from hydranet_ros.training.trainer import TrainConfig, make_datasets
    (tmp_path / 'images').mkdir()
    cv2.imwrite(str(tmp_path / 'images' / '000.png'), np.zeros((20, 40, 3), np.uint8))
    _, data = TrainConfig(data={'type': 'folder', 'root': str(tmp_path), 'input_size': [16, 32]}).resolved()
    for augment in (False, True):
        train_set, _ = make_datasets(data, HydraNetConfig(), augment=augment)
        assert train_set.augment is augment


def test_dwa_state_survives_a_save_and_load():
    from hydranet_ros.training.balancing import LossBalancer
    tasks = ['segmentation', 'depth']
    balancer = LossBalancer(tasks, 'dwa')
    balancer.end_epoch({'segmentation': 1.0, 'depth': 1.0})
    balancer.end_epoch({'segmentation': 0.5, 'depth': 1.0})
    path_state = {'balancer': balancer.state_dict()}
    buffer = __import__('io').BytesIO()
    torch.save(path_state, buffer)
    buffer.seek(0)
    restored = LossBalancer(tasks, 'dwa')
    restored.load_state_dict(torch.load(buffer, weights_only=True)['balancer'])
    assert restored.history == balancer.history and restored.dwa == balancer.dwa
    assert restored.dwa['depth'] > 1.0 > restored.dwa['segmentation']    # not the fresh 1.0 / 1.0


def test_a_dataset_with_its_own_classes_trains_and_the_checkpoint_names_them(tmp_path):
    root = tmp_path / 'data'
    for sub in ('images', 'segmentation'):
        (root / sub).mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(root / 'images' / f'{i:03d}.png'), np.full((32, 64, 3), 60 * i, np.uint8))
        cv2.imwrite(str(root / 'segmentation' / f'{i:03d}.png'), np.full((32, 64), i % 3, np.uint8))
    cfg = {'name': 'mine', 'model': {'width_mult': 0.35, 'decoder_channels': 16},
           'data': {'type': 'folder', 'root': str(root), 'input_size': [32, 64],
                    'segmentation_classes': [{'name': 'floor', 'color': [0, 0, 255]}, 'wall', 'door'],
                    'detection_classes': ['robot']},
           'train': {'steps': 2, 'batch_size': 2, 'threads': 1, 'tasks': ['segmentation'],
                     'output': str(tmp_path / 'mine.pt')}}
    path = tmp_path / 'mine.yaml'
    path.write_text(yaml.safe_dump(cfg))
    out = _run(['-m', 'hydranet_ros.training.train', '--config', str(path), '--no-progress'])
    assert out.returncode == 0, out.stderr
    meta = load_checkpoint(tmp_path / 'mine.pt').metadata
    assert [c['name'] for c in meta.segmentation_classes] == ['floor', 'wall', 'door']
    assert meta.segmentation_classes[0]['color'] == [0, 0, 255] and meta.detection_classes == ['robot']
    assert meta.architecture['num_classes'] == 3 and meta.architecture['num_detection_classes'] == 1


def test_the_default_network_is_the_one_training_builds_by_default():
    """hydranet_summary and the benchmarks measure HydraNetConfig(): it must be the trained network's shape."""
    from hydranet_ros.model import HydraNetConfig
    from hydranet_ros.training.trainer import TrainConfig
    _, data = TrainConfig().resolved()
    config = HydraNetConfig()
    assert (config.num_classes, config.num_detection_classes) == (len(data.segmentation_classes),
                                                                  len(data.detection_classes))


def test_a_resumed_run_ends_exactly_where_an_uninterrupted_one_does(tmp_path, monkeypatch):
    """Crash right after the state is saved at step 3 of 6, resume: the same weights as 6 steps in
    one go. Checks that resume restores the optimiser, the schedule, the loss balancing (DWA and
    its loss history), the data position and the augmentation's random state."""
    from hydranet_ros.training import trainer
    from hydranet_ros.training.trainer import TrainConfig, train

    def config(out, resume=None):
        cfg = json.loads(json.dumps(TINY))
        cfg['train'].update(steps=6, eval_every=3, balancing='dwa', augment=True, output=str(out),
                            **({'resume': str(resume)} if resume else {}))
        return TrainConfig(**cfg)
    train(config(tmp_path / 'straight.pt'), progress=False, log=lambda m: None)
    real = trainer._save_state

    class Crash(Exception):
        pass

    def save_then_crash(path, model, optimizer, balancer, step, *args, **kwargs):
        real(path, model, optimizer, balancer, step, *args, **kwargs)
        if step == 3:
            raise Crash
    monkeypatch.setattr(trainer, '_save_state', save_then_crash)
    with pytest.raises(Crash):
        train(config(tmp_path / 'resumed.pt'), progress=False, log=lambda m: None)
    monkeypatch.setattr(trainer, '_save_state', real)
    result = train(config(tmp_path / 'resumed.pt', resume=tmp_path / 'resumed.state.pt'), progress=False,
                   log=lambda m: None)
    assert result['steps'] == 6
    a = load_checkpoint(tmp_path / 'straight.pt').model.state_dict()
    b = load_checkpoint(tmp_path / 'resumed.pt').model.state_dict()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=0, msg=key)


def test_zoom_augmentation_is_a_longer_lens_with_depth_labels_to_match():
    """Zoom 1.5: the centre 2/3 of the frame at full size; the centre pixel keeps its class and
    its depth divided by 1.5 (the canonical-focal depth), flow scaled by 1.5, a box in the crop
    mapped through it, a box outside dropped."""
    from hydranet_ros.training.samples import zoom_sample
    h, w = 60, 90
    depth = np.linspace(5, 50, h * w, dtype=np.float32).reshape(h, w)
    seg = (np.arange(w)[None, :] // 10).repeat(h, 0).astype(np.uint8)
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.0, -1.0
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    s = Sample(image=img, prev_image=img, segmentation=seg, depth=depth, flow=flow,
               boxes=np.array([[35, 25, 55, 35], [0, 0, 10, 8]], np.float32), classes=np.array([0, 1]))
    z = zoom_sample(s, 1.5)
    assert z['image'].shape == img.shape and z['depth'].shape == (h, w)
    # crop of 40x60 at (10, 15); centre pixel (30, 45) maps to itself
    assert z['segmentation'][30, 45] == seg[30, 45]
    assert z['depth'][30, 45] == pytest.approx(depth[30, 45] / 1.5, rel=0.02)
    np.testing.assert_allclose(z['flow'][30, 45], [3.0, -1.5])
    np.testing.assert_allclose(z['boxes'], [[(35 - 15) * 1.5, (25 - 10) * 1.5, (55 - 15) * 1.5, (35 - 10) * 1.5]])
    assert list(z['classes']) == [0]
    assert zoom_sample(s, 1.0) is s


def test_zoom_setting_reaches_the_training_set_and_bad_ranges_are_refused(tmp_path):
    from hydranet_ros.training.trainer import TrainConfig
    with pytest.raises(ValueError, match='train.zoom'):
        TrainConfig(train={'zoom': [0.5, 1.0]}).resolved()
    cfg = json.loads(json.dumps(TINY))
    cfg['train'].update(steps=1, zoom=[1.0, 1.6], output=str(tmp_path / 'z.pt'))
    from hydranet_ros.training import trainer
    seen = {}
    real = trainer.make_datasets

    def spy(*args, **kwargs):
        sets = real(*args, **kwargs)
        seen['train'] = sets[0]
        return sets
    trainer.make_datasets = spy
    try:
        trainer.train(TrainConfig(**cfg), progress=False, log=lambda m: None)
    finally:
        trainer.make_datasets = real
    assert seen['train'].augmentation.zoom_range == (1.0, 1.6)


def test_keep_trains_only_the_new_tasks_heads_and_every_kept_output_stays_bit_identical(tmp_path):
    base = _config(tmp_path, tasks=['segmentation', 'depth', 'detection'], output=str(tmp_path / 'base.pt'))
    assert _run(['-m', 'hydranet_ros.training.train', '--config', str(base), '--no-progress']).returncode == 0
    cfg = _config(tmp_path, tasks=['detection'], keep=['segmentation', 'depth'], init_from=str(tmp_path / 'base.pt'),
                  output=str(tmp_path / 'kept.pt'), lr=0.01)
    out = _run(['-m', 'hydranet_ros.training.train', '--config', str(cfg), '--no-progress'])
    assert out.returncode == 0, out.stderr
    assert "keep ['segmentation', 'depth']" in out.stdout
    before, after = load_checkpoint(tmp_path / 'base.pt'), load_checkpoint(tmp_path / 'kept.pt')
    assert after.metadata.tasks == ['segmentation', 'depth', 'detection']
    a, b = before.model.state_dict(), after.model.state_dict()
    moved = sorted(k for k in a if not torch.equal(a[k], b[k]))
    assert moved and all(k.startswith('heads.detection.') for k in moved), moved[:3]
    x = torch.randn(1, 3, 64, 192)
    with torch.no_grad():
        ya, yb = before.model.eval()(x, ['segmentation', 'depth']), after.model.eval()(x, ['segmentation', 'depth'])
    assert all(torch.equal(ya[t], yb[t]) for t in ya)
    for bad, words in (({'keep': ['detection'], 'tasks': ['detection']}, 'train.keep must name'),
                       ({'keep': ['segmentation'], 'tasks': ['detection']}, 'needs train.init_from')):
        out = _run(['-m', 'hydranet_ros.training.train', '--config', str(_config(tmp_path, **bad)), '--no-progress'])
        assert out.returncode == 2 and words in out.stderr and 'Traceback' not in out.stderr, out.stderr[-400:]
