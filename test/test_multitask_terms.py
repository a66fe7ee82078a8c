"""Issue 32's training terms: cross-task consistency (depth vs segmentation, flow vs the rigid flow
of depth), rare labels (data.label_fraction) and task-balanced sampling."""
import types

import numpy as np
import pytest
import torch

from hydranet_ros import IGNORE
from hydranet_ros.training import losses as L
from hydranet_ros.training.balancing import LossBalancer
from hydranet_ros.training.datasets import SyntheticDataset
from hydranet_ros.training.real_data import MixtureDataset
from hydranet_ros.training.settings import TrainConfig
from hydranet_ros.training.trainer import Consistency, _draw_batch, compute_losses
from hydranet_ros.world.classes import SEG_ID

STATIC = tuple(SEG_ID[n] for n in ('road', 'lane_marking', 'sidewalk', 'terrain', 'building', 'vegetation', 'pole'))


@pytest.fixture(scope='module')
def drive():
    """A varied drive with odometry: labels, intrinsics and camera motion of each pair."""
    ds = SyntheticDataset([5], 2, (96, 160), 'vga', 2, style='varied', odometry=True)
    batch = {k: v[None] for k, v in ds[1].items()}
    unknown = ~torch.isfinite(batch['flow']).all(dim=1)     # no true flow there (sky): not scored
    batch['segmentation'][unknown] = IGNORE
    batch['flow'] = torch.nan_to_num(batch['flow'])
    return batch


def _rigid_term(batch, flow, depth, has=None):
    has = torch.ones(1, dtype=torch.bool) if has is None else has
    return float(L.rigid_flow_consistency(flow, depth, batch['segmentation'], STATIC, batch['intrinsics'],
                                          batch['pose'], has))


def test_rigid_flow_consistency_is_small_for_the_true_depth_and_flow(drive):
    """The world's own depth and flow agree through the camera motion on static pixels; a wrong
    depth, no flow, or the inverse motion disagree: the term measures what it says."""
    depth = torch.nan_to_num(drive['depth'], nan=80.0, posinf=80.0)[:, None].clamp(max=80.0)
    flow = drive['flow']
    true = _rigid_term(drive, flow, depth)
    assert true < 0.5 * _rigid_term(drive, flow, depth * 0.5)
    assert true < 0.5 * _rigid_term(drive, torch.zeros_like(flow), depth)
    inverse = dict(drive, pose=torch.linalg.inv(drive['pose']))
    assert true < 0.5 * _rigid_term(inverse, flow, depth)


def test_rigid_flow_consistency_ignores_movers_and_samples_without_motion(drive):
    depth = torch.nan_to_num(drive['depth'], nan=80.0, posinf=80.0)[:, None].clamp(max=80.0)
    flow = drive['flow'].clone()
    base = _rigid_term(drive, flow, depth)
    car = drive['segmentation'] == SEG_ID['car']
    assert car.any()
    flow[:, 0][car] += 50.0                      # cars move by themselves: not a static pixel
    assert _rigid_term(drive, flow, depth) == pytest.approx(base, rel=1e-5)
    flow[:, 0][drive['segmentation'] == SEG_ID['road']] += 50.0
    assert _rigid_term(drive, flow, depth) > base + 10
    assert _rigid_term(drive, flow, depth, has=torch.zeros(1, dtype=torch.bool)) == 0.0


def test_both_heads_get_the_consistency_gradient(drive):
    depth = torch.full((1, 1, 96, 160), 10.0, requires_grad=True)
    flow = torch.zeros((1, 2, 96, 160), requires_grad=True)
    term = L.rigid_flow_consistency(flow, depth, drive['segmentation'], STATIC, drive['intrinsics'],
                                    drive['pose'], torch.ones(1, dtype=torch.bool))
    term.backward()
    assert float(depth.grad.abs().sum()) > 0 and float(flow.grad.abs().sum()) > 0


def test_the_depth_edge_term_penalises_jumps_inside_a_segment_only():
    seg = torch.zeros((1, 8, 8), dtype=torch.int64)
    seg[:, :, 4:] = 1
    at_boundary = torch.ones((1, 1, 8, 8))
    at_boundary[..., 4:] = 3.0
    inside = torch.ones((1, 1, 8, 8))
    inside[..., 2:] = 3.0
    has = torch.ones(1, dtype=torch.bool)
    assert float(L.depth_edge_consistency(at_boundary, seg, has)) == 0.0
    assert float(L.depth_edge_consistency(inside, seg, has)) > 0.0


def test_rigid_flow_consistency_needs_odometry():
    cfg = TrainConfig(data={'type': 'synthetic'}, train={'consistency_rigid_flow': 0.1})
    with pytest.raises(ValueError, match='odometry'):
        cfg.resolved()
    TrainConfig(data={'type': 'synthetic', 'odometry': True}, train={'consistency_rigid_flow': 0.1}).resolved()


@pytest.mark.parametrize('table, message', [({'depth': 0}, r'share in \(0, 1\]'), ({'depth': 1.5}, 'share'),
                                            ({'height': 0.5}, 'tasks are'), ([0.1], 'table')])
def test_a_bad_label_fraction_is_refused(table, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(data={'label_fraction': table}).resolved()


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
    losses, extra, _ = compute_losses(net, batch, tasks, net.config, Consistency())
    assert set(losses) == {'segmentation', 'flow', 'detection'} and extra is None
    balancer = LossBalancer(tasks, 'uncertainty')
    balancer(losses).backward()
    assert float(balancer.log_vars.grad[tasks.index('depth')]) == 0.0
    assert float(balancer.log_vars.grad[tasks.index('flow')]) != 0.0
    with_all, _, _ = compute_losses(net, drive, tasks, net.config, Consistency())
    assert set(with_all) == set(tasks)


def test_the_rigid_flow_term_joins_the_total(drive):
    from hydranet_ros.model import HydraNet, HydraNetConfig
    torch.manual_seed(0)
    net = HydraNet(HydraNetConfig(num_classes=10, num_detection_classes=2, width_mult=0.35, decoder_channels=16))
    tasks = ['segmentation', 'depth', 'flow', 'detection']
    _, none, _ = compute_losses(net, drive, tasks, net.config, Consistency())
    _, extra, _ = compute_losses(net, drive, tasks, net.config, Consistency(rigid_flow=0.1, static=STATIC))
    assert none is None and float(extra.detach()) > 0
