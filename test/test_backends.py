"""The onnxruntime backend gives what the torch backend gives, frame for frame, on the bundled
model: single frames, flow sequences and a two-camera batch; the graph cache, the provider
choice and the backend's configuration errors."""
import hashlib

import numpy as np
import pytest
import torch

from hydranet_ros import EXTRA_OUTPUTS
from hydranet_ros.inference import Predictor
from hydranet_ros.inference.backends import OnnxOptions, resolve_providers
from hydranet_ros.model import HydraNet, HydraNetConfig
from hydranet_ros.model.onnx_export import GraphCache, export_graph
from hydranet_ros.model.registry import weights
from hydranet_ros.world import World

#: Stated tolerances of the parity tests (bundled model, fp32, CPU provider).
SEGMENTATION_AGREEMENT = 0.995     # share of pixels with the same class
DEPTH_TOLERANCE_M = 1e-3           # absolute, metres (depths span 0.5-80 m)
FLOW_TOLERANCE_PX = 1e-2           # absolute, pixels of the output grid
BOX_TOLERANCE_PX = 1e-2
SCORE_TOLERANCE = 1e-4


@pytest.fixture(scope='module')
def drives():
    """Two short synthetic drives at 640x480 (two cameras), rendered once."""
    return [[f.rgb for f in World(seed, size=(480, 640)).frames(4, start=5)] for seed in (2000, 2001)]


@pytest.fixture(scope='module')
def predictors(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp('onnx'))
    common = dict(device='cpu', score_threshold=0.2)
    return (Predictor(weights().path(), backend='torch', **common),
            Predictor(weights().path(), backend='onnxruntime', onnx=OnnxOptions(cache_dir=cache), **common))


def _assert_same(a, b):
    assert a.image_size == b.image_size and a.flow_status is b.flow_status
    if a.segmentation is not None:
        agree = (a.segmentation == b.segmentation).mean()
        assert agree >= SEGMENTATION_AGREEMENT, f'segmentation agrees on {agree:.4f} of the pixels'
    for name, tol in (('depth', DEPTH_TOLERANCE_M), ('depth_uncertainty', DEPTH_TOLERANCE_M),
                      ('flow', FLOW_TOLERANCE_PX)):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.shape == y.shape and np.abs(x - y).max() <= tol, f'{name}: {np.abs(x - y).max()}'
    if a.detections is not None:
        assert len(a.detections) == len(b.detections)
        for p, q in zip(a.detections, b.detections):
            assert p.class_id == q.class_id and abs(p.score - q.score) <= SCORE_TOLERANCE
            assert np.allclose([p.x1, p.y1, p.x2, p.y2], [q.x1, q.y1, q.x2, q.y2], atol=BOX_TOLERANCE_PX)


def test_single_frames_and_flow_sequences_agree(predictors, drives):
    torch_p, onnx_p = predictors
    compared = {'flow': 0, 'detections': 0}
    for camera, frames in enumerate(drives):
        for p in predictors:
            p.reset()
        for k, image in enumerate(frames):
            stamp = [1_000_000_000 + k * 100_000_000]
            a, = torch_p.predict(image, stamps_ns=stamp)
            b, = onnx_p.predict(image, stamps_ns=stamp)
            _assert_same(a, b)
            compared['flow'] += a.flow is not None and np.abs(a.flow).max() > 0.5
            compared['detections'] += len(a.detections)
    # a sequence's later frames have flow; the drives have cars in view
    assert compared['flow'] >= 2 * (len(drives[0]) - 1) and compared['detections'] >= 4


