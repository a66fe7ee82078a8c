"""Point clouds, 3D boxes, flow-guided tracking and the compressed depth codec, on hand-made data
and on the synthetic world (no ROS)."""
import numpy as np
import pytest

from hydranet_ros.image_codec import ImageConversionError, decode_compressed_depth, encode_compressed_depth
from hydranet_ros.spatial import FlowTracker, Intrinsics, lift_detections, semantic_cloud
from hydranet_ros.spatial.objects3d import class_label_map
from hydranet_ros.spatial.tracking import box_motion, iou_matrix
from hydranet_ros.world import World
from hydranet_ros.world.classes import DETECTION_CLASSES, SEG_ID, SEGMENTATION_CLASSES

K = Intrinsics(fx=500.0, fy=400.0, cx=31.5, cy=23.5, height=48, width=64)


def test_each_point_is_its_pixel_back_projected_through_k():
    depth = np.random.default_rng(0).uniform(1, 20, (48, 64)).astype(np.float32)
    depth[5, 7] = np.nan
    depth[6, 8] = np.inf
    cloud = semantic_cloud(depth, K)
    assert len(cloud) == 48 * 64 - 2
    for i in (0, 100, len(cloud) - 1):
        r, c = cloud.rows[i], cloud.cols[i]
        z = depth[r, c]
        np.testing.assert_allclose(cloud.xyz[i], [(c - 31.5) * z / 500.0, (r - 23.5) * z / 400.0, z], rtol=1e-6)
    # the principal point lies on the optical axis
    flat = np.full((48, 64), 5.0, np.float32)
    centre = semantic_cloud(flat, Intrinsics(500, 400, 10.0, 20.0, 48, 64))
    k = np.nonzero((centre.rows == 20) & (centre.cols == 10))[0][0]
    np.testing.assert_allclose(centre.xyz[k], [0, 0, 5.0])


def test_stride_range_and_dropped_classes():
    depth = np.full((48, 64), 10.0, np.float32)
    depth[:, :32] = 50.0
    labels = np.zeros((48, 64), np.uint8)
    labels[:10] = 7
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[..., 0] = 200
    cloud = semantic_cloud(depth, K, rgb, labels, stride=2, max_m=20.0, drop_labels=[7])
    assert (cloud.rows % 2 == 0).all() and (cloud.cols % 2 == 0).all()
    assert (cloud.xyz[:, 2] == 10.0).all() and (cloud.label == 0).all() and (cloud.rows >= 10).all()
    assert len(cloud) == len(range(10, 48, 2)) * len(range(32, 64, 2))
    assert (cloud.rgb == [200, 0, 0]).all()
    with pytest.raises(ValueError, match='intrinsics are for'):
        semantic_cloud(depth[:40], K)


def test_a_height_band_keeps_the_points_in_it_with_their_pixels_and_fields():
    from hydranet_ros.spatial.ground import GroundPlane
    rng = np.random.default_rng(2)
    depth = rng.uniform(1, 30, (48, 64)).astype(np.float32)
    labels = rng.integers(0, 5, (48, 64)).astype(np.uint8)
    rgb = rng.integers(0, 256, (48, 64, 3)).astype(np.uint8)
    sigma = rng.uniform(0.1, 1.0, (48, 64)).astype(np.float32)
    cloud = semantic_cloud(depth, K, rgb, labels, stride=3, drop_labels=[4], sigma=sigma)
    plane = GroundPlane.from_mount(1.5, 0.05)
    heights = plane.height(cloud.xyz)
    for low, high in ((0.5, 0.0), (-1.0, 2.0)):
        part = semantic_cloud(depth, K, rgb, labels, stride=3, drop_labels=[4], sigma=sigma, band=(plane, low, high))
        mask = (heights >= low) & ((heights <= high) if high > 0 else True)
        assert 0 < len(part) < len(cloud)
        for field in ('xyz', 'rgb', 'label', 'sigma', 'rows', 'cols'):
            assert np.array_equal(getattr(part, field), getattr(cloud, field)[mask]), field
        assert np.array_equal(depth[part.rows, part.cols], part.xyz[:, 2])    # each point still its own pixel


