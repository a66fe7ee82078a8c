"""The instance head: targets and grouping against the world's exact instances, PQ by hand, track
ids on instances, training after the fact leaves every other output bit-identical, both backends
group alike."""
import math

import numpy as np
import pytest
import torch

from hydranet_ros.inference.instances import group_instances, instance_boxes, upsample_offsets
from hydranet_ros.metrics import PanopticQuality
from hydranet_ros.model import HydraNetConfig
from hydranet_ros.model.checkpoint import load_checkpoint
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.spatial.tracking import UNTRACKED_INSTANCE_ID, track_instance_ids
from hydranet_ros.training.instances import distillation_loss, instance_loss, instance_targets, train_instances
from hydranet_ros.world import World


def test_head_shape_and_a_network_without_it_says_so():
    model = HydraNet(HydraNetConfig(width_mult=0.25, decoder_channels=16, instances=True)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 75, 131), ['instances'])['instances']
    assert out.shape == (1, 3, 19, 33) and ((out[:, 0] >= 0) & (out[:, 0] <= 1)).all()
    plain = HydraNet(HydraNetConfig(width_mult=0.25, decoder_channels=16)).eval()
    with pytest.raises(ValueError, match='no .*instances'):
        plain(torch.zeros(1, 3, 64, 64), ['instances'])


def test_perfect_maps_group_back_into_the_worlds_instances():
    frame = next(World(2003, size=(188, 624)).frames(1, start=5))
    ids, seg = frame.instances, frame.segmentation
    assert len(np.unique(ids)) > 5, 'a frame with several objects'
    heat, _, _ = instance_targets(ids, (192, 640))
    assert heat.shape == (48, 160)
    _, offsets, _ = instance_targets(ids, (188, 624), stride=1)          # exact offsets at every pixel
    things = ids > 0

    def pq_of(grouped):
        m = PanopticQuality({8: 'car', 9: 'pedestrian'})
        m.update(grouped, seg, ids, seg)
        return m.compute()['pq']
    # exact maps have one peak per object, however close: the narrowest window keeps neighbours apart
    # (the default window 5 is tuned to suppress the trained head's duplicate peaks)
    perfect = pq_of(group_instances(heat, offsets, things, window=3))
    assert perfect > 0.8
    assert pq_of(group_instances(heat, offsets, things)) > 0.7, 'the defaults'
    noisy = offsets + np.random.default_rng(0).normal(0, 40, offsets.shape).astype(np.float32)
    assert pq_of(group_instances(heat, noisy, things, window=3)) < perfect - 0.1, 'grouping follows the offsets'
    coarse = upsample_offsets(instance_targets(ids, (192, 640))[1], (192, 640))[:, :188, :624]
    assert pq_of(group_instances(heat, coarse, things, window=3)) > 0.6, 'the head\'s stride-4 offsets, upsampled'


def test_panoptic_quality_by_hand():
    classes = np.zeros((10, 10), np.int64)
    classes[:, :5] = 1
    truth = np.zeros((10, 10), np.uint16)
    truth[:, :5] = 1                           # one object of class 1 (50 px)
    truth[0:2, 8:10] = 2                       # a second, of class 0 (4 px: below min_area, ignored)
    pred = np.zeros_like(truth)
    pred[:, :4] = 7                            # IoU 40 / 50 = 0.8 with object 1
    pred[5:10, 6:10] = 9                       # nothing there: a false positive of class 0
    m = PanopticQuality({0: 'a', 1: 'b'}, min_area=16)
    m.update(pred, classes, truth, classes)
    r = m.compute()
    assert r['b'] == {'pq': 0.8, 'sq': 0.8, 'rq': 1.0, 'tp': 1, 'fp': 0, 'fn': 0}
    assert r['a']['fp'] == 1 and r['a']['pq'] == 0.0
    assert r['pq'] == pytest.approx(0.4)


def test_instances_take_the_track_ids_of_the_detections_they_match():
    ids = np.zeros((20, 40), np.uint16)
    ids[2:10, 2:10], ids[2:10, 20:30], ids[12:18, 32:38] = 1, 2, 3
    boxes = np.array([[20, 2, 30, 10], [2, 2, 11, 10], [0, 15, 5, 20]])      # match 2, match 1, nothing
    out = track_instance_ids(ids, boxes, [17, 5, 99])
    assert out[5, 25] == 17 and out[5, 5] == 5 and out[15, 35] == UNTRACKED_INSTANCE_ID and out[0, 0] == 0
    assert instance_boxes(out)[17] == (20, 2, 30, 10)
    assert (track_instance_ids(ids, np.zeros((0, 4)), []) >= UNTRACKED_INSTANCE_ID - 2).sum() == (ids > 0).sum()


def test_loss_is_zero_at_the_targets_and_grows_away_from_them():
    ids = np.zeros((64, 96), np.int64)
    ids[10:30, 20:50] = 4
    heat, offsets, on = (torch.from_numpy(a)[None] for a in instance_targets(ids, (64, 96)))
    perfect = torch.cat([heat[:, None], offsets], dim=1)
    assert float(instance_loss(perfect, heat, offsets, on)) == 0.0
    off = perfect.clone()
    off[:, 1:] += 10.0
    assert float(instance_loss(off, heat, offsets, on)) == pytest.approx(0.2, rel=1e-5)   # 0.01 x (10 + 10) px