def test_two_camera_batch_agrees_with_one_camera_new(predictors, drives):
    """A batch in which one camera has a previous frame and the other has none yet (the graph's
    per-image valid flag), then both have one."""
    streams = ['front', 'left']
    for p in predictors:
        p.reset()
        p.predict(drives[0][0], streams=['front'], stamps_ns=[10])
    for k in (1, 2):
        stamps = [10 + k * 100_000_000] * 2
        batch = [drives[0][k], drives[1][k]]
        a = predictors[0].predict(batch, streams=streams, stamps_ns=stamps)
        b = predictors[1].predict(batch, streams=streams, stamps_ns=stamps)
        if k == 1:
            assert [r.flow_status.name for r in b] == ['OK', 'NO_PREVIOUS_FRAME']
        for x, y in zip(a, b):
            _assert_same(x, y)


def test_lazy_heads_run_a_graph_of_their_own(predictors, drives):
    onnx_p = predictors[1]
    r, = onnx_p.predict(drives[0][0], tasks=['depth'], streams=['depth-only'], stamps_ns=[5])
    assert r.depth is not None and r.segmentation is None and r.detections is None
    assert ('depth',) in onnx_p.runner._sessions
    d, = predictors[0].predict(drives[0][0], tasks=['depth'], streams=['depth-only'], stamps_ns=[5])
    _assert_same(d, r)


def test_graph_cache_exports_once_per_checkpoint_size_and_heads(tmp_path):
    options = OnnxOptions(cache_dir=str(tmp_path))
    first = Predictor(weights().path(), device='cpu', backend='onnxruntime', onnx=options)
    first.prepare()
    extras = [t for t in first.tasks if t in EXTRA_OUTPUTS]
    assert first.runner.exports == 2 * 2 ** len(extras) == 8   # with and without flow, each subset of the extras
    again = Predictor(weights().path(), device='cpu', backend='onnxruntime', onnx=options)
    again.prepare()
    assert again.runner.exports == 0
    files = sorted(p.name for p in tmp_path.glob('*.onnx'))
    size = 'x'.join(str(v) for v in reversed(weights().load().metadata.input_size))     # WxH
    assert len(files) == 8 and all(weights().sha256[:16] in f and size in f for f in files)
    other = Predictor(weights().path(), device='cpu', backend='onnxruntime', onnx=options, input_size=(96, 128))
    other.prepare([('depth',)])
    assert other.runner.exports == 1 and len(list(tmp_path.glob('*128x96-depth-*.onnx'))) == 1
    assert not list(tmp_path.glob('*.tmp'))


def test_export_is_deterministic(tmp_path):
    model = weights().load().model
    digests = {hashlib.sha256(export_graph(model, tmp_path / f'{i}.onnx', (64, 96)).read_bytes()).hexdigest()
               for i in range(2)}
    assert len(digests) == 1


def test_graph_cache_key_names_every_input_of_the_graph(tmp_path):
    cache = GraphCache(tmp_path)
    keys = {cache.path_for('ab' * 32, size, tasks, fp16)
            for size in ((128, 416), (416, 128)) for tasks in (['depth'], ['depth', 'flow'])
            for fp16 in (False, True)}
    assert len(keys) == 8


@pytest.mark.parametrize('providers,device,available,expected', [
    (['auto'], 'auto', ['CPUExecutionProvider'], ['CPUExecutionProvider']),
    (['auto'], 'auto', ['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider'],
     ['CUDAExecutionProvider', 'CPUExecutionProvider']),
    (['auto'], 'cpu', ['CUDAExecutionProvider', 'CPUExecutionProvider'], ['CPUExecutionProvider']),
    (['tensorrt', 'cuda'], 'cuda:1', ['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider'],
     ['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider']),
    (['CPUExecutionProvider'], 'auto', ['CPUExecutionProvider'], ['CPUExecutionProvider']),
])
def test_provider_choice(providers, device, available, expected):
    assert resolve_providers(providers, device, available) == expected


