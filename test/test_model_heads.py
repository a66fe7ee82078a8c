"""HydraNet forward: shapes, ranges, head subsets, single encoding, flow features (CPU, no ROS)."""
import pytest
import torch

from hydranet_ros import TASKS
from hydranet_ros.model import FLOW_FEATURES, HydraNet, HydraNetConfig, check_tasks


SMALL = dict(width_mult=0.5, decoder_channels=32, num_classes=5, num_detection_classes=2,
             depth_min=1.0, depth_max=50.0)
#: The flow head with warped updates at stride 16 and the stride-8 level (packed flow features).
WARPED_FLOW = dict(flow_iterations=1, flow_fine_radius=2)


def _randomise(net):
    """Non-trivial BatchNorm statistics and non-zero update layers, so eval mode and every
    flow level are really exercised."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    for block in [*net.heads['flow'].updates, getattr(net.heads['flow'], 'fine_update', None)]:
        if block is not None:
            torch.nn.init.normal_(block[-1].weight, std=0.05)
    return net.eval()


@pytest.fixture(scope='module', params=['one_cost_volume', 'warped_levels'])
def model(request):
    torch.manual_seed(0)
    extra = WARPED_FLOW if request.param == 'warped_levels' else {}
    return _randomise(HydraNet(HydraNetConfig(**SMALL, **extra)))


def _run(model, x, tasks, prev=None):
    with torch.no_grad():
        return model(x, tasks, previous_features=prev, return_flow_features=True)


@pytest.mark.parametrize('h,w', [(32, 32), (37, 45), (97, 130), (120, 401)])
def test_each_head_shape_and_finite_at_odd_sizes(model, h, w):
    torch.manual_seed(h * w)
    x = torch.randn(2, 3, h, w)
    prev = _run(model, torch.randn(2, 3, h, w), ())[FLOW_FEATURES]
    out = _run(model, x, None, prev)
    cfg = model.config
    assert out['segmentation'].shape == (2, cfg.num_classes, h, w)
    assert out['depth'].shape == (2, 1, h, w)
    assert out['flow'].shape == (2, 2, h, w)
    assert out['detection'].shape == (2, cfg.num_detection_classes + 4, (h + 3) // 4, (w + 3) // 4)
    for task in TASKS:
        assert torch.isfinite(out[task]).all(), task
    depth = out['depth']
    assert depth.min() >= cfg.depth_min - 1e-4 and depth.max() <= cfg.depth_max + 1e-3
    heat = out['detection'][:, :cfg.num_detection_classes]
    assert heat.min() >= 0 and heat.max() <= 1
    assert (out['detection'][:, cfg.num_detection_classes:cfg.num_detection_classes + 2] > 0).all()


def test_only_requested_heads_are_returned_and_run(model):
    calls = []
    hooks = [model.heads[t].register_forward_hook(lambda m, i, o, t=t: calls.append(t)) for t in TASKS]
    try:
        out = _run(model, torch.randn(1, 3, 64, 96), ['depth'])
    finally:
        for hk in hooks:
            hk.remove()
    assert set(out) == {'depth', FLOW_FEATURES}
    assert calls == ['depth']


def test_subset_of_heads_equals_those_heads_of_an_all_heads_call(model):
    torch.manual_seed(1)
    x, x_prev = torch.randn(1, 3, 70, 90), torch.randn(1, 3, 70, 90)
    prev = _run(model, x_prev, ())[FLOW_FEATURES]
    full = _run(model, x, None, prev)
    for subset in (['segmentation'], ['depth'], ['flow'], ['detection'], ['depth', 'flow'],
                   ['segmentation', 'detection']):
        part = _run(model, x, subset, prev)
        assert set(part) == set(subset) | {FLOW_FEATURES}
        for task in subset:
            assert torch.equal(part[task], full[task]), task


def test_encoder_and_decoder_run_once_whatever_the_number_of_heads(model):
    counts = {'encoder': 0, 'decoder': 0}
    hooks = [getattr(model, name).register_forward_hook(
        lambda m, i, o, name=name: counts.__setitem__(name, counts[name] + 1)) for name in counts]
    prev = _run(model, torch.randn(1, 3, 64, 64), ())[FLOW_FEATURES]
    counts.update(encoder=0, decoder=0)
    try:
        _run(model, torch.randn(1, 3, 64, 64), None, prev)
    finally:
        for hk in hooks:
            hk.remove()
    assert counts == {'encoder': 1, 'decoder': 1}


def test_cached_flow_features_equal_recomputing_the_previous_frame(model):
    torch.manual_seed(2)
    frame0, frame1 = torch.randn(1, 3, 96, 160), torch.randn(1, 3, 96, 160)
    cached = _run(model, frame0, ['depth'])[FLOW_FEATURES]          # kept from frame 0's pass
    with torch.no_grad():
        recomputed = model.encode_flow_features(frame0)             # encoder again, frame 0
    assert torch.equal(cached, recomputed)
    flow_cached = _run(model, frame1, ['flow'], cached)['flow']
    flow_recomputed = _run(model, frame1, ['flow'], recomputed)['flow']
    assert torch.equal(flow_cached, flow_recomputed)
    # and the previous frame matters: other previous features give other flow
    other = _run(model, torch.randn(1, 3, 96, 160), ())[FLOW_FEATURES]
    assert not torch.allclose(_run(model, frame1, ['flow'], other)['flow'], flow_cached)


def test_flow_needs_matching_previous_features(model):
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match='previous_features'):
        _run(model, x, ['flow'])
    wrong = _run(model, torch.randn(1, 3, 96, 64), ())[FLOW_FEATURES]
    with pytest.raises(ValueError, match='do not match'):
        _run(model, x, ['flow'], wrong)


def test_bad_inputs_are_refused_clearly(model):
    with pytest.raises(ValueError, match='smaller than the network minimum'):
        _run(model, torch.randn(1, 3, 31, 200), ['depth'])
    with pytest.raises(ValueError, match=r'\[B, 3, H, W\]'):
        _run(model, torch.randn(1, 4, 64, 64), ['depth'])
    with pytest.raises(ValueError, match='unknown task'):
        check_tasks(['depth', 'normals'])


def test_new_flow_levels_start_as_the_trained_flow():
    """init_from relies on this: updates start at zero, so a trained one-cost-volume model with
    the new levels added gives the same flow until they are trained."""
    torch.manual_seed(1)
    base = _randomise(HydraNet(HydraNetConfig(**SMALL)))
    grown = HydraNet(HydraNetConfig(**SMALL, **WARPED_FLOW)).eval()
    missing, unexpected = grown.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith('heads.flow.') for k in missing)
    x0, x1 = torch.randn(1, 3, 64, 96), torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        flow_base = base(x1, ['flow'], previous_features=base.encode_flow_features(x0))['flow']
        flow_grown = grown(x1, ['flow'], previous_features=grown.encode_flow_features(x0))['flow']
    assert torch.allclose(flow_base, flow_grown, atol=1e-5)


def test_config_validation():
    with pytest.raises(ValueError, match='depth_min < depth_max'):
        HydraNetConfig(depth_min=10, depth_max=5)
    with pytest.raises(ValueError, match='flow_stride'):
        HydraNetConfig(flow_stride=4)
    with pytest.raises(ValueError, match='flow_fine_radius needs flow_stride 16'):
        HydraNetConfig(flow_stride=8, flow_fine_radius=2)
    with pytest.raises(ValueError, match='flow_iterations'):
        HydraNetConfig(flow_iterations=-1)
    cfg = HydraNetConfig(num_classes=7)
    assert HydraNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match='unknown HydraNetConfig keys'):
        HydraNetConfig.from_dict({**cfg.to_dict(), 'n_layers': 3})


def test_every_head_has_one_signature_and_its_own_output_stride():
    """HydraNet.forward calls each head with HeadInputs and crops by the head's output_stride,
    so a head with another stride needs no change there."""
    from torch import nn as tnn
    from hydranet_ros.model.head_inputs import HeadInputs
    model = HydraNet(HydraNetConfig(width_mult=0.35, decoder_channels=16)).eval()
    assert {t: h.output_stride for t, h in model.heads.items()} == {
        'segmentation': 1, 'depth': 1, 'flow': 1, 'detection': 4}

    class Stride8(tnn.Module):
        output_stride = 8

        def forward(self, inputs: HeadInputs):
            h, w = inputs.size
            return torch.zeros(inputs.decoded.shape[0], 3, h // 8, w // 8)
    model.heads['detection'] = Stride8()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 70, 100), ['detection'])
    assert out['detection'].shape == (1, 3, 9, 13)         # ceil(70 / 8), ceil(100 / 8)
