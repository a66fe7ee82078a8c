"""input/odom over real DDS: the ego-motion flow (flow.mode ego_motion) and velocities over the
ground, against the synthetic world's exact flow and motion; bad odometry is refused."""
import time

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image

from hydranet_ros.bag.make_bag import camera_odometry
from hydranet_ros.image_codec import image_to_numpy
from hydranet_ros.msg import InferenceStats, ObjectMotionArray, OpticalFlow
from hydranet_ros.spatial.cloud import Intrinsics
from hydranet_ros.spatial.ego_motion import Mount, rigid_flow
from hydranet_ros.spatial.motion import near_face_centre
from hydranet_ros.world import World
from drive_harness import NS, odometry_msg, publish_odometry, run_drive

MOVERS = ('car', 'pedestrian')


def _harness(**params):
    from hydranet_ros.model.registry import weights
    from node_harness import NodeHarness
    h = NodeHarness(weights().path(), detection__score_threshold=0.3, **params)
    h.configure_activate()
    h.subscribe(InferenceStats, f'{NS}/stats')
    return h


@pytest.fixture
def ego_node():
    h = _harness(flow__mode='ego_motion')
    yield h
    h.close()


def _world_poses(drive):
    world = World(2000)
    return world, [camera_odometry(world, f.stamp) for f in drive[0]]


def _run(h, drive, with_odometry):
    for topic, typ in ((f'{NS}/flow', OpticalFlow), (f'{NS}/depth', Image), (f'{NS}/segmentation', Image),
                       (f'{NS}/camera_info', CameraInfo), (f'{NS}/detections_3d/motion', ObjectMotionArray)):
        h.subscribe(typ, topic)
    world, poses = _world_poses(drive)
    if with_odometry:
        publish_odometry(h, poses)
    got = run_drive(h, drive, [f'{NS}/flow', f'{NS}/depth', f'{NS}/segmentation', f'{NS}/camera_info',
                               f'{NS}/detections_3d/motion'])
    return world, poses, got


def _static(seg, names, depth):
    return ~np.isin(seg, [names.index(m) for m in MOVERS]) & np.isfinite(depth) & (depth > 0)


def test_ego_motion_flow_is_the_rigid_flow_on_the_static_scene_and_beats_the_flow_head(drive):
    from hydranet_ros.model.checkpoint import load_checkpoint
    from hydranet_ros.model.registry import weights
    names = load_checkpoint(weights().path()).metadata.segmentation_names
    ego_node = _harness(flow__mode='ego_motion')
    try:
        world, poses, got = _run(ego_node, drive, with_odometry=True)
        assert ego_node.node.counters['flow_ego_motion'] == 2, ego_node.node._flow_source
    finally:
        ego_node.close()
    flows = got[f'{NS}/flow']
    assert len(flows) == 2, 'the first frame has no flow'
    errors = {'ego_motion': [], 'network': []}
    for n, f in enumerate(flows, start=1):
        flow = image_to_numpy(f.flow)
        depth, seg = image_to_numpy(got[f'{NS}/depth'][n]), image_to_numpy(got[f'{NS}/segmentation'][n])
        info = got[f'{NS}/camera_info'][n]
        assert got[f'{NS}/depth'][n].header.stamp == f.header.stamp == info.header.stamp
        k = Intrinsics.from_camera_info(info.k, info.p, *depth.shape)
        m = Mount().optical_in_base()
        expected = rigid_flow(depth, k, np.linalg.inv(poses[n - 1] @ m) @ (poses[n] @ m))
        static = _static(seg, names, depth)
        assert static.mean() > 0.5
        np.testing.assert_allclose(flow[static], expected[static], atol=1e-3)
        movers = ~static & np.isin(seg, [names.index(c) for c in MOVERS])
        assert movers.sum() > 100 and not np.allclose(flow[movers], expected[movers], atol=0.5), \
            'movers keep the flow head'
        truth = drive[0][n].flow
        valid = np.isfinite(truth).all(-1)
        errors['ego_motion'].append(np.linalg.norm(flow - truth, axis=-1)[valid].mean())
    # the same frames through the flow head alone (the default flow.mode, no odometry)
    node = _harness()
    try:
        _, _, plain = _run(node, drive, with_odometry=False)
    finally:
        node.close()
    for n, f in enumerate(plain[f'{NS}/flow'], start=1):
        truth = drive[0][n].flow
        valid = np.isfinite(truth).all(-1)
        errors['network'].append(np.linalg.norm(image_to_numpy(f.flow) - truth, axis=-1)[valid].mean())
    assert np.mean(errors['ego_motion']) < 0.9 * np.mean(errors['network']), errors


