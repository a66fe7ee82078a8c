"""Issue 32's training tools for unbalanced data: rare labels (data.label_fraction), task-balanced
sampling, and tasks without labels in a batch left out of the losses."""
import types

import numpy as np
import pytest
import torch

from hydranet_ros.training.balancing import LossBalancer
from hydranet_ros.training.datasets import SyntheticDataset
from hydranet_ros.training.real_data import MixtureDataset
from hydranet_ros.training.settings import TrainConfig
from hydranet_ros.training.trainer import _draw_batch, compute_losses

@pytest.fixture(scope='module')
def drive():
    """One labelled pair of a varied drive, as a batch of one."""
    ds = SyntheticDataset([5], 2, (96, 160), 'vga', 2, style='varied')
    return {k: v[None] for k, v in ds[1].items()}


@pytest.mark.parametrize('table, message', [({'depth': 0}, r'share in \(0, 1\]'), ({'depth': 1.5}, 'share'),
                                            ({'height': 0.5}, 'tasks are'), ([0.1], 'table')])
def test_a_bad_label_fraction_is_refused(table, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(data={'label_fraction': table}).resolved()


@pytest.mark.parametrize('data', [
    {'type': 'folder', 'root': '/x', 'label_fraction': {'depth': 0.1}},
    {'type': 'mixture', 'label_fraction': {'depth': 0.1}, 'sources': [{'type': 'synthetic', 'seeds': [1]}]},
    {'type': 'mixture', 'sources': [{'type': 'kitti_raw', 'root': '/x', 'label_fraction': {'depth': 0.1}}]}])
def test_label_fraction_is_refused_where_it_would_do_nothing(data):
    with pytest.raises(ValueError, match='label_fraction'):
        TrainConfig(data=data).resolved(check_paths=False)


def test_label_fraction_on_a_synthetic_source_of_a_mixture_is_taken():
    _, data = TrainConfig(data={'type': 'mixture', 'sources': [
        {'type': 'synthetic', 'seeds': [1], 'label_fraction': {'depth': 0.1}}]}).resolved()
    assert data.sources[0]['label_fraction'] == {'depth': 0.1}


def test_task_balanced_sampling_is_refused_where_labels_are_unknown():
    cfg = TrainConfig(data={'type': 'folder', 'root': '/nonexistent'}, train={'sampler': 'task_balanced'})
    with pytest.raises(ValueError, match='task_balanced'):
        cfg.resolved(check_paths=False)


def test_label_fraction_keeps_the_same_share_in_every_build():
    a = SyntheticDataset([1, 2], 4, (32, 64), 'kitti', 2, label_fraction={'depth': 0.25})
    b = SyntheticDataset([1, 2], 4, (32, 64), 'kitti', 2, label_fraction={'depth': 0.25})
    kept = a.labelled_indices('depth')
    assert len(kept) == 2 and list(kept) == list(b.labelled_indices('depth'))
    assert [bool(a[i]['has_depth']) for i in range(len(a))] == [i in kept for i in range(len(a))]
    assert all(bool(a[i]['has_segmentation']) and bool(a[i]['has_flow']) for i in range(len(a)))
    assert len(a.labelled_indices('flow')) == len(a)
    # one task's withheld samples do not depend on what else the table thins
    c = SyntheticDataset([1, 2], 4, (32, 64), 'kitti', 2, label_fraction={'flow': 0.5, 'depth': 0.25})
    d = SyntheticDataset([1, 2], 4, (32, 64), 'kitti', 2, label_fraction={'flow': 0.5})
    assert list(c.labelled_indices('depth')) == list(kept) and len(c.labelled_indices('flow')) == 4
    assert list(c.labelled_indices('flow')) == list(d.labelled_indices('flow'))
    mix = MixtureDataset([(a, 1.0), (b, 1.0)])
    assert list(mix.labelled_indices('depth')) == list(kept) + [len(a) + int(i) for i in kept]


def test_task_balanced_sampling_draws_the_rare_task_more_often():
    """Depth on 1 sample of 8: the dataset sampler draws it 1/8 of the time, task-balanced about
    1/4 + 3/4 x 1/8 (a task for each slot, then one of its samples)."""
    ds = SyntheticDataset([3, 4], 4, (32, 64), 'kitti', 2, label_fraction={'depth': 0.125})
    tasks = ['segmentation', 'depth', 'flow', 'detection']
    tcfg = types.SimpleNamespace(batch_size=8, channels_last=False)

    def share(pools):
        run = types.SimpleNamespace(train_set=ds, tcfg=tcfg, pools=pools, rank=0, world=1,
                                    device=torch.device('cpu'))
        rng = np.random.default_rng(0)
        return np.mean([float(_draw_batch(run, rng)['has_depth'].float().mean()) for _ in range(40)])
    uniform = share(None)
    balanced = share({t: ds.labelled_indices(t) for t in tasks})
    assert uniform == pytest.approx(0.125, abs=0.06)
    assert balanced == pytest.approx(0.25 + 0.75 * 0.125, abs=0.07)


def test_a_task_no_sample_labels_is_left_out_of_the_losses(drive):
    """Not a zero loss: DWA's running means and the uncertainty weight of depth stay untouched."""
    from hydranet_ros.model import HydraNet, HydraNetConfig
    torch.manual_seed(0)
    net = HydraNet(HydraNetConfig(num_classes=10, num_detection_classes=2, width_mult=0.35, decoder_channels=16))
    tasks = ['segmentation', 'depth', 'flow', 'detection']
    batch = dict(drive, has_depth=torch.zeros(1, dtype=torch.bool))
    losses, extra, _ = compute_losses(net, batch, tasks, net.config)
    assert set(losses) == {'segmentation', 'flow', 'detection'} and float(extra.detach()) == 0.0
    balancer = LossBalancer(tasks, 'uncertainty')
    balancer(losses).backward()
    assert float(balancer.log_vars.grad[tasks.index('depth')]) == 0.0
    assert float(balancer.log_vars.grad[tasks.index('flow')]) != 0.0
    with_all, none, _ = compute_losses(net, drive, tasks, net.config)
    assert set(with_all) == set(tasks) and none is None
    # a batch that labels nothing: no losses, and still a (zero) graph to step through
    nothing = dict(drive, **{f'has_{t}': torch.zeros(1, dtype=torch.bool) for t in tasks})
    losses, extra, _ = compute_losses(net, nothing, tasks, net.config)
    assert losses == {} and float(extra.detach()) == 0.0
    (balancer(losses) + extra).backward()


def test_a_config_with_the_removed_consistency_key_is_told_why():
    with pytest.raises(ValueError, match='Cross-task consistency'):
        TrainConfig(train={'consistency': 0.0}).resolved()


def test_task_balanced_sampling_refuses_a_task_no_sample_labels(tmp_path):
    from hydranet_ros.training.trainer import train
    cfg = TrainConfig(name='tb', model={'width_mult': 0.25, 'decoder_channels': 16, 'crp_stages': 1},
                      data={'input_size': [32, 64], 'train_seeds': [1], 'frames_per_seed': 2, 'val_seeds': [500],
                            'val_frames_per_seed': 1, 'labels': ['segmentation']},
                      train={'steps': 1, 'batch_size': 2, 'threads': 1, 'tasks': ['segmentation', 'depth'],
                             'sampler': 'task_balanced', 'output': str(tmp_path / 'tb.pt')})
    with pytest.raises(ValueError, match=r"no training sample labels \['depth'\]"):
        train(cfg, progress=False, log=lambda *a: None)