def test_training_the_head_after_the_fact_leaves_every_other_output_bit_identical(tiny_checkpoint, tmp_path):
    out = tmp_path / 'with_instances.pt'
    summary = train_instances(tiny_checkpoint, out, seeds=[100], frames=2, steps=3, batch_size=2, log=lambda m: None)
    assert summary['steps'] == 3 and math.isfinite(summary['final_loss'])
    old, new = load_checkpoint(tiny_checkpoint), load_checkpoint(out)
    assert new.metadata.tasks == [*old.metadata.tasks, 'instances'] and new.metadata.config.instances
    a, b = old.model.state_dict(), new.model.state_dict()
    assert set(b) - set(a) and all(k.startswith('heads.instances.') for k in set(b) - set(a))
    assert all(torch.equal(a[k], b[k]) for k in a), 'a frozen tensor (or BatchNorm statistic) moved'
    x = torch.randn(1, 3, 96, 160)
    still = ['segmentation', 'depth', 'detection']
    with torch.no_grad():
        ya, yb = old.model.eval()(x, still), new.model.eval()(x, still)
    assert all(torch.equal(ya[k], yb[k]) for k in still)


def test_distillation_is_zero_on_the_originals_outputs_and_scale_free():
    teacher = {'depth': torch.full((1, 1, 4, 4), 10.0), 'segmentation': torch.randn(1, 3, 4, 4)}
    assert float(distillation_loss(dict(teacher), teacher)) == 0.0
    moved = {**teacher, 'depth': teacher['depth'] * 1.1}
    assert float(distillation_loss(moved, teacher)) == pytest.approx(0.1, rel=1e-5)   # 10% of depth's magnitude


@pytest.mark.parametrize('mode', ['joint', 'lwf'])
def test_joint_modes_train_the_trunk_and_an_unknown_mode_is_refused(tiny_checkpoint, tmp_path, mode):
    outputs = {}
    x, prev = torch.randn(1, 3, 96, 160), torch.randn(1, 3, 96, 160)
    tasks = ['segmentation', 'depth', 'detection']
    for m in ('frozen', mode):
        out = tmp_path / f'{m}.pt'
        summary = train_instances(tiny_checkpoint, out, seeds=[100], frames=2, steps=3, batch_size=2, mode=m,
                                  trunk_lr=1e-2, log=lambda line: None)
        assert summary['mode'] == m
        with torch.no_grad():
            outputs[m] = load_checkpoint(out).model.eval()(x, tasks, previous_images=prev)
    assert any(not torch.equal(outputs['frozen'][t], outputs[mode][t]) for t in tasks), f'{mode} trains the trunk'
    with pytest.raises(ValueError, match='mode'):
        train_instances(tiny_checkpoint, tmp_path / 'x.pt', seeds=[100], frames=2, steps=1, mode='nope')


def test_the_head_trains_on_cityscapes_instance_ids_through_its_reader(tiny_checkpoint, tmp_path):
    from test_real_datasets import write_cityscapes
    from hydranet_ros.training.instances import cityscapes_frames
    root = write_cityscapes(tmp_path / 'cs')
    meta = load_checkpoint(tiny_checkpoint).metadata
    (image, ids, previous), = cityscapes_frames(meta, root)
    assert image.shape == (3, *meta.input_size) and ids.shape == tuple(meta.input_size) and previous is not None
    assert meta.detection_classes == ['car', 'person'], 'the tiny model: its person is no pedestrian'
    assert len(np.unique(ids)) == 3, 'the two cars apart, and no instance (the person is not a thing of the model)'
    summary = train_instances(tiny_checkpoint, tmp_path / 'cs.pt', steps=2, batch_size=1, cityscapes=root,
                              log=lambda line: None)
    assert summary['data'] == {'type': 'cityscapes', 'root': str(root), 'frames': 1}
    next(root.rglob('*_instanceIds.png')).unlink()
    with pytest.raises(ValueError, match='no Cityscapes frames with gtFine instanceIds'):
        cityscapes_frames(meta, root)


def test_both_backends_give_the_same_instances(tiny_checkpoint, tmp_path):
    from hydranet_ros.inference import Predictor
    from hydranet_ros.inference.backends import OnnxOptions
    out = tmp_path / 'with_instances.pt'
    train_instances(tiny_checkpoint, out, seeds=[100], frames=2, steps=2, batch_size=2, log=lambda m: None)
    frame = next(World(2000, size=(120, 200)).frames(1, start=10))
    results = {}
    for backend in ('torch', 'onnxruntime'):
        p = Predictor(str(out), device='cpu', backend=backend, onnx=OnnxOptions(cache_dir=str(tmp_path / 'onnx')))
        r, = p.predict(frame.rgb, tasks=['instances'])
        assert r.segmentation is not None, 'instances bring their segmentation'
        assert r.instances.dtype == np.uint16 and r.instances.shape == (120, 200)
        assert not (r.instances[~np.isin(r.segmentation, p.thing_ids)]).any(), 'ids only on thing classes'
        results[backend] = r
    agree = (results['torch'].instances == results['onnxruntime'].instances).mean()
    assert agree > 0.99
