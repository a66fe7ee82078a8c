"""The photometric self-supervision blocks against the synthetic world's exact geometry (ROS-free)."""
import math

import numpy as np
import pytest
import torch

from hydranet_ros.training import self_supervised as ss
from hydranet_ros.world import World


@pytest.fixture(scope='module')
def pair():
    """Two consecutive frames of a static styled street (clean sensor, textures anchored to the
    surfaces), the intrinsics and the true
    target -> source (this -> previous) camera transform."""
    world = World(11, 'vga', size=(120, 160), static=True, style='varied')
    prev, cur = list(world.frames(2))
    c0, r0 = world.scene.camera_frame(prev.stamp)
    c1, r1 = world.scene.camera_frame(cur.stamp)
    t = np.eye(4)
    t[:3, :3] = r0.T @ r1                      # X_prev = R0^T (R1 X_cur + c1 - c0)
    t[:3, 3] = r0.T @ (c1 - c0)
    k = np.array(world.camera.k).reshape(3, 3)

    def img(f):
        return torch.from_numpy(f.rgb.astype(np.float32) / 255).permute(2, 0, 1)[None]
    depth = torch.from_numpy(np.where(np.isfinite(cur.depth), cur.depth, 200.0).astype(np.float32))[None, None]
    return dict(prev=img(prev), cur=img(cur), depth=depth, finite=torch.from_numpy(np.isfinite(cur.depth))[None, None],
                k=torch.from_numpy(k).float()[None], t=torch.from_numpy(t).float()[None],
                flow=torch.from_numpy(np.nan_to_num(cur.flow).transpose(2, 0, 1))[None],
                flow_valid=torch.from_numpy(np.isfinite(cur.flow[..., 0]))[None, None])


def _loss(p, depth, t):
    warped, valid = ss.warp_by_depth(p['prev'], depth, p['k'], t)
    err = ss.photometric_error(warped, p['cur'])
    return ss.masked_mean(err, valid * p['finite'])


def test_true_depth_and_motion_explain_the_image_best(pair):
    p = pair
    true = _loss(p, p['depth'], p['t'])
    identity = ss.masked_mean(ss.photometric_error(p['prev'], p['cur']), p['finite'].float())
    assert true < 0.6 * identity
    for scale in (0.8, 1.25):                 # the wrong depth scale (for this motion) warps worse
        assert _loss(p, p['depth'] * scale, p['t']) > 1.25 * true
    still = torch.eye(4)[None]
    assert _loss(p, p['depth'], still) > 1.7 * true


def test_depth_warp_and_flow_warp_agree_with_the_flow_labels(pair):
    p = pair
    by_depth, valid = ss.warp_by_depth(p['prev'], p['depth'], p['k'], p['t'])
    by_flow, inside = ss.warp_by_flow(p['prev'], p['flow'])
    both = (valid * inside * p['flow_valid']).bool().expand_as(by_depth)
    assert both.float().mean() > 0.5
    assert (by_depth - by_flow).abs()[both].median() < 2e-3


def test_rigid_flow_of_the_true_depth_and_motion_is_the_flow_label(pair):
    p = pair
    flow = ss.rigid_flow(p['depth'], p['k'], p['t'])
    static = p['flow_valid'].expand_as(flow).bool() & p['finite'].expand_as(flow)
    assert static.float().mean() > 0.5
    assert (flow - p['flow']).abs()[static].median() < 0.02
    assert (ss.rigid_flow(p['depth'] * 2, p['k'], p['t']) - p['flow']).abs()[static].median() > 0.1


def test_the_photometric_gradient_leads_to_the_true_motion(pair):
    """From a translation 25% short of the truth, gradient steps through the differentiable warp
    (blurred images: a wider basin) move the estimate towards the true camera motion: the loss
    can train a pose head."""
    p = dict(pair)
    blur = torch.nn.AvgPool2d(5, 1, 2, count_include_pad=False)
    p['prev'], p['cur'] = blur(p['prev']), blur(p['cur'])
    true_t = p['t'][0, :3, 3]
    shift = torch.nn.Parameter(0.75 * true_t.clone())
    opt = torch.optim.Adam([shift], lr=0.02)
    for _ in range(40):
        opt.zero_grad()
        t = p['t'].clone()
        t[0, :3, 3] = shift
        _loss(p, p['depth'], t).backward()
        opt.step()
    assert float((shift.detach() - true_t).norm()) < 0.4 * float((0.25 * true_t).norm())


def test_automask_drops_pixels_that_did_not_move():
    target = torch.rand(1, 3, 16, 16)
    same = target.clone()
    moved = torch.roll(target, 1, dims=3)
    loss, mask = ss.min_reprojection(target, [moved], [same])
    assert mask.sum() == 0 and loss.sum() == 0
    loss, mask = ss.min_reprojection(target, [same], [moved])
    assert mask.mean() > 0.9


