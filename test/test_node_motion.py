"""detections_3d/motion over real DDS: paired with detections_3d by id, units as documented, and
velocities against the synthetic world's true relative motion."""
import math

import numpy as np
from sensor_msgs.msg import CameraInfo
from vision_msgs.msg import Detection3DArray

from hydranet_ros.msg import ObjectMotionArray
from hydranet_ros.spatial.motion import near_face_centre
from hydranet_ros.world import World
from drive_harness import NS, run_drive


def test_motion_pairs_with_detections_3d_and_follows_the_world(node, drive):
    h = node
    for topic, typ in ((f'{NS}/detections_3d', Detection3DArray), (f'{NS}/detections_3d/motion', ObjectMotionArray),
                       (f'{NS}/camera_info', CameraInfo)):
        h.subscribe(typ, topic)
    got = run_drive(h, drive, [f'{NS}/detections_3d', f'{NS}/detections_3d/motion'])
    boxes, motions = got[f'{NS}/detections_3d'], got[f'{NS}/detections_3d/motion']
    assert len(boxes) == len(motions) == 3
    for b, m in zip(boxes, motions):
        assert b.header == m.header
        assert [o.id for o in m.objects] == [d.id for d in b.detections if d.id]
    first, last = motions[0], motions[-1]
    assert not any(o.velocity_valid for o in first.objects), 'one position gives no velocity'
    assert not any(o.flow_velocity_valid for o in first.objects), 'no frame pair yet'
    paired = [o for m in motions[1:] for o in m.objects if o.flow_velocity_valid]
    assert paired, 'from the second frame on, depth + flow give a velocity'
    for o in (o for m in motions for o in m.objects if not o.flow_velocity_valid):
        assert (o.velocity_from_flow.x, o.velocity_from_flow.y, o.velocity_from_flow.z) == (0.0, 0.0, 0.0)
    valid = [o for o in last.objects if o.velocity_valid]
    assert valid, 'three frames 0.1 s apart give tracked objects a velocity'
    world = World(2000)
    now, before = world.objects_in_camera(12), world.objects_in_camera(11)
    errors, flow_errors = [], []
    for o in valid:
        p = np.array([o.position.x, o.position.y, o.position.z])
        v = np.array([o.velocity.x, o.velocity.y, o.velocity.z])
        assert o.range == np.float32(np.linalg.norm(p))
        # closing speed and time to contact from the frame pair's velocity where there is one
        c = np.array([o.velocity_from_flow.x, o.velocity_from_flow.y, o.velocity_from_flow.z]) \
            if o.flow_velocity_valid else v
        closing = -(p @ c) / np.linalg.norm(p)
        assert math.isclose(o.closing_speed, closing, rel_tol=1e-4, abs_tol=1e-4)
        assert math.isinf(o.time_to_contact) if closing <= 0 else \
            math.isclose(o.time_to_contact, o.range / o.closing_speed, rel_tol=1e-4)
        assert not o.over_ground_valid
        faces = {inst: near_face_centre(*box) for inst, box in now.items() if inst in before}
        inst = min(faces, key=lambda i: np.linalg.norm(faces[i][[0, 2]] - p[[0, 2]]))
        if np.linalg.norm(faces[inst][[0, 2]] - p[[0, 2]]) < 0.2 * p[2]:
            truth = (faces[inst] - near_face_centre(*before[inst])) / world.dt
            errors.append(np.linalg.norm(v - truth))
            if o.flow_velocity_valid:
                f = np.array([o.velocity_from_flow.x, o.velocity_from_flow.y, o.velocity_from_flow.z])
                flow_errors.append(np.linalg.norm(f - truth))
    assert errors, 'no tracked object lies where a world object is'
    assert np.median(errors) < 4.0, errors
    assert flow_errors and np.median(flow_errors) < 6.0, flow_errors     # one frame pair: noisier
