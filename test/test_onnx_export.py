"""The single deployment graph matches torch in onnxruntime: every head, flow with the previous
frame's features, a batch mixing images with and without a previous frame."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

from hydranet_ros import TASKS
from hydranet_ros.model import FLOW_FEATURES, HydraNet, HydraNetConfig
from hydranet_ros.model.onnx_export import export_onnx


@pytest.fixture(scope='module', params=['one_cost_volume', 'warped_levels'])
def exported(tmp_path_factory, request):
    torch.manual_seed(0)
    extra = dict(flow_iterations=1, flow_fine_radius=2) if request.param == 'warped_levels' else {}
    model = HydraNet(HydraNetConfig(width_mult=0.5, decoder_channels=32, **extra)).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    flow = model.heads['flow']
    for block in [*flow.updates, getattr(flow, 'fine_update', None)]:
        if block is not None:   # updates start at zero; make them count
            torch.nn.init.normal_(block[-1].weight, std=0.05)
    path = export_onnx(model, tmp_path_factory.mktemp('onnx'), input_size=(96, 128))
    return model, path


def _session(path):
    return ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])


def test_every_head_and_the_features_match_torch(exported):
    model, path = exported
    x0, x1 = torch.randn(2, 3, 96, 128), torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        previous = model.encode_flow_features(x0)
        ref = model(x1, TASKS, previous_features=previous, return_flow_features=True)
    sess = _session(path)
    assert [i.name for i in sess.get_inputs()] == ['images', 'previous_features', 'previous_valid']
    outs = sess.run(None, {'images': x1.numpy(), 'previous_features': previous.numpy(),
                           'previous_valid': np.ones(2, np.bool_)})
    got = dict(zip([o.name for o in sess.get_outputs()], outs))
    assert list(got) == [*TASKS, FLOW_FEATURES]
    seg = ref['segmentation'].argmax(1).numpy()
    assert got['segmentation'].dtype == np.uint8 and (got['segmentation'] == seg).mean() > 0.995
    for name in ('depth', 'flow', 'detection', FLOW_FEATURES):
        np.testing.assert_allclose(got[name], ref[name].numpy(), atol=1e-3, rtol=0, err_msg=name)
    assert np.abs(ref['flow'].numpy()).max() > 1e-3   # a non-trivial field was compared


def test_batch_mixing_valid_and_missing_previous_frames(exported):
    model, path = exported
    x0, x1 = torch.randn(3, 3, 96, 128), torch.randn(3, 3, 96, 128)
    valid = torch.tensor([True, False, True])
    with torch.no_grad():
        previous = model.encode_flow_features(x0)
        ref = model(x1, ['flow'], previous_features=previous, previous_valid=valid)['flow']
    flow = _session(path).run(['flow'], {'images': x1.numpy(), 'previous_features': previous.numpy(),
                                         'previous_valid': valid.numpy()})[0]
    np.testing.assert_allclose(flow, ref.numpy(), atol=1e-3, rtol=0)