def test_minimum_over_sources_takes_the_better_warp():
    target = torch.rand(1, 3, 8, 8)
    good, bad = target.clone(), torch.rand(1, 3, 8, 8)
    loss, _ = ss.min_reprojection(target, [bad, good], [bad, bad], automask=False)
    assert loss.max() < 1e-6


def test_forward_backward_consistency_marks_occlusions():
    fw = torch.zeros(1, 2, 10, 10)
    fw[:, 0] = 2.0
    consistent = ss.forward_backward_occlusion(fw, -fw)
    assert consistent[..., 2:-2].sum() == 0
    broken = ss.forward_backward_occlusion(fw, torch.zeros_like(fw))
    assert broken.mean() == 1


def test_flow_loss_mask_cannot_be_emptied_by_inconsistent_flow():
    inside = torch.ones(2, 1, 4, 4)
    occluded = torch.zeros(2, 1, 4, 4)
    occluded[0] = 1.0                              # sample 0: everything "occluded"
    occluded[1, :, 0, 0] = 1.0                     # sample 1: one pixel occluded
    mask = ss.flow_loss_mask(inside, occluded)
    assert mask[0].sum() == 16 and mask[1].sum() == 15


def test_edge_aware_smoothness():
    img = torch.rand(1, 3, 12, 12)
    flat = torch.full((1, 1, 12, 12), 0.5)
    noisy = flat + 0.1 * torch.rand(1, 1, 12, 12)
    assert ss.edge_aware_smoothness(flat, img) == 0
    assert ss.edge_aware_smoothness(noisy, torch.zeros_like(img)) > ss.edge_aware_smoothness(noisy, img * 20)


def test_axis_angle_and_the_pose_head():
    t = ss.axis_angle_to_matrix(torch.tensor([[0.0, 0.1, 0.0]]), torch.tensor([[1.0, 2.0, 3.0]]))[0]
    c, s = math.cos(0.1), math.sin(0.1)
    np.testing.assert_allclose(t[:3, :3].numpy(), [[c, 0, s], [0, 1, 0], [-s, 0, c]], atol=1e-6)
    np.testing.assert_allclose(t[:3, 3].numpy(), [1, 2, 3])
    head = ss.PoseHead(16, width=8)
    out = head(torch.rand(2, 16, 2, 4), torch.rand(2, 16, 2, 4))
    assert out.shape == (2, 4, 4) and torch.allclose(out, torch.eye(4).expand(2, 4, 4), atol=0.05)
    out.sum().backward()
    assert head.net[-1].weight.grad is not None


def test_an_untrained_pose_head_still_gets_a_gradient_through_the_automask(pair):
    # regression: a pose head that starts at exactly no motion warps the previous frame onto
    # itself, auto-masking then drops every pixel and the loss has no gradient: depth never learned
    torch.manual_seed(0)
    head = ss.PoseHead(16, width=8)
    t = head(torch.rand(1, 16, 2, 4), torch.rand(1, 16, 2, 4))
    assert not torch.allclose(t, torch.eye(4)[None], atol=1e-7)
    depth = pair['depth'].clone().requires_grad_(True)
    warped, valid = ss.warp_by_depth(pair['prev'], depth, pair['k'], t)
    loss, mask = ss.min_reprojection(pair['cur'], [warped], [pair['prev']], [valid])
    assert mask.mean() > 0.05
    ss.masked_mean(loss, mask).backward()
    assert head.net[-1].weight.grad.abs().sum() > 0 and depth.grad.abs().sum() > 0


def test_intrinsics_follow_zoom_flip_and_letterbox():
    from hydranet_ros.training.datasets import SyntheticDataset
    from hydranet_ros.training.samples import crop_intrinsics, zoom_sample
    from hydranet_ros.world.camera import PinholeCamera
    ds = SyntheticDataset([3], 1, (96, 224), style='varied', cameras=['vga'], letterbox=True)
    s = ds.samples[0]
    cam = World(3, 'vga', size=s['image'].shape[:2], style='varied').camera
    np.testing.assert_allclose(s['intrinsics'], np.array(cam.k).reshape(3, 3))
    zoomed = zoom_sample(s, 2.0)
    h, w = s['image'].shape[:2]
    half = PinholeCamera(w, h, cam.fx, cam.fy, cam.cx, cam.cy)
    # zoom 2 = the centre half scaled back up: focal doubles, the principal point stays centred
    np.testing.assert_allclose(zoomed['intrinsics'][0, 0], 2 * half.fx)
    expected = crop_intrinsics(s['intrinsics'], w // 4, h // 4, 2, 2)
    np.testing.assert_allclose(zoomed['intrinsics'][:2, 2], expected[:2, 2])
    from hydranet_ros.training.samples import to_tensors
    flipped = to_tensors(s, 2, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), flip=True)
    assert float(flipped['intrinsics'][0, 2]) == pytest.approx(w - 1 - cam.cx)
    item = ds[0]
    assert item['has_intrinsics'] and item['image'].shape[-2:] == (96, 224)