def test_a_box_lifts_to_its_class_pixels_not_the_background():
    """A car 8 m away fills the middle of a box whose edges show a wall at 30 m."""
    depth = np.full((48, 64), 30.0, np.float32)
    labels = np.full((48, 64), SEG_ID['building'], np.uint8)
    depth[16:32, 20:44] = 8.0
    labels[16:32, 20:44] = SEG_ID['car']
    cmap = class_label_map(DETECTION_CLASSES, [n for n, _ in SEGMENTATION_CLASSES])
    obj, = lift_detections([[16, 12, 48, 36]], [DETECTION_CLASSES.index('car')], depth, K, labels, cmap)
    assert obj.points == 16 * 24
    assert obj.center[2] == pytest.approx(8.0) and obj.near_z == pytest.approx(8.0)
    # x spans columns 20..43 at 8 m: the 10-90 percentile span of the car's own pixels
    xs = (np.arange(20, 44) - 31.5) * 8.0 / 500.0
    assert obj.center[0] == pytest.approx((np.percentile(xs, 10) + np.percentile(xs, 90)) / 2, abs=1e-6)
    # without the class map, the wall at 30 m drags the box back: the class map is what helps
    whole, = lift_detections([[16, 12, 48, 36]], [0], depth, K, labels, {})
    assert whole.size[2] > 20
    # too few usable pixels: left out
    assert lift_detections([[0, 0, 2, 2]], [0], depth, K, labels, cmap) == []


def test_lifted_boxes_match_the_synthetic_worlds_objects():
    """With exact depth and segmentation, each lifted box's near face and lateral centre lie where the
    world put the object (its camera-frame box), within a few percent of the distance."""
    world = World(2000, size=(192, 640))
    frames = list(world.frames(3))
    k = Intrinsics.from_k(world.camera.k, 192, 640)
    cmap = class_label_map(DETECTION_CLASSES, [n for n, _ in SEGMENTATION_CLASSES])
    errors = []
    for f in frames:
        truth = world.objects_in_camera(f.index)
        boxes = [b for b in f.boxes if b.detectable() and b.truncation < 0.1 and b.occlusion < 0.2]
        objs = lift_detections([[b.x1, b.y1, b.x2, b.y2] for b in boxes], [b.class_id for b in boxes],
                               f.depth, k, f.segmentation, cmap)
        for obj in objs:
            centre, size = truth[boxes[obj.index].instance]
            near = centre[2] - size[2] / 2
            errors.append((abs(obj.near_z - near) / near, abs(obj.center[0] - centre[0]) / near))
    assert len(errors) >= 3
    errors = np.array(errors)
    assert np.median(errors[:, 0]) < 0.05 and np.median(errors[:, 1]) < 0.05, errors


