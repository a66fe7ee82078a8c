"""Flow resizing, local correlation, temporal cache and detection decoding on hand-made data."""
import pytest
import torch

from hydranet_ros.model import decode_detections, local_correlation, resize_flow
from hydranet_ros.model.detection_head import STRIDE
from hydranet_ros.model.flow_head import pack_flow_features, unpack_flow_features
from hydranet_ros.model.flow_ops import warp_previous
from hydranet_ros.inference.temporal_cache import FlowFeatureCache


def test_resize_flow_rescales_vectors_with_the_grid():
    flow = torch.zeros(1, 2, 10, 20)
    flow[:, 0], flow[:, 1] = 2.0, -1.0
    up = resize_flow(flow, (20, 60))    # x3 wide, x2 high
    assert up.shape == (1, 2, 20, 60)
    assert torch.allclose(up[:, 0], torch.full((1, 20, 60), 6.0))
    assert torch.allclose(up[:, 1], torch.full((1, 20, 60), -2.0))
    down = resize_flow(up, (5, 10))
    assert torch.allclose(down[:, 0], torch.full((1, 5, 10), 1.0))
    assert torch.allclose(down[:, 1], torch.full((1, 5, 10), -0.5))
    assert resize_flow(flow, (10, 20)) is flow


def test_local_correlation_peaks_at_the_true_shift():
    torch.manual_seed(0)
    prev = torch.randn(1, 16, 12, 14)
    # content moves +2 in x and -1 in y from prev to current: current(p) = prev(p - d)
    cur = torch.roll(prev, shifts=(-1, 2), dims=(2, 3))
    radius = 3
    cost = local_correlation(cur, prev, radius)
    assert cost.shape == (1, (2 * radius + 1) ** 2, 12, 14)
    best = cost[0, :, 5, 7].argmax().item()
    dy, dx = best // (2 * radius + 1) - radius, best % (2 * radius + 1) - radius
    # current(p) matches prev(p + (dy, dx)) with (dy, dx) = -d = (+1, -2)
    assert (dy, dx) == (1, -2)


def _correlation_by_shifts(current, previous, radius):
    """The definition, one shifted copy at a time (how the package computed it until the
    vectorised version): the reference the vectorised cost volume must equal."""
    h, w = current.shape[-2:]
    padded = torch.nn.functional.pad(previous, (radius,) * 4)
    size = 2 * radius + 1
    return torch.cat([(current * padded[:, :, dy:dy + h, dx:dx + w]).mean(dim=1, keepdim=True)
                      for dy in range(size) for dx in range(size)], dim=1)


@pytest.mark.parametrize('shape,radius', [((1, 48, 8, 26), 4), ((2, 16, 5, 7), 2), ((1, 32, 16, 52), 3),
                                          ((3, 8, 4, 4), 1), ((1, 4, 9, 13), 5)])
def test_vectorised_correlation_equals_the_shifted_copies(shape, radius):
    torch.manual_seed(1)
    cur, prev = torch.randn(shape), torch.randn(shape)
    got = local_correlation(cur, prev, radius)
    ref = _correlation_by_shifts(cur, prev, radius)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=1e-5)
    # every displacement and every pixel, edges included (tiles that pad past the border)
    assert (ref.abs() > 0).float().mean() > 0.5


def test_correlation_serves_training_after_inference_in_one_process():
    """Its index tensors are cached: created under inference_mode they must still work with autograd."""
    cur, prev = torch.randn(1, 8, 7, 9), torch.randn(1, 8, 7, 9)
    with torch.inference_mode():
        local_correlation(cur, prev, 3)
    cur.requires_grad_(True)
    local_correlation(cur, prev, 3).sum().backward()
    assert cur.grad is not None and torch.isfinite(cur.grad).all()


def test_warp_previous_brings_back_each_pixels_origin():
    torch.manual_seed(0)
    prev = torch.randn(1, 4, 12, 14)
    # content moves +2 in x and -1 in y: current(p) = prev(p - (u, v)) with flow (u, v) = (2, -1)
    cur = torch.roll(prev, shifts=(-1, 2), dims=(2, 3))
    flow = torch.zeros(1, 2, 12, 14)
    flow[:, 0], flow[:, 1] = 2.0, -1.0
    warped = warp_previous(prev, flow)
    inner = (slice(None), slice(None), slice(0, 11), slice(2, None))   # origins inside prev
    assert torch.allclose(warped[inner], cur[inner], atol=1e-5)
    assert not torch.allclose(prev[inner], cur[inner], atol=1e-2)
    # origins outside the previous frame read zeros
    assert warped[..., :2].abs().max() < 1e-5 and warped[:, :, 11].abs().max() < 1e-5
    # half a pixel: the mean of the two neighbours (bilinear)
    half = torch.zeros(1, 2, 12, 14)
    half[:, 0] = 0.5
    assert torch.allclose(warp_previous(prev, half)[..., 1:], 0.5 * (prev[..., :-1] + prev[..., 1:]), atol=1e-5)
    with pytest.raises(ValueError, match='flow grid'):
        warp_previous(prev, torch.zeros(1, 2, 6, 7))