def test_training_without_depth_or_flow_labels_runs_on_the_photometric_terms(tmp_path):
    from hydranet_ros.training.trainer import TrainConfig, train
    cfg = TrainConfig(
        name='ssl', model={'width_mult': 0.25, 'decoder_channels': 16, 'crp_stages': 1},
        data={'type': 'synthetic', 'style': 'varied', 'input_size': [64, 128], 'train_seeds': [1, 2],
              'frames_per_seed': 2, 'val_seeds': [1000], 'val_frames_per_seed': 1, 'labels': ['segmentation']},
        train={'steps': 3, 'batch_size': 2, 'eval_every': 100, 'output': str(tmp_path / 'ssl.pt'), 'threads': 1,
               'photometric': 1.0, 'flow_photometric': 1.0})
    result = train(cfg, progress=False, log=lambda *a: None)
    losses = result['losses']
    assert len(losses['photometric']) == 3 and len(losses['flow_photometric']) == 3
    assert np.isfinite(losses['photometric']).all() and np.isfinite(losses['flow_photometric']).all()
    assert losses['depth'] == [] and losses['flow'] == []      # no labels: no loss at all, only photometric
    state = torch.load(tmp_path / 'ssl.state.pt', weights_only=True)
    pose = {k: v for k, v in state['self_supervision'].items() if k.startswith('pose.')}
    assert pose and any(float(v.abs().sum()) > 0 for k, v in pose.items() if k.endswith('net.6.weight'))
    # with odometry and the rigid-flow term: same run, the pose head unused, the flow term larger
    cfg.data['odometry'] = True
    cfg.train.update(rigid_flow=1.0, output=str(tmp_path / 'odo.pt'))
    odo = train(cfg, progress=False, log=lambda *a: None)['losses']
    assert np.isfinite(odo['photometric']).all() and np.isfinite(odo['flow_photometric']).all()
    assert odo['flow_photometric'][0] > losses['flow_photometric'][0]


def test_median_scaled_depth_scoring_ignores_a_global_scale():
    from hydranet_ros.metrics import DepthMetric
    from hydranet_ros.training.evaluation import median_ratio
    gt = np.linspace(2, 30, 200, dtype=np.float32).reshape(10, 20)   # x 2.5 stays inside the 80 m range
    gt[0, 0] = np.inf                                            # sky: not scored, not in the median
    pred = np.where(np.isfinite(gt), 2.5 * gt, 100).astype(np.float32)
    ratio = median_ratio(pred, gt, 0.5, 80.0)
    assert ratio == pytest.approx(0.4)
    raw, scaled = DepthMetric(0.5, 80.0), DepthMetric(0.5, 80.0)
    raw.update(pred, gt)
    scaled.update(pred * np.float32(ratio), gt)
    assert raw.compute()['abs_rel'] == pytest.approx(1.5, rel=1e-3) and scaled.compute()['abs_rel'] < 1e-5


