"""Predictor: numpy images of any size in, per-image typed results in image pixels out."""
import cv2
import numpy as np
import pytest
import torch

from hydranet_ros.inference import FlowStatus, Letterbox, OutOfMemory, Predictor, resolve_device
from hydranet_ros.model import HydraNet, HydraNetConfig
from hydranet_ros.model.checkpoint import CheckpointMetadata, save_checkpoint

CFG = HydraNetConfig(width_mult=0.35, decoder_channels=16, num_classes=4, num_detection_classes=2)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('ckpt') / 'p.pt'
    meta = CheckpointMetadata(architecture=CFG.to_dict(), input_size=[96, 160],
                              detection_classes=['car', 'person'])
    save_checkpoint(path, HydraNet(CFG), meta)
    return path


@pytest.fixture
def predictor(checkpoint):
    return Predictor(checkpoint, device='cpu', backend='torch', score_threshold=0.0, max_detections=5)


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize('h,w', [(375, 1242), (480, 640), (33, 57), (200, 90)])
def test_outputs_are_in_each_images_own_pixels(predictor, h, w):
    r0, = predictor.predict(_image(h, w), stamps_ns=[0])
    assert r0.image_size == (h, w)
    assert r0.segmentation.shape == (h, w) and r0.segmentation.dtype == np.uint8
    assert r0.segmentation.max() < CFG.num_classes
    assert r0.depth.shape == (h, w) and r0.depth.dtype == np.float32
    assert np.isfinite(r0.depth).all() and r0.depth.min() >= CFG.depth_min - 1e-3
    assert r0.flow is None and r0.flow_status is FlowStatus.NO_PREVIOUS_FRAME
    assert len(r0.detections) == 5
    for d in r0.detections:
        assert 0 <= d.x1 < d.x2 <= w and 0 <= d.y1 < d.y2 <= h
        assert d.class_name in ('car', 'person') and 0 <= d.score <= 1
    r1, = predictor.predict(_image(h, w, 1), stamps_ns=[100000000])
    assert r1.flow_status is FlowStatus.OK and r1.flow_previous_stamp_ns == 0
    assert r1.flow.shape == (h, w, 2) and r1.flow.dtype == np.float32 and np.isfinite(r1.flow).all()


def test_flow_at_a_requested_resolution_is_rescaled(predictor):
    img0, img1 = _image(120, 200), _image(120, 200, 1)
    predictor.predict(img0, stamps_ns=[0])
    full, = predictor.predict(img1, stamps_ns=[100000000])
    predictor.reset()
    predictor.predict(img0, stamps_ns=[0])
    half, = predictor.predict(img1, stamps_ns=[100000000], flow_size=(60, 100))
    assert half.flow.shape == (60, 100, 2)
    # The mean vector halves with the grid.
    assert np.allclose(half.flow.mean(axis=(0, 1)), full.flow.mean(axis=(0, 1)) / 2, atol=0.05)


def test_batched_cameras_each_keep_their_own_previous_frame(checkpoint):
    a, b = Predictor(checkpoint, device='cpu', backend='torch'), Predictor(checkpoint, device='cpu', backend='torch')
    f0 = [_image(100, 150, 0), _image(80, 120, 1)]
    f1 = [_image(100, 150, 2), _image(80, 120, 3)]
    a.predict(f0, streams=['left', 'right'], stamps_ns=[1000000000, 1000000000])
    batched = a.predict(f1, streams=['left', 'right'], stamps_ns=[1050000000, 1060000000])
    singles = []
    for i, s in enumerate(['left', 'right']):
        b.predict(f0[i], streams=[s], stamps_ns=[1000000000])
        singles += b.predict(f1[i], streams=[s], stamps_ns=[[1_050_000_000, 1_060_000_000][i]])
    for got, want in zip(batched, singles):
        assert got.stream == want.stream and got.flow_status is FlowStatus.OK
        np.testing.assert_allclose(got.flow, want.flow, atol=1e-4)
        np.testing.assert_allclose(got.depth, want.depth, rtol=1e-5)


def test_cache_resets_on_size_change_and_time_gap(predictor):
    predictor.predict(_image(100, 150), stamps_ns=[0])
    r, = predictor.predict(_image(110, 150), stamps_ns=[100000000])
    assert r.flow is None and r.flow_status is FlowStatus.SIZE_CHANGED and 'size changed' in r.flow_status_detail
    r, = predictor.predict(_image(110, 150), stamps_ns=[5000000000])
    assert r.flow is None and r.flow_status is FlowStatus.GAP_TOO_LONG and 'exceeds the limit' in r.flow_status_detail