def test_packed_flow_features_unpack_exactly():
    torch.manual_seed(0)
    fine, coarse = torch.randn(2, 16, 8, 12), torch.randn(2, 48, 4, 6)
    packed = pack_flow_features(fine, coarse)
    assert packed.shape == (2, 64, 8, 12)
    back_fine, back_coarse = unpack_flow_features(packed, 16)
    assert torch.equal(back_fine, fine) and torch.allclose(back_coarse, coarse, atol=0, rtol=0)


def _maps(num_classes, h, w):
    maps = torch.zeros(1, num_classes + 4, h, w)
    maps[:, num_classes:num_classes + 2] = 8.0   # default box 8x8 px
    maps[:, num_classes + 2:] = 0.5
    return maps


def test_decode_detections_from_hand_made_heatmaps():
    maps = _maps(2, 20, 30)
    # class 1 object at cell (x=10, y=5) with offset (0.25, 0.75), size 40x20 px
    maps[0, 1, 5, 10] = 0.9
    maps[0, 1, 5, 9] = 0.6   # a neighbour on the same blob: suppressed by peak finding
    maps[0, 2:4, 5, 10] = torch.tensor([40.0, 20.0])
    maps[0, 4:6, 5, 10] = torch.tensor([0.25, 0.75])
    # class 0 object at cell (x=2, y=15)
    maps[0, 0, 15, 2] = 0.7
    dets = decode_detections(maps, 2, top_k=3)
    assert dets.scores.shape == (1, 3)
    assert torch.allclose(dets.scores[0, :2], torch.tensor([0.9, 0.7]))
    assert dets.scores[0, 2] < 0.6   # the suppressed neighbour is not a candidate
    assert dets.classes[0, :2].tolist() == [1, 0]
    cx, cy = (10 + 0.25) * STRIDE, (5 + 0.75) * STRIDE
    assert torch.allclose(dets.boxes[0, 0], torch.tensor([cx - 20, cy - 10, cx + 20, cy + 10]))
    cx, cy = (2 + 0.5) * STRIDE, (15 + 0.5) * STRIDE
    assert torch.allclose(dets.boxes[0, 1], torch.tensor([cx - 4, cy - 4, cx + 4, cy + 4]))


def test_decode_detections_refuses_wrong_channel_count():
    with pytest.raises(ValueError, match='expected detection maps'):
        decode_detections(torch.zeros(1, 5, 8, 8), num_classes=3)


def test_flow_cache_pairs_only_compatible_frames():
    from hydranet_ros.inference.results import FlowStatus
    cache = FlowFeatureCache(max_gap_s=0.5)
    feats = torch.ones(4, 3, 3)
    assert cache.lookup('cam0', (100, 200), 1_000_000_000)[2] is FlowStatus.NO_PREVIOUS_FRAME
    cache.store('cam0', feats, (100, 200), 1_000_000_000)
    got, stamp, status, _ = cache.lookup('cam0', (100, 200), 1_100_000_000)
    assert status is FlowStatus.OK and stamp == 1_000_000_000 and torch.equal(got, feats)
    assert cache.lookup('cam1', (100, 200), 1_100_000_000)[2] is FlowStatus.NO_PREVIOUS_FRAME   # streams are separate
    # gap too large -> reset
    _, _, status, detail = cache.lookup('cam0', (100, 200), 2_000_000_000)
    assert status is FlowStatus.GAP_TOO_LONG and 'exceeds the limit' in detail
    assert cache.lookup('cam0', (100, 200), 2_100_000_000)[2] is FlowStatus.NO_PREVIOUS_FRAME
    # size change -> reset
    cache.store('cam0', feats, (100, 200), 3_000_000_000)
    _, _, status, detail = cache.lookup('cam0', (120, 200), 3_100_000_000)
    assert status is FlowStatus.SIZE_CHANGED and 'image size changed' in detail
    assert len(cache) == 0
    # time going backwards (a bag looping) -> reset
    cache.store('cam0', feats, (100, 200), 3_000_000_000)
    assert cache.lookup('cam0', (100, 200), 2_900_000_000)[2] is FlowStatus.TIME_WENT_BACKWARDS
    # on demand
    cache.store('cam0', feats, (100, 200), 3_000_000_000)
    cache.store('cam1', feats, (100, 200), 3_000_000_000)
    cache.reset('cam0')
    assert len(cache) == 1
    cache.reset()
    assert len(cache) == 0
    with pytest.raises(ValueError):
        FlowFeatureCache(max_gap_s=0)
