"""The ground plane, the free-space grid and the ground/obstacle split (ROS-free)."""
import math

import numpy as np
import pytest

from hydranet_ros.spatial.cloud import Intrinsics, semantic_cloud
from hydranet_ros.spatial.ground import (FREE, OCCUPIED, UNKNOWN, GridSpec, GroundPlane, fit_ground_plane,
                                         free_space_grid, grid_agreement, grid_frame, rotation_quaternion)
from hydranet_ros.spatial.obstacles import GroundSettings, ground_scene


def _camera_points(forward_up_left, height, pitch_deg):
    """World points (forward, up, left; ground at up = 0, camera at up = height) in the optical
    frame of a camera pitched down by pitch_deg (REP 103)."""
    p = np.asarray(forward_up_left, float)
    rel = p - np.array([0.0, height, 0.0])
    t = math.radians(pitch_deg)
    z_cam = np.array([math.cos(t), -math.sin(t), 0.0])       # forward, tilted down
    y_cam = np.array([-math.sin(t), -math.cos(t), 0.0])      # image down
    x_cam = np.array([0.0, 0.0, -1.0])                       # image right = world right = -left
    return np.stack([rel @ x_cam, rel @ y_cam, rel @ z_cam], axis=-1)


def _ground(n=600, seed=0, far=30.0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(3, far, n), np.zeros(n), rng.uniform(-6, 6, n)], axis=1)


@pytest.mark.parametrize('pitch', [0.0, 8.0, -3.0])
def test_mount_plane_puts_ground_at_zero_height(pitch):
    plane = GroundPlane.from_mount(1.6, math.radians(pitch))
    pts = _camera_points(_ground(50), 1.6, pitch)
    assert np.abs(plane.height(pts)).max() < 1e-9
    assert plane.height(np.zeros((1, 3)))[0] == pytest.approx(1.6)
    assert plane.pitch_rad == pytest.approx(math.radians(pitch))
    lifted = _camera_points(_ground(5) + [0, 0.7, 0], 1.6, pitch)
    assert plane.height(lifted) == pytest.approx(np.full(5, 0.7))


def test_mount_rejects_bad_height():
    with pytest.raises(ValueError, match='height'):
        GroundPlane.from_mount(0.0)


def test_fit_recovers_the_true_plane_through_noise_and_outliers():
    rng = np.random.default_rng(1)
    truth = _camera_points(_ground(800), 2.1, 4.0)
    truth += rng.normal(0, 0.03, truth.shape)
    outliers = _camera_points(_ground(300, seed=2) + [0, 1.5, 0], 2.1, 4.0)   # e.g. car roofs called road
    prior = GroundPlane.from_mount(1.6, 0.0)                                   # a wrong mount
    plane = fit_ground_plane(np.concatenate([truth, outliers]), prior)
    assert plane.fitted
    assert plane.offset == pytest.approx(2.1, abs=0.03)
    assert math.degrees(plane.pitch_rad) == pytest.approx(4.0, abs=0.3)


def test_fit_falls_back_to_the_prior():
    prior = GroundPlane.from_mount(1.6, 0.0)
    assert fit_ground_plane(np.zeros((10, 3)), prior) is prior                  # too few points
    wall = np.stack([np.full(500, 2.0), np.random.default_rng(0).uniform(-2, 1, 500),
                     np.random.default_rng(1).uniform(3, 20, 500)], axis=1)      # a vertical plane
    assert fit_ground_plane(wall, prior) is prior