@pytest.mark.parametrize('providers,device,problem', [
    (['CUDAExecutionProvider'], 'auto', "['CUDAExecutionProvider'] are not available here"),
    (['tensorrt'], 'auto', "['TensorrtExecutionProvider'] are not available"),
    (['auto'], 'cuda', 'has no CUDA provider'),
    (['cpu'], 'cuda:0', 'are CPU only'),
    (['auto', 'cpu'], 'auto', 'cannot be combined'),
    (['auto'], 'gpu', "unknown device 'gpu'"),
])
def test_a_provider_that_is_not_there_is_an_error_never_a_fallback(providers, device, problem):
    with pytest.raises(ValueError, match=problem.replace('[', r'\[').replace(']', r'\]')):
        resolve_providers(providers, device, ['CPUExecutionProvider'])


def test_cpu_device_with_a_gpu_provider_is_refused():
    with pytest.raises(ValueError, match="device 'cpu' contradicts"):
        resolve_providers(['cuda'], 'cpu', ['CUDAExecutionProvider', 'CPUExecutionProvider'])


@pytest.mark.parametrize('kwargs,problem', [
    (dict(precision='bf16'), 'bf16'),
    (dict(precision='fp16'), 'needs the CUDA or TensorRT provider'),
    (dict(onnx=OnnxOptions(providers=('CUDAExecutionProvider',))), 'not available here'),
    (dict(backend='tensorflow'), 'backend must be one of'),
])
def test_predictor_refuses_what_the_backend_cannot_do(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        Predictor(weights().path(), device='cpu', **{'backend': 'onnxruntime', **kwargs})


def test_an_invalid_previous_frame_is_replaced_by_the_frame_itself():
    """previous_valid False: the flow equals the flow against the frame's own features."""
    torch.manual_seed(0)
    model = HydraNet(HydraNetConfig(width_mult=0.35, decoder_channels=16)).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        own = model.encode_flow_features(x)
        garbage = torch.randn_like(own) * 5
        mixed = model(x, ['flow'], previous_features=torch.stack([garbage[0], garbage[1]]),
                      previous_valid=torch.tensor([True, False]))['flow']
        ref_valid = model(x[:1], ['flow'], previous_features=garbage[:1])['flow']
        ref_self = model(x[1:], ['flow'], previous_features=own[1:])['flow']
    torch.testing.assert_close(mixed[:1], ref_valid, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mixed[1:], ref_self, atol=1e-5, rtol=1e-4)


def test_depth_is_metric_for_the_camera_in_use_via_its_focal_length(predictors):
    """The synthetic world rendered through lenses of 1x, 1.5x and 0.75x the training focal
    length: given each camera's focal length, depth error stays near the training camera's;
    without it, a zoomed lens makes everything look nearer (or farther) by the zoom."""
    from hydranet_ros.world import PinholeCamera
    p = predictors[1]
    base = PinholeCamera.preset('kitti')
    scaled, raw = {}, {}
    for zoom in (1.0, 1.5, 0.75):
        cam = PinholeCamera(1242, 375, base.fx * zoom, base.fy * zoom, base.cx, base.cy)
        errs, errs_raw = [], []
        for f in World(2001, camera=cam).frames(4, start=5):
            r, = p.predict(f.rgb, tasks=['depth'], stamps_ns=[0], focal_px=[cam.fx])
            u, = p.predict(f.rgb, tasks=['depth'], stamps_ns=[0])
            assert r.depth_scale == pytest.approx(zoom, rel=1e-6) and u.depth_scale is None
            ok = np.isfinite(f.depth) & (f.depth > 0.5) & (f.depth < 80)
            errs.append(np.mean(np.abs(r.depth[ok] - f.depth[ok]) / f.depth[ok]))
            errs_raw.append(np.mean(np.abs(u.depth[ok] - f.depth[ok]) / f.depth[ok]))
        scaled[zoom], raw[zoom] = float(np.mean(errs)), float(np.mean(errs_raw))
    for zoom in (1.5, 0.75):
        assert raw[zoom] > 0.2, raw                                  # the problem is real
        assert abs(scaled[zoom] - scaled[1.0]) < 0.06, scaled        # and the focal ratio removes it
    with pytest.raises(ValueError, match='focal_px'):
        p.predict(np.zeros((64, 64, 3), np.uint8), focal_px=[0.0])
