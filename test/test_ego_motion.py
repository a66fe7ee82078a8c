"""The camera's motion from odometry and the mount, and the rigid flow it gives (no ROS)."""
import numpy as np
import pytest

from hydranet_ros.bag.make_bag import OPTICAL_TO_BASE, camera_odometry
from hydranet_ros.spatial.cloud import Intrinsics
from hydranet_ros.spatial.ego_motion import (Mount, PoseBuffer, camera_motion, ego_motion_flow, interpolate_pose,
                                             pose_matrix, quaternion_matrix, rigid_flow, rpy_matrix)
from hydranet_ros.world import World


def _yaw_pose(yaw, x=0.0, y=0.0):
    return pose_matrix((x, y, 0.0), (0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)))


def test_rotations_agree_and_bad_quaternions_are_refused():
    r = quaternion_matrix(0.0, 0.0, np.sin(0.3), np.cos(0.3))          # 0.6 rad about z
    assert np.allclose(r, rpy_matrix(0.0, 0.0, 0.6))
    assert np.allclose(rpy_matrix(0.1, -0.2, 0.3) @ rpy_matrix(0.1, -0.2, 0.3).T, np.eye(3))
    for bad in ((0, 0, 0, 0), (0, 0, 0, 2), (np.nan, 0, 0, 1)):
        with pytest.raises(ValueError, match='unit quaternion'):
            quaternion_matrix(*bad)
    with pytest.raises(ValueError, match='position'):
        pose_matrix((0.0, np.inf, 0.0), (0, 0, 0, 1))


def test_default_mount_is_the_optical_rotation_of_rep_103():
    m = Mount().optical_in_base()
    assert np.allclose(m[:3, :3], OPTICAL_TO_BASE) and np.allclose(m[:3, 3], 0)
    # a camera pitched down by 0.2 rad looks below the base's x axis: its optical z points down a little
    down = Mount(z=1.5, pitch=0.2).optical_in_base()
    forward = down[:3, :3] @ np.array([0.0, 0.0, 1.0])
    assert forward[0] > 0.97 and forward[2] < -0.19 and down[2, 3] == 1.5


def test_pose_buffer_interpolates_within_and_refuses_beyond_its_tolerance():
    buf = PoseBuffer(horizon_s=1.0, tolerance_s=0.05)
    assert buf.at(0) is None
    buf.add(0, _yaw_pose(0.0, x=0.0))
    buf.add(100_000_000, _yaw_pose(0.4, x=1.0))
    mid = buf.at(25_000_000)
    assert np.allclose(mid[:3, 3], (0.25, 0, 0)) and np.allclose(mid[:3, :3], rpy_matrix(0, 0, 0.1))
    assert buf.at(140_000_000) is not None and buf.at(160_000_000) is None
    assert buf.at(-40_000_000) is not None and buf.at(-60_000_000) is None
    buf.add(2_000_000_000, _yaw_pose(0.0))                                 # older ones leave the horizon
    assert len(buf) == 1
    buf.add(50, _yaw_pose(0.0))                                            # time went back: afresh
    assert len(buf) == 1 and buf.at(2_000_000_000) is None
    half = interpolate_pose(_yaw_pose(3.0), _yaw_pose(-3.0), 0.5)         # the short way, through pi
    assert np.allclose(half[:3, :3], rpy_matrix(0, 0, np.pi), atol=1e-6)


def test_rigid_flow_of_true_depth_and_odometry_is_the_worlds_flow_on_static_pixels():
    world = World(2003, size=(96, 320))
    frames = list(world.frames(3))
    k = Intrinsics.from_k(world.camera.k, world.camera.height, world.camera.width)
    prev, cur = frames[1], frames[2]
    t = camera_motion(camera_odometry(world, prev.stamp), camera_odometry(world, cur.stamp), Mount())
    flow = rigid_flow(cur.depth, k, t)
    static = (cur.instances == 0) & np.isfinite(cur.depth) & np.isfinite(cur.flow).all(-1)
    err = np.linalg.norm(flow[static] - cur.flow[static], axis=-1)
    moving = np.linalg.norm(cur.flow[static], axis=-1)
    assert static.mean() > 0.3 and np.median(moving) > 0.5          # the camera moved: a test that can fail
    assert np.median(err) < 0.05 and np.percentile(err, 95) < 0.5
    wrong = rigid_flow(cur.depth, k, np.eye(4))                      # no motion: off by the whole flow
    assert np.median(np.linalg.norm(wrong[static] - cur.flow[static], axis=-1)) > 0.5
    assert np.isnan(flow[~np.isfinite(cur.depth)]).all()             # sky: undefined


def test_ego_motion_flow_keeps_the_network_on_movers_and_where_depth_fails():
    k = Intrinsics(100.0, 100.0, 16.0, 8.0, 16, 32)
    depth = np.full((16, 32), 10.0, np.float32)
    depth[0, 0] = np.nan
    labels = np.zeros((16, 32), np.uint8)
    labels[8:, 20:] = 3
    net = np.full((16, 32, 2), 7.0, np.float32)
    forward = np.eye(4)
    forward[2, 3] = -1.0                                             # the previous camera was 1 m behind
    fused = ego_motion_flow(net, depth, labels, k, forward, mover_ids=[3])
    assert (fused[8:, 20:] == 7.0).all() and (fused[0, 0] == 7.0).all()
    rigid = rigid_flow(depth, k, forward)
    assert np.allclose(fused[1:8, 1:20], rigid[1:8, 1:20]) and not np.allclose(rigid[1:8, 1:20], 7.0)
    with pytest.raises(ValueError, match='one grid'):
        ego_motion_flow(net[:8], depth, labels, k, forward)