def test_the_next_frame_is_a_second_source_with_its_own_camera_motion():
    from hydranet_ros.training.datasets import SyntheticDataset
    ds = SyntheticDataset([11], 3, (96, 160), 'vga', 2, style='varied', odometry=True)
    assert ds.samples[0]['next_image'] is ds.samples[1]['image'] and ds.samples[-1].get('next_image') is None
    item, last = ds[0], ds[2]
    assert item['has_next'] and item['has_next_pose'] and not last['has_next']
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    cur, nxt = item['image'][None] * std + mean, item['next_image'][None] * std + mean
    depth = torch.nan_to_num(item['depth'], nan=200.0, posinf=200.0)[None, None]
    k = item['intrinsics'][None]

    def err(t):
        warped, valid = ss.warp_by_depth(nxt, depth, k, t)
        return float(ss.masked_mean(ss.photometric_error(warped, cur), valid))
    assert err(item['next_pose'][None]) < 0.6 * err(torch.eye(4)[None])
    assert err(item['next_pose'][None]) < 0.6 * err(torch.linalg.inv(item['next_pose'])[None])   # not the inverse
    # both sources through the training term: the true depth scores better than a wrong one
    ssl = ss.SelfSupervision(8, 1.0, 0.0, 0.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    batch = {k: v[None] for k, v in item.items()}
    right = ssl.terms(None, batch, {'depth': depth})['photometric']
    wrong = ssl.terms(None, batch, {'depth': depth * 1.5})['photometric']
    assert right < 0.8 * wrong


@pytest.mark.parametrize('factor', [2, 4])
def test_coarser_scales_keep_the_geometry(pair, factor):
    """The depth term at 1/2 and 1/4 resolution (intrinsics scaled with the images) still scores
    the true depth and motion best, and a wrong principal point worse."""
    p = pair
    frames = [(p['prev'], p['t'], None)]

    def score(depth, k=p['k']):
        loss, mask, _, _ = ss.SelfSupervision._reprojection(p['cur'], frames, depth, k, factor)
        return float(ss.masked_mean(loss, torch.ones_like(mask)))
    true = score(p['depth'])
    assert true < 0.9 * score(p['depth'] * 1.5) and true < 0.9 * score(p['depth'] / 1.5)
    shifted = p['k'].clone()
    shifted[:, 1, 2] += 4 * factor          # 4 pixels off at this level
    assert true < score(p['depth'], shifted)


def test_the_rigid_flow_pull_spares_the_pixels_the_segmentation_calls_movers():
    """train.rigid_flow_movers: where the network's own segmentation sees a mover class, the flow
    is not pulled to the rigid flow (its gradient there is the photometric term's alone); elsewhere
    the pull still acts."""
    from hydranet_ros.training.datasets import SyntheticDataset
    ds = SyntheticDataset([11], 2, (96, 160), 'vga', 2, style='varied', odometry=True)
    item = ds[1]
    batch = {k: v[None] for k, v in item.items()}
    depth = torch.nan_to_num(item['depth'], nan=200.0, posinf=200.0)[None, None]
    logits = torch.zeros(1, 3, 96, 160)
    logits[:, 2, :, :80] = 1.0                 # the left half is class 2 (a "mover"), the right half class 0

    def backward_flow(images, tasks, previous_images=None):   # the network's second pass: no motion
        return {'flow': torch.zeros(images.shape[0], 2, *images.shape[-2:])}

    def flow_grad(**kw):
        ssl = ss.SelfSupervision(8, 1.0, 1.0, 0.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), **kw)
        flow = torch.zeros(1, 2, 96, 160, requires_grad=True)
        ssl.terms(backward_flow, batch, {'depth': depth, 'flow': flow, 'segmentation': logits})[
            'flow_photometric'].backward()
        return flow.grad[0].abs().sum(0)
    plain, pulled, spared = flow_grad(), flow_grad(rigid_flow=1.0), flow_grad(rigid_flow=1.0, rigid_flow_movers=[2])
    left, right = (slice(None), slice(0, 80)), (slice(None), slice(80, None))
    assert not torch.allclose(pulled[left], plain[left]) and not torch.allclose(pulled[right], plain[right])
    assert torch.allclose(spared[left], plain[left])        # movers: the photometric gradient only
    assert not torch.allclose(spared[right], plain[right])  # the rest: still pulled
    with pytest.raises(ValueError, match='segmentation output'):
        ss.SelfSupervision(8, 1.0, 1.0, 0.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), rigid_flow=1.0,
                           rigid_flow_movers=[2]).terms(backward_flow, batch, {'depth': depth, 'flow': torch.zeros(
                               1, 2, 96, 160)})


@pytest.mark.parametrize('train, match', [
    ({'rigid_flow_movers': ['car']}, 'needs train.rigid_flow > 0'),
    ({'rigid_flow': 0.1, 'rigid_flow_movers': 'car'}, 'must be a list of class names'),
    ({'rigid_flow': 0.1, 'rigid_flow_movers': ['car'], 'tasks': ['depth', 'flow']}, 'segmentation task'),
])
def test_rigid_flow_movers_settings_are_checked(train, match):
    from hydranet_ros.training.trainer import TrainConfig
    with pytest.raises(ValueError, match=match):
        TrainConfig(name='x', train=train).resolved()


def test_rigid_flow_movers_must_be_classes_of_the_model():
    from hydranet_ros.training.trainer import _class_indices
    classes = [{'name': 'road'}, {'name': 'car'}, {'name': 'pedestrian'}]
    assert _class_indices(['pedestrian', 'car'], classes, 'k') == [2, 1]
    with pytest.raises(ValueError, match=r"\['bus'\] are not segmentation classes.*road"):
        _class_indices(['car', 'bus'], classes, 'train.rigid_flow_movers')


def test_an_unknown_mover_class_is_refused_before_anything_renders(tmp_path):
    from hydranet_ros.training.trainer import TrainConfig, train
    cfg = TrainConfig(name='x', data={'type': 'synthetic', 'train_seeds': list(range(500)), 'frames_per_seed': 50},
                      train={'steps': 1, 'rigid_flow': 0.1, 'photometric': 1.0, 'rigid_flow_movers': ['bus'],
                             'output': str(tmp_path / 'x.pt')})
    with pytest.raises(ValueError, match=r"rigid_flow_movers: \['bus'\]"):
        train(cfg, progress=False, log=lambda *a: None)      # 25000 frames would take an hour to render
