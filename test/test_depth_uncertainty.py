"""The depth uncertainty head: shapes and bounds, its loss and calibration metric against hand
values, and training it after the fact leaves every other output bit-identical."""
import math

import numpy as np
import pytest
import torch

from hydranet_ros.metrics import UncertaintyMetric
from hydranet_ros.model import HydraNetConfig
from hydranet_ros.model.checkpoint import load_checkpoint
from hydranet_ros.model.depth_uncertainty_head import SCALE_MAX, SCALE_MIN
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.training.losses import depth_uncertainty_loss
from hydranet_ros.training.settings import TrainConfig
from hydranet_ros.training.uncertainty import train_uncertainty

SMALL = HydraNetConfig(width_mult=0.25, decoder_channels=16, depth_uncertainty=True)


@pytest.mark.parametrize('size', [(64, 96), (75, 131)])
def test_head_gives_a_bounded_scale_per_pixel(size):
    model = HydraNet(SMALL).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size), ['depth', 'depth_uncertainty'])
    b = out['depth_uncertainty']
    assert b.shape == (2, 1, *size) == out['depth'].shape
    assert torch.isfinite(b).all() and (b >= SCALE_MIN).all() and (b <= SCALE_MAX).all()


def test_a_network_without_the_head_says_so():
    model = HydraNet(HydraNetConfig(width_mult=0.25, decoder_channels=16)).eval()
    assert 'depth_uncertainty' not in model.heads
    with pytest.raises(ValueError, match='no .*depth_uncertainty'):
        model(torch.zeros(1, 3, 64, 64), ['depth_uncertainty'])


def test_laplace_nll_by_hand():
    scale = torch.tensor([[[[0.5, 2.0], [1.0, 1.0]]]])
    depth = torch.tensor([[[[10.0, 10.0], [5.0, 5.0]]]])
    target = torch.tensor([[[11.0, 6.0], [5.0, float('inf')]]])      # the last pixel is invalid
    loss = depth_uncertainty_loss(scale, depth, target, torch.tensor([True]), 0.5, 80.0)
    expected = np.mean([1 / 0.5 + math.log(0.5), 4 / 2.0 + math.log(2.0), 0.0 + 0.0])
    assert float(loss) == pytest.approx(expected)
    # the depth is detached: only the scale gets a gradient
    depth.requires_grad_(True)
    scale.requires_grad_(True)
    depth_uncertainty_loss(scale, depth, target, torch.tensor([True]), 0.5, 80.0).backward()
    assert depth.grad is None and scale.grad is not None


def test_calibration_of_true_laplace_errors_and_ause():
    rng = np.random.default_rng(0)
    target = rng.uniform(2, 60, 200_000)
    b = 0.05 * target * rng.uniform(0.5, 2.0, target.size)
    depth = target + rng.laplace(0, b)
    good = UncertaintyMetric()
    good.update(depth, b, target)
    r = good.compute()
    assert r['within_1b'] == pytest.approx(1 - math.exp(-1), abs=0.01)
    assert r['within_2b'] == pytest.approx(1 - math.exp(-2), abs=0.01)
    assert r['abs_rel_sparsification'][0] == pytest.approx(r['abs_rel_oracle'][0])
    assert r['abs_rel_sparsification'][-1] < r['abs_rel_sparsification'][0]      # removing uncertain pixels helps
    blind = UncertaintyMetric()
    blind.update(depth, rng.permutation(b), target)                            # scales that know nothing
    assert blind.compute()['ause_abs_rel'] > r['ause_abs_rel'] > 0
    over = UncertaintyMetric()
    over.update(depth, 3 * b, target)
    assert over.compute()['within_1b'] > 0.9                                     # over-cautious scales show it


def test_training_the_head_after_the_fact_leaves_every_other_output_bit_identical(tiny_checkpoint, tmp_path):
    config = TrainConfig.load('config/train_depth_uncertainty.yaml')
    config.data.update(train_seeds=[100], frames_per_seed=2)
    config.train.update(batch_size=2, log_every=1)
    out = tmp_path / 'with_head.pt'
    logs = []
    summary = train_uncertainty(tiny_checkpoint, config, out, steps=3, log=logs.append)
    assert summary['steps'] == 3 and math.isfinite(summary['final_nll'])
    old, new = load_checkpoint(tiny_checkpoint), load_checkpoint(out)
    assert new.metadata.tasks == [*old.metadata.tasks, 'depth_uncertainty']
    assert new.metadata.config.depth_uncertainty and not old.metadata.config.depth_uncertainty
    a, b = old.model.state_dict(), new.model.state_dict()
    assert set(b) - set(a) and all(k.startswith('heads.depth_uncertainty.') for k in set(b) - set(a))
    assert all(torch.equal(a[k], b[k]) for k in a), 'a frozen tensor (or BatchNorm statistic) moved'
    fresh = HydraNet(new.metadata.config)
    fresh.load_state_dict(a, strict=False)
    moved = [k for k in b if k.startswith('heads.depth_uncertainty.') and k.endswith('weight')
             and not torch.equal(b[k], fresh.state_dict()[k])]
    assert moved, 'the new head did not learn'
    x = torch.randn(1, 3, 96, 160)
    still = ['segmentation', 'depth', 'detection']
    with torch.no_grad():
        ya, yb = old.model.eval()(x, still), new.model.eval()(x, still)
        fa = old.model(x, ['flow'], previous_images=x.flip(-1))['flow']
        fb = new.model(x, ['flow'], previous_images=x.flip(-1))['flow']
    assert all(torch.equal(ya[k], yb[k]) for k in still) and torch.equal(fa, fb)