def test_grid_marks_ground_and_its_line_of_sight_free_and_obstacles_occupied():
    plane = GroundPlane.from_mount(1.5, 0.0)
    spec = GridSpec(resolution_m=0.5, range_m=20.0, width_m=10.0)
    ground = _camera_points([[5.2, 0.0, 0.2]], 1.5, 0.0)            # 5.2 m ahead, 0.2 m left
    car = _camera_points([[8.2, 1.0, -2.2]], 1.5, 0.0)              # 1 m high, 2.2 m right
    low = _camera_points([[12.2, 0.05, 0.2]], 1.5, 0.0)             # barely above the ground
    grid = free_space_grid(ground, np.concatenate([car, low]), plane, spec, min_height_m=0.2)
    assert grid.cells.shape == (20, 40)
    assert grid.cells[10, 10] == FREE                               # row 5 m + 0.2 left -> 10, col 5.2 / 0.5
    assert grid.cells[5, 16] == OCCUPIED                            # 5 - 2.2 = 2.8 m -> row 5, col 16
    assert grid.cells[10, 24] == UNKNOWN                            # the low point does not occupy
    assert (grid.cells[10, :11] == FREE).all()                      # the line of sight to it: seen over
    assert (grid.cells == FREE).sum() == 11 and (grid.cells == OCCUPIED).sum() == 1
    assert grid.lookup(ground)[0] == FREE and grid.lookup(car)[0] == OCCUPIED