def test_velocities_over_the_ground_follow_the_world_with_odometry(ego_node, drive):
    world, poses, got = _run(ego_node, drive, with_odometry=True)
    last = got[f'{NS}/detections_3d/motion'][-1]
    valid = [o for o in last.objects if o.velocity_valid]
    assert valid and all(o.over_ground_valid for o in valid)
    # the world's objects: their near faces' motion over the ground, in the last frame's camera
    i_now, i_before = drive[0][2].index, drive[0][1].index
    now, before = world.objects_in_camera(i_now), world.objects_in_camera(i_before)
    c_now, c_before = world.scene.camera_to_world(i_now * world.dt), world.scene.camera_to_world(i_before * world.dt)
    errors = []
    for o in valid:
        p = np.array([o.position.x, o.position.y, o.position.z])
        faces = {inst: near_face_centre(*box) for inst, box in now.items() if inst in before}
        inst = min(faces, key=lambda i: np.linalg.norm(faces[i][[0, 2]] - p[[0, 2]]))
        if np.linalg.norm(faces[inst][[0, 2]] - p[[0, 2]]) > 0.2 * p[2]:
            continue
        moved = (c_now[:3, :3] @ faces[inst] + c_now[:3, 3]) - (c_before[:3, :3] @ near_face_centre(*before[inst])
                                                                 + c_before[:3, 3])
        truth = c_now[:3, :3].T @ moved / world.dt
        ground = np.array([o.velocity_over_ground.x, o.velocity_over_ground.y, o.velocity_over_ground.z])
        relative = np.array([o.velocity.x, o.velocity.y, o.velocity.z])
        assert not np.allclose(ground, relative, atol=0.5), 'the camera moves: the two velocities differ'
        errors.append(np.linalg.norm(ground - truth))
    assert errors, 'no tracked object lies where a world object is'
    assert np.median(errors) < 4.0, errors


def test_bad_odometry_is_refused_and_counted_and_flow_falls_back_to_the_head(tiny_checkpoint):
    from nav_msgs.msg import Odometry
    from node_harness import NodeHarness, rgb_image
    h = NodeHarness(tiny_checkpoint, always_run=True, flow__mode='ego_motion')
    try:
        h.configure_activate()
        h.subscribe(OpticalFlow, f'{NS}/flow')
        pub = h.publisher(Odometry, f'{NS}/input/odom')
        assert h.wait_matched(pub)
        bad = odometry_msg(np.eye(4), 0)
        bad.pose.pose.orientation.w = 0.0                       # not a rotation
        for _ in range(3):
            pub.publish(bad)
        assert h.wait_for(lambda: h.node.counters['odom_rejected'] >= 1, timeout=10)
        assert 'unit quaternion' in h.node.last_error and not h.node._odom.present
        img = h.publisher(Image, f'{NS}/input/image')
        assert h.wait_matched(img)
        # frames until a flow arrives: the first ones may be lost to discovery (wait_matched sees
        # only the publisher's side) or dropped by the latest-frame policy, and flow needs two
        deadline, k = time.monotonic() + 30, 0
        while not h.received[f'{NS}/flow'] and time.monotonic() < deadline:
            img.publish(rgb_image(64, 96, stamp=(60, k * 100_000_000)))
            k += 1
            h.wait_for(lambda: bool(h.received[f'{NS}/flow']), timeout=0.5)
        assert h.received[f'{NS}/flow'], f'no flow after {k} frames'
        assert h.node.counters['flow_ego_motion'] == 0 and h.node.counters['errors'] == 0
        assert 'network (no odometry' in h.node._flow_source['']
    finally:
        h.close()
