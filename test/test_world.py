"""The synthetic world's labels are consistent with its geometry (ROS-free)."""
import numpy as np
import pytest

from hydranet_ros.world import World
from hydranet_ros.world.classes import IGNORE, SEG_ID, SEGMENTATION_CLASSES

SIZE = (96, 312)


@pytest.fixture(scope='module')
def frames():
    return list(World(7, 'kitti', size=SIZE).frames(4))


def test_deterministic_by_seed(frames):
    again = list(World(7, 'kitti', size=SIZE).frames(2))
    for a, b in zip(frames, again):
        assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.segmentation, b.segmentation)
        assert np.array_equal(a.depth, b.depth)
    other = next(World(8, 'kitti', size=SIZE).frames(1))
    assert not np.array_equal(other.rgb, frames[0].rgb)


def test_shapes_and_label_ranges(frames):
    f = frames[1]
    h, w = SIZE
    assert f.rgb.shape == (h, w, 3) and f.rgb.dtype == np.uint8
    assert f.segmentation.shape == (h, w) and f.segmentation.max() < len(SEGMENTATION_CLASSES)
    assert f.depth.dtype == np.float32 and f.flow.shape == (h, w, 2)
    assert (f.depth[np.isfinite(f.depth)] > 0).all()


def test_sky_has_infinite_depth_and_no_flow(frames):
    f = frames[2]
    sky = f.segmentation == SEG_ID['sky']
    assert sky.any()
    assert np.isposinf(f.depth[sky]).all()
    assert np.isfinite(f.depth[~sky]).all()
    assert np.isnan(f.flow[sky]).all()


def test_first_frame_has_no_flow(frames):
    assert np.isnan(frames[0].flow).all()


def test_static_scene_flow_matches_ego_motion_geometry():
    world = World(11, 'vga', size=(120, 160), static=True)
    f0, f1 = world.frames(2)
    cam, scene = world.camera, world.scene
    step = scene.ego_speed * world.dt          # pure forward translation between the frames
    ys, xs = np.nonzero(np.isfinite(f1.flow[..., 0]))
    assert xs.size > 0.5 * f1.flow[..., 0].size     # most non-sky pixels have flow
    z = f1.depth[ys, xs].astype(np.float64)
    # Back-project with this frame's depth, move the camera back, project again.
    x_c = (xs - cam.cx) / cam.fx * z
    y_c = (ys - cam.cy) / cam.fy * z
    u_prev = cam.fx * x_c / (z + step) + cam.cx
    v_prev = cam.fy * y_c / (z + step) + cam.cy
    expected = np.stack([xs - u_prev, ys - v_prev], axis=1)
    np.testing.assert_allclose(f1.flow[ys, xs], expected, atol=2e-3)
    # Expansion away from the principal point, as forward motion must give.
    right = xs > cam.cx + 5
    assert (f1.flow[ys[right], xs[right], 0] > 0).all()


def test_moving_object_flow_is_ego_plus_object_motion():
    from hydranet_ros.world.scene import Box
    world = World(11, 'vga', size=(120, 160), static=True)
    v = -8.0                                   # an oncoming car, m/s along the road
    world.scene.boxes.append(Box(np.array([-2.5, 0.0, 18.0]), np.array([-0.7, 1.6, 22.0]), SEG_ID['car'],
                                 np.array([0.8, 0.1, 0.1]), np.array([0.0, 0.0, v]), instance=99))
    f0, f1 = world.frames(2)
    cam, step = world.camera, world.scene.ego_speed * world.dt
    mask = (f1.instances == 99) & np.isfinite(f1.flow[..., 0])
    ys, xs = np.nonzero(mask)
    assert xs.size > 20
    z = f1.depth[ys, xs].astype(np.float64)
    x_c, y_c = (xs - cam.cx) / cam.fx * z, (ys - cam.cy) / cam.fy * z
    z_prev = z + step - v * world.dt            # the camera moved forward, the car towards it
    expected = np.stack([xs - (cam.fx * x_c / z_prev + cam.cx), ys - (cam.fy * y_c / z_prev + cam.cy)], axis=1)
    np.testing.assert_allclose(f1.flow[ys, xs], expected, atol=2e-3)
    static_expected = np.stack([xs - (cam.fx * x_c / (z + step) + cam.cx),
                                ys - (cam.fy * y_c / (z + step) + cam.cy)], axis=1)
    assert np.abs(f1.flow[ys, xs]).mean() > 1.2 * np.abs(static_expected).mean()


def test_boxes_enclose_their_instances(frames):
    f = frames[3]
    assert f.boxes
    for b in f.boxes:
        ys, xs = np.nonzero(f.instances == b.instance)
        assert xs.min() >= b.x1 and xs.max() < b.x2 and ys.min() >= b.y1 and ys.max() < b.y2
        assert (b.x1, b.y1, b.x2, b.y2) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)   # tight
        assert 0.0 <= b.occlusion <= 1.0 and 0.0 <= b.truncation <= 1.0
        cls = f.segmentation[ys, xs]
        assert (cls == (SEG_ID['car'] if b.class_id == 0 else SEG_ID['pedestrian'])).all()


def test_occluded_pixels_have_invalid_flow():
    world = World(5, 'kitti', size=SIZE)
    f0, f1 = world.frames(2)
    valid = np.isfinite(f1.flow[..., 0])
    finite = np.isfinite(f1.depth)
    assert valid.sum() < finite.sum()                 # some points were hidden or outside before
    assert IGNORE not in np.unique(f1.segmentation)


def test_export_round_trips_through_the_folder_dataset(tmp_path):
    from hydranet_ros.training.datasets import FolderDataset
    from hydranet_ros.world.export import export_sequence
    world = World(9, 'kitti', size=(64, 208))
    assert export_sequence(world, 3, tmp_path) == 3
    ds = FolderDataset(tmp_path, (64, 208))
    first, second = ds[0], ds[1]
    frames = list(World(9, 'kitti', size=(64, 208)).frames(2))
    assert first['has_segmentation'] and first['has_depth'] and first['has_detection']
    assert not first['has_flow'] and second['has_flow']
    assert (second['segmentation'].numpy() == frames[1].segmentation).all()
    np.testing.assert_array_equal(np.isinf(second['depth'].numpy()), np.isinf(frames[1].depth))
    np.testing.assert_allclose(second['flow'].numpy().transpose(1, 2, 0), frames[1].flow, equal_nan=True)