def test_grid_frame_lies_on_the_plane_and_quaternion_matches():
    plane = GroundPlane.from_mount(1.7, math.radians(6.0), math.radians(2.0))
    origin, axes = grid_frame(plane, GridSpec())
    assert plane.height(origin[None])[0] == pytest.approx(0.0, abs=1e-9)
    assert axes.T @ axes == pytest.approx(np.eye(3))
    assert np.linalg.det(axes) == pytest.approx(1.0)
    assert axes[:, 2] == pytest.approx(plane.normal)
    x, y, z, w = rotation_quaternion(axes)
    rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                    [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                    [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    assert rot == pytest.approx(axes, abs=1e-9)


def test_grid_agreement_is_one_for_the_same_grid_and_drops_when_shifted():
    plane = GroundPlane.from_mount(1.5, 0.0)
    spec = GridSpec(0.5, 20.0, 10.0)
    pts = _camera_points(_ground(2000, far=19.0), 1.5, 0.0)
    truth = free_space_grid(pts, np.zeros((0, 3)), plane, spec)
    same = grid_agreement(truth, truth)
    assert same['free_iou_0_10m'] == pytest.approx(1.0) and same['free_iou_10_20m'] == pytest.approx(1.0)
    assert math.isnan(same['occupied_iou_0_10m'])
    moved = free_space_grid(pts + [6.0, 0, 0], np.zeros((0, 3)), plane, spec)   # 6 m to the right
    assert grid_agreement(moved, truth)['free_iou_0_10m'] < 0.8


def _road_and_building(**settings):
    """A frame of flat road (1.5 m below the camera) under a building front 20 m away, a strip of sky."""
    h, w, f = 96, 128, 100.0
    k = Intrinsics(f, f, w / 2, h / 2, h, w)
    v = np.arange(h)[:, None] + 0.5
    with np.errstate(divide='ignore'):
        depth = np.where(v > h / 2, 1.5 * f / (v - h / 2), 20.0) * np.ones((1, w))   # flat ground below the horizon
    labels = np.where(v > h / 2, 0, 4) * np.ones((1, w), np.uint8)                    # road below, building above
    labels[:, :10] = 7                                                                # sky: neither set
    settings = GroundSettings.from_names(['road', 'x', 'y', 'z', 'building', 'a', 'b', 'sky'], ['road', 'terrain'],
                                         ['building', 'car'], **{'camera_height_m': 1.2, **settings})
    rgb = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return depth.astype(np.float32), labels.astype(np.uint8), k, settings, rgb


def test_ground_scene_splits_by_class_and_fits_the_plane():
    depth, labels, k, settings, _ = _road_and_building()
    assert settings.ground_ids == (0,) and settings.obstacle_ids == (4,)
    scene = ground_scene(depth, labels, k, settings, stride=2)
    assert set(scene.ground.label.tolist()) == {0} and set(scene.obstacles.label.tolist()) == {4}
    assert scene.plane.fitted and scene.plane.offset == pytest.approx(1.5, abs=0.02)
    tall = ground_scene(depth, labels, k, settings, stride=2, obstacle_band=(3.0, 0.0)).obstacles
    assert 0 < len(tall) < len(scene.obstacles)
    assert (scene.plane.height(tall.xyz) >= 3.0).all()
    assert np.array_equal(tall.rows % 2, np.zeros(len(tall), int))


@pytest.mark.parametrize('plane', ['fit', 'fixed'])
def test_ground_scene_computes_what_its_parts_need_and_the_same_as_the_whole_split(plane):
    depth, labels, k, settings, rgb = _road_and_building(plane=plane)
    whole = ground_scene(depth, labels, k, settings, rgb, stride=2)
    spec = GridSpec(0.5, 20.0, 10.0)
    obstacles = ground_scene(depth, labels, k, settings, rgb, stride=2, parts={'obstacles'})
    assert obstacles.ground is None and not obstacles.plane.fitted            # nothing needed the plane
    assert np.array_equal(obstacles.obstacles.xyz, whole.obstacles.xyz)
    assert np.array_equal(obstacles.obstacles.rgb, whole.obstacles.rgb)
    ground = ground_scene(depth, labels, k, settings, rgb, stride=2, parts={'ground'})
    assert ground.obstacles is None and np.array_equal(ground.ground.rgb, whole.ground.rgb)
    heights = ground_scene(depth, labels, k, settings, rgb, stride=2, parts={'obstacles', 'plane'})
    assert np.array_equal(heights.plane.normal, whole.plane.normal) and heights.plane.offset == whole.plane.offset
    assert heights.plane.fitted == (plane == 'fit')
    assert heights.ground is None and heights.grid_points is None             # fitted on, not published
    banded = ground_scene(depth, labels, k, settings, rgb, stride=2, parts={'obstacles'}, obstacle_band=(3.0, 0.0))
    assert np.array_equal(banded.plane.normal, whole.plane.normal) and banded.plane.offset == whole.plane.offset
    assert 0 < len(banded.obstacles) < len(whole.obstacles)
    grid = ground_scene(depth, labels, k, settings, rgb, stride=2, parts={'grid'})
    assert grid.ground is None and grid.obstacles is None                      # points for the grid only
    assert np.array_equal(grid.grid(spec, 0.2, 2.5).cells, whole.grid(spec, 0.2, 2.5).cells)
    with pytest.raises(ValueError, match="without 'grid'"):
        obstacles.grid(spec, 0.2, 2.5)
    with pytest.raises(ValueError, match='unknown scene parts'):
        ground_scene(depth, labels, k, settings, parts={'points'})


@pytest.mark.parametrize('band', [(3.0, 0.0), (1.0, 4.0)])
def test_an_obstacle_band_cut_while_splitting_keeps_exactly_the_points_in_it(band):
    """The band applied while the obstacle cloud is built (the plane first) keeps exactly the
    unbanded cloud's points whose height over the plane is in it, with every field and pixel; the
    grid still sees all obstacles; the band alone makes the plane be fitted."""
    depth, labels, k, settings, rgb = _road_and_building()
    sigma = np.random.default_rng(1).uniform(0.1, 2.0, depth.shape).astype(np.float32)
    whole = ground_scene(depth, labels, k, settings, rgb, stride=2, sigma=sigma)
    cut = ground_scene(depth, labels, k, settings, rgb, stride=2, sigma=sigma, parts={'obstacles', 'grid'},
                       obstacle_band=band)
    heights = whole.plane.height(whole.obstacles.xyz)
    inside = (heights >= band[0]) & ((heights <= band[1]) if band[1] > 0 else True)
    got = cut.obstacles
    assert 0 < len(got) < len(whole.obstacles)
    for field in ('xyz', 'rgb', 'label', 'sigma', 'rows', 'cols'):
        assert np.array_equal(getattr(got, field), getattr(whole.obstacles, field)[inside]), field
    spec = GridSpec(0.5, 20.0, 10.0)
    assert np.array_equal(cut.grid(spec, 0.2, 2.5).cells, whole.grid(spec, 0.2, 2.5).cells)
    alone = ground_scene(depth, labels, k, settings, rgb, stride=2, parts={'obstacles'}, obstacle_band=band)
    assert alone.plane.fitted and np.array_equal(alone.obstacles.xyz, got.xyz)


def test_the_plane_and_grid_come_from_their_own_stride_and_the_clouds_from_theirs():
    depth, labels, k, settings, rgb = _road_and_building()
    spec = GridSpec(0.5, 20.0, 10.0)
    coarse = ground_scene(depth, labels, k, settings, rgb, stride=4)                   # everything at 4
    mixed = ground_scene(depth, labels, k, settings, rgb, stride=2, grid_stride=4)     # clouds 2, grid 4
    fine = ground_scene(depth, labels, k, settings, rgb, stride=2)
    assert np.array_equal(mixed.ground.xyz, fine.ground.xyz) and np.array_equal(mixed.obstacles.rgb, fine.obstacles.rgb)
    assert np.array_equal(mixed.plane.normal, coarse.plane.normal) and mixed.plane.offset == coarse.plane.offset
    assert np.array_equal(mixed.grid(spec, 0.2, 2.5).cells, coarse.grid(spec, 0.2, 2.5).cells)
    assert len(mixed.grid_points[0]) < len(fine.grid_points[0])                       # a quarter of the pixels
    alone = ground_scene(depth, labels, k, settings, rgb, stride=2, grid_stride=4, parts={'grid'})
    assert np.array_equal(alone.grid(spec, 0.2, 2.5).cells, coarse.grid(spec, 0.2, 2.5).cells)


def test_the_evaluation_scores_the_nodes_default_ground_stride():
    import inspect

    from hydranet_ros.ros.parameters import BY_NAME
    from hydranet_ros.spatial.free_space_evaluation import GROUND_STRIDE, evaluate
    assert inspect.signature(evaluate).parameters['stride'].default == GROUND_STRIDE == BY_NAME['ground.stride'].default


def test_fit_skips_non_finite_points_as_if_they_were_not_given():
    rng = np.random.default_rng(3)
    pts = _camera_points(_ground(800), 1.7, 2.0) + rng.normal(0, 0.02, (800, 3))
    prior = GroundPlane.from_mount(1.6, 0.0)
    holed = pts.copy()
    holed[::7, 1], holed[3::11, 2] = np.nan, np.inf
    kept = pts[np.isfinite(holed).all(axis=1)]
    a, b = fit_ground_plane(holed, prior), fit_ground_plane(kept, prior)
    assert a.fitted and np.array_equal(a.normal, b.normal) and a.offset == b.offset


def test_keep_labels_needs_labels():
    with pytest.raises(ValueError, match='keep_labels'):
        semantic_cloud(np.ones((4, 4), np.float32), Intrinsics(1, 1, 2, 2, 4, 4), keep_labels=[1])


def test_occupied_outlines_a_little_off_count_within_the_tolerance():
    plane = GroundPlane.from_mount(1.5, 0.0)
    spec = GridSpec(0.2, 20.0, 10.0)
    wall = _camera_points([[8.1, 1.0, y] for y in np.arange(-2, 2, 0.1)], 1.5, 0.0)
    truth = free_space_grid(np.zeros((0, 3)), wall, plane, spec)
    off = free_space_grid(np.zeros((0, 3)), wall + [0, 0, 0.5], plane, spec)     # 0.5 m farther
    far = free_space_grid(np.zeros((0, 3)), wall + [0, 0, 3.0], plane, spec)     # 3 m farther
    a = grid_agreement(off, truth)
    assert a['occupied_iou_0_10m'] == 0.0
    assert a['occupied_recall_0_10m'] == pytest.approx(1.0) and a['occupied_precision_0_10m'] == pytest.approx(1.0)
    b = grid_agreement(far, truth)
    assert b['occupied_recall_0_10m'] == 0.0 and math.isnan(b['occupied_precision_0_10m'])
