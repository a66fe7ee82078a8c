"""Velocity, closing speed and time to contact of tracked objects (ROS-free)."""
import math

import numpy as np
import pytest

from hydranet_ros.spatial.motion import MotionEstimator, closing, near_face_centre


def _feed(est, positions_at, stamps, poses=None):
    out = None
    for i, t in enumerate(stamps):
        out = est.update(int(round(t * 1e9)), positions_at(t), None if poses is None else poses(t))
    return out


def test_an_approaching_car_gets_its_velocity_and_time_to_contact():
    v = np.array([0.5, 0.0, -8.0])                       # drifting right, closing at 8 m/s
    start = np.array([-2.0, 0.5, 40.0])
    est = MotionEstimator()
    rng = np.random.default_rng(0)
    noisy = lambda t: {'7': start + v * t + rng.normal(0, 0.05, 3)}    # noqa: E731  depth jitter
    m, = _feed(est, noisy, np.arange(0, 1.0, 0.1))
    assert m.id == '7' and m.velocity_valid
    assert m.velocity == pytest.approx(v, abs=0.35)
    p = m.position
    assert m.range_m == pytest.approx(np.linalg.norm(p))
    assert m.closing_speed == pytest.approx(-(p @ v) / np.linalg.norm(p), abs=0.35)
    assert m.time_to_contact == pytest.approx(m.range_m / m.closing_speed, rel=1e-6)
    assert m.time_to_contact == pytest.approx(32.8 / 8.0, rel=0.1)
    assert not m.over_ground_valid


def test_receding_and_young_tracks():
    est = MotionEstimator(min_samples=3)
    first = est.update(0, {'a': [0, 0, 10.0]})[0]
    assert not first.velocity_valid and math.isinf(first.time_to_contact) and first.closing_speed == 0.0
    m, = _feed(est, lambda t: {'a': np.array([0, 0, 10.0 + 3 * t])}, np.arange(0.1, 0.6, 0.1))
    assert m.velocity_valid and m.closing_speed < 0 and math.isinf(m.time_to_contact)


def test_a_track_that_was_lost_starts_over():
    est = MotionEstimator(max_age_s=0.5)
    _feed(est, lambda t: {'a': np.array([0, 0, 20 - 5 * t])}, np.arange(0, 0.5, 0.1))
    m, = est.update(int(2e9), {'a': [0, 0, 5.0]})
    assert not m.velocity_valid


def test_odometry_separates_the_objects_own_motion_from_the_cameras():
    """The camera drives forward at 10 m/s past a parked car and behind a car doing 6 m/s."""
    def pose(t):
        m = np.eye(4)
        m[2, 3] = 10.0 * t                               # the optical z axis is the driving direction
        return m
    parked = np.array([3.0, 1.0, 30.0])
    ahead = np.array([0.0, 1.0, 15.0])
    seen = lambda t: {'parked': parked - [0, 0, 10 * t], 'ahead': ahead + [0, 0, (6 - 10) * t]}  # noqa: E731
    a, b = _feed(MotionEstimator(), seen, np.arange(0, 0.7, 0.1), pose)
    assert a.velocity == pytest.approx([0, 0, -10.0], abs=1e-6) and a.over_ground_valid
    assert a.velocity_over_ground == pytest.approx([0, 0, 0], abs=1e-6)
    assert b.velocity == pytest.approx([0, 0, -4.0], abs=1e-6)
    assert b.velocity_over_ground == pytest.approx([0, 0, 6.0], abs=1e-6)


def test_closing_and_near_face():
    assert closing(np.array([0, 0, 10.0]), np.array([0, 0, -2.0])) == pytest.approx((2.0, 5.0))
    speed, ttc = closing(np.array([10.0, 0, 0]), np.array([0, 0, -2.0]))      # passing sideways
    assert speed == pytest.approx(0.0) and math.isinf(ttc)
    assert near_face_centre((1, 2, 10), (2, 1, 4)) == pytest.approx([1, 2, 8])


def test_flow_velocity_of_the_worlds_exact_depth_and_flow_is_the_objects_relative_motion():
    """The looming estimate: exact depth and flow give the object's motion relative to the camera."""
    from hydranet_ros.spatial.cloud import Intrinsics
    from hydranet_ros.spatial.motion import flow_velocity
    from hydranet_ros.world import World
    world = World(2000)
    before, now = list(world.frames(2, start=11))
    k = Intrinsics.from_k(world.camera.k, world.camera.height, world.camera.width)
    faces_now, faces_before = world.objects_in_camera(now.index), world.objects_in_camera(before.index)
    checked = 0
    for box in now.boxes:
        if not box.detectable() or box.instance not in faces_before or min(box.x2 - box.x1, box.y2 - box.y1) < 20:
            continue
        truth = (near_face_centre(*faces_now[box.instance]) - near_face_centre(*faces_before[box.instance])) / world.dt
        mask = (now.instances == box.instance).astype(np.uint8)      # the object's own pixels, as its class would be
        v = flow_velocity((box.x1, box.y1, box.x2, box.y2), now.depth, now.flow, k, world.dt, mask, [1])
        assert v is not None
        assert np.linalg.norm(v - truth) < 0.3, (box.instance, v, truth)
        still = flow_velocity((box.x1, box.y1, box.x2, box.y2), now.depth, np.zeros_like(now.flow), k, world.dt,
                              mask, [1])
        assert np.allclose(still, 0), 'no flow: standing still'
        farther = flow_velocity((box.x1, box.y1, box.x2, box.y2), now.depth * 2, now.flow, k, world.dt, mask, [1])
        assert np.allclose(farther, 2 * v), 'a depth error is a velocity error of the same ratio'
        checked += 1
    assert checked >= 2
    assert flow_velocity((5, 5, 4, 9), now.depth, now.flow, k, world.dt) is None    # empty box
