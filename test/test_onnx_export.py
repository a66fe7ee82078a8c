"""ONNX export of the single-frame heads and the flow head matches torch in onnxruntime."""
import numpy as np
import onnxruntime as ort
import pytest
import torch

from hydranet_ros.model import FLOW_FEATURES, HydraNet, HydraNetConfig
from hydranet_ros.model.onnx_export import SINGLE_FRAME_TASKS, export_onnx


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
    paths = export_onnx(model, tmp_path_factory.mktemp('onnx'), input_size=(96, 128))
    return model, paths


def _session(path):
    return ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])


def test_single_frame_graph_matches_torch(exported):
    model, paths = exported
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        ref = model(x, SINGLE_FRAME_TASKS, return_flow_features=True)
    outs = _session(paths['single_frame']).run(None, {'images': x.numpy()})
    for name, got in zip([*SINGLE_FRAME_TASKS, FLOW_FEATURES], outs):
        np.testing.assert_allclose(got, ref[name].numpy(), atol=1e-3, rtol=0, err_msg=name)


def test_flow_graph_with_previous_features_matches_torch(exported):
    model, paths = exported
    x0, x1 = torch.randn(1, 3, 96, 128), torch.randn(1, 3, 96, 128)
    sess = _session(paths['single_frame'])
    prev = sess.run([FLOW_FEATURES], {'images': x0.numpy()})[0]
    with torch.no_grad():
        ref = model(x1, ['flow'], previous_features=torch.from_numpy(prev))['flow']
    flow, = _session(paths['flow']).run(['flow'], {'images': x1.numpy(), 'previous_features': prev})
    np.testing.assert_allclose(flow, ref.numpy(), atol=1e-3, rtol=0)
    assert np.abs(ref.numpy()).max() > 1e-3   # a non-trivial field was compared
