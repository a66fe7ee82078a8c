"""Losses, metrics and loss balancing against hand-computed values (CPU, no ROS)."""
import math

import numpy as np
import pytest
import torch

from hydranet_ros.metrics import DepthMetric, DetectionMetric, FlowMetric, SegmentationMetric, box_iou
from hydranet_ros.training import losses as L
from hydranet_ros.training.balancing import LossBalancer
from hydranet_ros.training.targets import detection_targets

T, F_ = torch.tensor([True]), torch.tensor([False])


def test_segmentation_loss_ignores_unlabelled_pixels_and_samples():
    logits = torch.zeros(1, 3, 1, 2)
    logits[0, 1, 0, 0] = math.log(2.0)               # pixel 0: p(class 1) = 2/4
    target = torch.tensor([[[1, 255]]])
    assert L.segmentation_loss(logits, target, T).item() == pytest.approx(-math.log(0.5))
    assert L.segmentation_loss(logits, target, F_).item() == 0.0


def test_depth_loss_hand_computed_and_masked():
    pred = torch.tensor([[[[2.0, 4.0, 9.0]]]])
    target = torch.tensor([[[1.0, 4.0, float('nan')]]])
    d = torch.log(torch.tensor([2.0, 4.0])) - torch.log(torch.tensor([1.0, 4.0]))
    expect = 10 * math.sqrt((d ** 2).mean().item() - 0.85 * d.mean().item() ** 2)
    assert L.depth_loss(pred, target, T, 0.5, 80.0).item() == pytest.approx(expect, rel=1e-5)
    assert L.depth_loss(pred, target, F_, 0.5, 80.0).item() == 0.0
    # scale still matters (lambda < 1): a uniformly scaled prediction is penalised
    assert L.depth_loss(target.unsqueeze(1).nan_to_num(1.0) * 2, target, T, 0.5, 80.0).item() > 0


def test_flow_loss_is_epe_on_valid_pixels():
    pred = torch.zeros(1, 2, 1, 2)
    target = torch.tensor([[[[3.0, float('nan')]], [[4.0, 1.0]]]])
    assert L.flow_loss(pred, target, T).item() == pytest.approx(5.0)


def test_detection_targets_and_focal_loss():
    heat, size, offset, mask = detection_targets(np.array([[8.0, 4.0, 24.0, 12.0]]), np.array([1]), 2, 8, 10)
    assert heat.shape == (2, 8, 10) and heat[1, 2, 4] == 1.0 and heat[0].max() == 0
    assert mask.sum() == 1 and mask[2, 4] == 1
    assert tuple(size[:, 2, 4]) == (16.0, 8.0) and tuple(offset[:, 2, 4]) == (0.0, 0.0)
    perfect = torch.from_numpy(heat)[None].clamp(1e-4, 1 - 1e-4)
    bad = torch.full_like(perfect, 0.5)
    assert L.focal_heatmap_loss(perfect, torch.from_numpy(heat)[None]) < 0.01
    assert L.focal_heatmap_loss(bad, torch.from_numpy(heat)[None]) > 0.1


def test_segmentation_metric():
    m = SegmentationMetric(3)
    m.update(np.array([[0, 1, 1, 2]]), np.array([[0, 1, 2, 255]]))
    r = m.compute()
    assert r['per_class_iou'][0] == 1.0 and r['per_class_iou'][1] == 0.5 and r['per_class_iou'][2] == 0.0
    assert r['miou'] == pytest.approx(0.5)


def test_depth_metric():
    m = DepthMetric(0.5, 80.0)
    m.update(np.array([2.0, 3.0, 5.0]), np.array([1.0, 3.0, np.inf]))
    r = m.compute()
    assert r['abs_rel'] == pytest.approx(0.5) and r['rmse'] == pytest.approx(math.sqrt(0.5))
    assert r['delta1'] == pytest.approx(0.5) and r['pixels'] == 2


def test_flow_metric():
    m = FlowMetric()
    m.update(np.array([[[0.0, 0.0], [10.0, 0.0]]]), np.array([[[3.0, 4.0], [10.0, 0.5]]]))
    r = m.compute()
    assert r['epe'] == pytest.approx(2.75) and r['fl_all'] == pytest.approx(0.5)


def test_detection_metric_ap():
    assert box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2]]))[0, 0] == pytest.approx(1 / 3)
    m = DetectionMetric(1)
    gt = [[0, 0, 10, 10], [20, 20, 30, 30]]
    # one true positive (best score), one false positive, one missed object: AP@0.5 = 0.5 recall at precision 1
    m.update([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.8], [0, 0], gt, [0, 0])
    r = m.compute()
    assert r['map50'] == pytest.approx(51 / 101)      # 101-point interpolation: recall 0..0.5 at precision 1
    perfect = DetectionMetric(1)
    perfect.update([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8], [0, 0], gt, [0, 0])
    assert perfect.compute()['map50'] == pytest.approx(1.0) and perfect.compute()['map'] == pytest.approx(1.0)
    ignored = DetectionMetric(1)
    ignored.update([[0, 0, 10, 10]], [0.9], [0], gt, [0, 0], gt_ignore=[False, True])
    assert ignored.compute()['map50'] == pytest.approx(1.0)   # the ignored box is not a miss


def test_balancing_methods():
    losses = {'segmentation': torch.tensor(2.0), 'depth': torch.tensor(4.0)}
    fixed = LossBalancer(['segmentation', 'depth'], 'fixed', {'segmentation': 1.0, 'depth': 0.5})
    assert fixed(losses).item() == pytest.approx(4.0)
    unc = LossBalancer(['segmentation', 'depth'], 'uncertainty')
    assert unc(losses).item() == pytest.approx(0.5 * 2 + 0.5 * 4)       # log sigma^2 = 0 at start
    unc.log_vars.data[:] = torch.tensor([math.log(2.0), 0.0])
    assert unc(losses).item() == pytest.approx(0.5 * 2 / 2 + 0.5 * math.log(2.0) + 0.5 * 4)
    dwa = LossBalancer(['segmentation', 'depth'], 'dwa', dwa_temperature=2.0)
    dwa.end_epoch({'segmentation': 1.0, 'depth': 1.0})
    dwa.end_epoch({'segmentation': 0.5, 'depth': 1.0})     # depth stalls: it gets more weight
    w = dwa.current_weights()
    assert w['depth'] > w['segmentation'] and w['depth'] + w['segmentation'] == pytest.approx(2.0)
    with pytest.raises(ValueError):
        LossBalancer(['depth'], 'magic')