@pytest.mark.parametrize('bad,err', [
    (np.zeros((20, 300, 3), np.uint8), 'too small'),
    (np.zeros((100, 100), np.uint8), 'HxWx3'),
    (np.zeros((100, 100, 4), np.uint8), 'HxWx3'),
    (np.zeros((100, 100, 3), np.float32), 'uint8'),
])
def test_bad_images_are_refused_clearly(predictor, bad, err):
    with pytest.raises(ValueError, match=err):
        predictor.predict(bad)


def test_bad_settings_are_refused_clearly(checkpoint):
    with pytest.raises(ValueError, match='precision'):
        Predictor(checkpoint, device='cpu', backend='torch', precision='fp8')
    with pytest.raises(ValueError, match='unknown device'):
        resolve_device('tpu')
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='CUDA is not available'):
            resolve_device('cuda:0')
    with pytest.raises(ValueError, match='multiples of 32'):
        Predictor(checkpoint, device='cpu', backend='torch', input_size=(100, 160))
    p = Predictor(checkpoint, device='cpu', backend='torch', tasks=['depth'])
    with pytest.raises(ValueError, match='not enabled'):
        p.predict(_image(64, 64), tasks=['segmentation'])


def test_only_requested_tasks_are_filled(predictor):
    r, = predictor.predict(_image(64, 64), tasks=['depth'])
    assert r.depth is not None
    assert r.segmentation is None and r.detections is None and r.flow is None


def test_bf16_autocast_runs_on_cpu(checkpoint):
    p = Predictor(checkpoint, device='cpu', backend='torch', precision='bf16')
    r, = p.predict(_image(96, 160))
    assert r.depth.dtype == np.float32 and np.isfinite(r.depth).all()


def test_fused_predictor_matches_the_unfused_model(checkpoint):
    fused = Predictor(checkpoint, device='cpu', backend='torch', fuse=True, channels_last=True)
    plain = Predictor(checkpoint, device='cpu', backend='torch', fuse=False, channels_last=False)
    img = _image(96, 160)
    a, b = fused.predict(img, tasks=['depth'])[0], plain.predict(img, tasks=['depth'])[0]
    np.testing.assert_allclose(a.depth, b.depth, rtol=1e-4)


def test_letterbox_maps_boxes_back_to_image_pixels():
    lb = Letterbox.fit((375, 1242), (384, 640))
    assert lb.content_size == (193, 640)
    boxes = np.array([[64.0, 32.0, 128.0, 96.0], [600.0, 150.0, 700.0, 300.0]])
    back = lb.box_to_image(boxes.copy())
    np.testing.assert_allclose(back[0], boxes[0] * 1242 / 640, rtol=1e-6)
    assert back[1, 2] == 1242 and back[1, 3] == 375    # clipped to the image


def test_warmup_leaves_no_flow_state(checkpoint):
    p = Predictor(checkpoint, device='cpu', backend='torch')
    p.warmup(2)
    assert len(p.cache) == 0


def test_letterbox_pads_with_the_given_value_and_keeps_the_content():
    img = np.random.default_rng(1).integers(0, 256, (50, 100, 3), dtype=np.uint8)
    lb = Letterbox.fit(img.shape[:2], (64, 96))            # scale 0.96 -> content 48x96
    out = np.full((64, 96, 3), 7, np.uint8)                  # stale data must be overwritten
    lb.apply(img, np.array([1, 2, 3], np.uint8), out=out)
    assert lb.content_size == (48, 96)
    assert (out[48:] == [1, 2, 3]).all()
    np.testing.assert_array_equal(out[:48, :96], cv2.resize(img, (96, 48), interpolation=cv2.INTER_AREA))
    exact = np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    np.testing.assert_array_equal(Letterbox.fit((64, 96), (64, 96)).apply(exact, 0), exact)


def test_running_out_of_memory_is_one_exception_type_whatever_the_device():
    """The node catches OutOfMemory; torch says it two ways (CUDA's type, the CPU allocator's text)."""
    from hydranet_ros.inference.predictor import _as_out_of_memory
    assert isinstance(_as_out_of_memory(torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2 GiB')),
                      OutOfMemory)
    try:
        torch.empty(2 ** 50, dtype=torch.uint8)     # a real failed CPU allocation
    except RuntimeError as exc:
        cpu_failure = exc
    assert isinstance(_as_out_of_memory(cpu_failure), OutOfMemory)
    assert _as_out_of_memory(RuntimeError('shape mismatch')) is None


def test_stamps_are_integer_nanoseconds_and_stay_exact_at_epoch_times(predictor):
    t0 = 1_795_000_000_123_456_789                  # an epoch-scale stamp float seconds cannot hold
    predictor.predict(_image(96, 128), stamps_ns=[t0])
    r, = predictor.predict(_image(96, 128, 1), stamps_ns=[t0 + 100_000_000])
    assert r.flow_previous_stamp_ns == t0 and r.stamp_ns == t0 + 100_000_000
    with pytest.raises(TypeError, match='integer nanoseconds'):
        predictor.predict(_image(96, 128), stamps_ns=[1.5])