def test_iou_matrix():
    iou = iou_matrix([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(iou, [[1.0, 50 / 150, 0.0]])


def test_flow_moves_boxes_back_to_where_they_came_from():
    flow = np.zeros((50, 100, 2), np.float32)
    flow[10:30, 40:60] = (12.0, -4.0)              # at half the image resolution
    motion = box_motion(np.array([[80.0, 20.0, 120.0, 60.0]]), flow, (100, 200))
    np.testing.assert_allclose(motion, [[24.0, -8.0]])


def test_flow_keeps_an_id_where_overlap_alone_loses_it():
    """An object jumps 30 px between frames (no overlap): with the flow it keeps its id, without
    the flow it gets a new one; a second object keeps its id either way."""
    flow = np.zeros((100, 200, 2), np.float32)
    flow[20:40, 60:80] = (30.0, 0.0)
    first = [[30, 20, 50, 40], [150, 60, 170, 80]]
    second = [[60, 20, 80, 40], [150, 60, 170, 80]]
    with_flow, without = FlowTracker(), FlowTracker()
    a = with_flow.update(first, [0, 1], 0)
    b = with_flow.update(second, [0, 1], 100_000_000, flow, (100, 200))
    assert a == b == [1, 2]
    c = without.update(first, [0, 1], 0)
    d = without.update(second, [0, 1], 100_000_000)
    assert c == [1, 2] and d == [3, 2]


def test_tracks_end_after_their_lifetime_and_ids_are_never_reused():
    tracker = FlowTracker(max_age_s=0.25)
    assert tracker.update([[0, 0, 10, 10]], [0], 0) == [1]
    assert tracker.update([], [], 100_000_000) == []
    assert tracker.update([[0, 0, 10, 10]], [0], 200_000_000) == [1]          # within its lifetime
    assert tracker.update([[0, 0, 10, 10]], [0], 600_000_000) == [2]          # gone 0.4 s: new track
    assert tracker.update([[0, 0, 10, 10]], [1], 700_000_000) == [3]          # another class never matches
    assert tracker.update([[0, 0, 10, 10]], [1], 100) == [4]                  # time went back: new sequence


def test_compressed_depth_round_trip_and_layout():
    depth = np.linspace(0.5, 79.0, 48 * 64, dtype=np.float32).reshape(48, 64)
    depth[0, :4] = (np.nan, np.inf, -np.inf, 0.0)
    depth[1, 0] = 85.0                                            # beyond depth_max
    data = encode_compressed_depth(depth, depth_max=80.0, quantization=100.0)
    assert np.frombuffer(data[:4], '<i4')[0] == 0                 # INV_DEPTH
    a, b = np.frombuffer(data[4:12], '<f4')
    assert a == pytest.approx(100 * 101) and b == pytest.approx(1 - 10100 / 80)
    assert data[12:20] == b'\x89PNG\r\n\x1a\n'
    back = decode_compressed_depth(data)
    invalid = np.zeros(depth.shape, bool)
    invalid[0, :4] = invalid[1, 0] = True
    assert np.isnan(back[invalid]).all() and np.isfinite(back[~invalid]).all()
    # truncating the inverse depth A / z + B loses under one step: z' = A / (A / z - f), f < 1,
    # so 0 <= z' - z < z^2 / (A - z)
    z = depth[~invalid]
    err = back[~invalid] - z
    assert (err >= -1e-4 * z).all() and (err < z ** 2 / (a - z) + 1e-4 * z).all()
    with pytest.raises(ImageConversionError, match='no image after its header'):
        decode_compressed_depth(data[:12])


def test_clear_mot_counts_by_hand():
    from hydranet_ros.spatial.evaluation import MotCounts
    c = MotCounts()
    truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)
    c.add_frame(truth, [7, 8], [0, 0], truth + 1, [1, 2], [0, 0])             # both matched
    c.add_frame(truth, [7, 8], [0, 0], np.array([[0, 0, 10, 10], [50, 50, 60, 60]], float), [3, 2], [0, 0])
    # frame 2: object 7 matched with a new id (switch), object 8 missed, one false positive
    assert (c.truth, c.matches, c.switches, c.misses, c.false_positives) == (4, 3, 1, 1, 1)
    assert c.mota == pytest.approx(1 - 3 / 4)


def test_a_duplicate_frame_keeps_its_tracks():
    """The same stamp again (a republished frame) matches in place; only an earlier stamp starts over."""
    from hydranet_ros.spatial.tracking import FlowTracker
    tracker = FlowTracker()
    boxes = np.array([[10, 10, 50, 40], [100, 20, 140, 60]], float)
    first = tracker.update(boxes, [0, 1], 1_000)
    assert tracker.update(boxes, [0, 1], 1_000, flow=np.full((80, 160, 2), 30.0, np.float32)) == first
    assert set(tracker.update(boxes, [0, 1], 500)).isdisjoint(first)


@pytest.mark.parametrize('ids', [(4,), (1, 4, 255), (1, 4, 255, 300, -1), tuple(range(0, 24, 2)) + (255,)],
                         ids=['one', 'few', 'out of range', 'many'])
@pytest.mark.parametrize('dtype', [np.uint8, np.uint16, np.int32, np.int64])
def test_label_mask_is_np_isin_on_every_path(dtype, ids):
    """Comparisons (a few ids), the lookup table (more, unsigned labels) and np.isin (more, other
    types) select the same pixels, strided views included; ids the type cannot hold select none."""
    from hydranet_ros.spatial.cloud import label_mask
    labels = np.random.default_rng(4).integers(0, 24, (30, 40))
    labels[0, :5] = 255
    for view in (labels.astype(dtype), labels.astype(dtype)[::3, ::2]):
        expected = np.isin(view.astype(np.int64), [i for i in ids if 0 <= i <= np.iinfo(dtype).max])
        assert np.array_equal(label_mask(view, ids), expected), (dtype, ids)


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16, np.int64])
def test_label_selection_is_the_same_for_every_label_type(dtype):
    """The lookup-table path (unsigned labels) and np.isin (others) keep and drop the same points."""
    rng = np.random.default_rng(3)
    depth = rng.uniform(1, 30, (24, 32)).astype(np.float32)
    labels = rng.integers(0, 12, (24, 32))
    labels[0, :5] = 255
    k = Intrinsics(20.0, 20.0, 16.0, 12.0, 24, 32)
    kept = semantic_cloud(depth, k, labels=labels.astype(dtype), keep_labels=(1, 4, 255))
    dropped = semantic_cloud(depth, k, labels=labels.astype(dtype), drop_labels=(1, 4, 255))
    assert kept.xyz.shape[0] == int(np.isin(labels, [1, 4, 255]).sum())
    assert set(np.unique(kept.label)) == {1, 4, 255} and not set(np.unique(dropped.label)) & {1, 4, 255}
    assert kept.xyz.shape[0] + dropped.xyz.shape[0] == labels.size
