"""How well the track ids and 3D boxes hold up, on synthetic drives with exact ground truth.

    python -m hydranet_ros.spatial.evaluation [--seeds 2000 2001] [--frames 40] [--model NAME|PATH]
        [--style varied --style heldout]

Per frame, predicted boxes are matched to the detectable ground-truth boxes (IoU >= 0.5,
greedy, same class). CLEAR-MOT counts: misses (unmatched truth), false positives (unmatched
predictions), identity switches (a truth object matched to a different id than the last time it
was matched); MOTA = 1 - (misses + false positives + switches) / truth boxes. For the matched
pairs, the 3D box lifted from the predicted depth and segmentation is compared with the object's
box in the world: the near face (where the object begins, along the optical axis) and the
lateral centre. Both tracking modes (flow-guided and IoU only) run on the same detections. The
flow-guided tracks also feed the motion estimator (detections_3d/motion): each valid velocity
against the object's true velocity relative to the camera (the world's near-face centre one frame
apart), by range band, and the time to contact where both say the object approaches; with the
world's odometry (the drive's true camera motion, as `input/odom` and the mount give the node)
the velocity over the ground against the object's true one, and the flow EPE of the flow head
against the ego-motion flow (flow.mode ego_motion).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field, replace

import numpy as np

from hydranet_ros.spatial.cloud import Intrinsics
from hydranet_ros.spatial.ego_motion import Mount, ego_motion_flow
from hydranet_ros.spatial.objects3d import class_label_map, lift_detections
from hydranet_ros.spatial.motion import MotionEstimator, closing, flow_velocity, near_face_centre
from hydranet_ros.spatial.tracking import FlowTracker, iou_matrix
from hydranet_ros import DEFAULT_SCORE_THRESHOLD


@dataclass
class MotCounts:
    """CLEAR-MOT counts accumulated over frames."""
    truth: int = 0
    misses: int = 0
    false_positives: int = 0
    switches: int = 0
    matches: int = 0
    _last_id: dict = field(default_factory=dict)

    def add_frame(self, truth_boxes, truth_ids, truth_classes, boxes, ids, classes, iou_threshold=0.5):
        """One frame: returns the matched (truth index, prediction index) pairs."""
        self.truth += len(truth_boxes)
        pairs = match(truth_boxes, truth_classes, boxes, classes, iou_threshold)
        for t, p in pairs:
            last = self._last_id.get(truth_ids[t])
            if last is not None and last != ids[p]:
                self.switches += 1
            self._last_id[truth_ids[t]] = ids[p]
        self.matches += len(pairs)
        self.misses += len(truth_boxes) - len(pairs)
        self.false_positives += len(boxes) - len(pairs)
        return pairs

    @property
    def mota(self) -> float:
        return 1.0 - (self.misses + self.false_positives + self.switches) / max(self.truth, 1)


def match(truth_boxes, truth_classes, boxes, classes, iou_threshold=0.5) -> list[tuple[int, int]]:
    """Greedy one-to-one matching by IoU (highest first), same class, IoU >= iou_threshold."""
    if not len(truth_boxes) or not len(boxes):
        return []
    iou = iou_matrix(truth_boxes, boxes)
    iou = np.where(np.array(truth_classes)[:, None] == np.array(classes)[None, :], iou, 0.0)
    pairs, used_t, used_p = [], set(), set()
    for flat in np.argsort(-iou, axis=None):
        t, p = divmod(int(flat), iou.shape[1])
        if iou[t, p] < iou_threshold:
            break
        if t not in used_t and p not in used_p:
            used_t.add(t)
            used_p.add(p)
            pairs.append((t, p))
    return pairs


@dataclass
class MotionScore:
    """Velocity and time-to-contact errors of matched tracks, by the truth's range."""
    bands: tuple = ((0, 15), (15, 30), (30, 80))
    rows: list = field(default_factory=list)     # (range, |v error| m/s, ttc predicted, ttc true)

    def add(self, motion, truth_now, truth_before, dt: float):
        true_v = (truth_now - truth_before) / dt
        _, true_ttc = closing(truth_now, true_v)
        self.rows.append((float(np.linalg.norm(truth_now)), float(np.linalg.norm(motion.velocity - true_v)),
                          motion.time_to_contact, true_ttc))

    def add_velocity(self, truth_now, velocity, true_velocity):
        """A velocity against the truth alone (over the ground: no time to contact)."""
        self.rows.append((float(np.linalg.norm(truth_now)), float(np.linalg.norm(velocity - true_velocity)),
                          math.inf, math.inf))

    def report(self) -> dict:
        if not self.rows:
            return {}
        r = np.array(self.rows)
        out = {'objects': len(r)}
        for lo, hi in self.bands:
            band = (r[:, 0] >= lo) & (r[:, 0] < hi)
            if band.any():
                out[f'velocity_error_mps_median_{lo}_{hi}m'] = round(float(np.median(r[band, 1])), 2)
                out[f'velocity_error_mps_p90_{lo}_{hi}m'] = round(float(np.percentile(r[band, 1], 90)), 2)
                out[f'objects_{lo}_{hi}m'] = int(band.sum())
        both = np.isfinite(r[:, 2]) & np.isfinite(r[:, 3]) & (r[:, 3] < 10)
        if both.any():
            rel = np.abs(r[both, 2] - r[both, 3]) / r[both, 3]
            out['ttc_rel_error_median'] = round(float(np.median(rel)), 3)
            out['ttc_pairs_under_10s'] = int(both.sum())
        return out


@dataclass
class _Scores:
    """Everything evaluate() accumulates over the drives of one style."""
    counts: dict = field(default_factory=lambda: {'flow': MotCounts(), 'iou': MotCounts()})
    near_err: list = field(default_factory=list)
    lateral_err: list = field(default_factory=list)
    distances: list = field(default_factory=list)
    motion: MotionScore = field(default_factory=MotionScore)
    over_ground: MotionScore = field(default_factory=MotionScore)
    from_flow: MotionScore = field(default_factory=MotionScore)
    flow_epe: dict = field(default_factory=lambda: {'network': [], 'ego_motion': []})

    def report(self) -> dict:
        out = {}
        for mode, c in self.counts.items():
            out[f'tracking_{mode}'] = {'truth_boxes': c.truth, 'matches': c.matches, 'misses': c.misses,
                                       'false_positives': c.false_positives, 'id_switches': c.switches,
                                       'mota': round(c.mota, 3)}
        near_err, lateral_err, distances = map(np.asarray, (self.near_err, self.lateral_err, self.distances))
        if len(near_err):
            rel = np.abs(near_err) / distances
            out['boxes_3d'] = {'objects': int(len(near_err)),
                               'near_face_abs_error_m_median': round(float(np.median(np.abs(near_err))), 2),
                               'near_face_rel_error_median': round(float(np.median(rel)), 3),
                               'near_face_rel_error_p90': round(float(np.percentile(rel, 90)), 3),
                               'lateral_abs_error_m_median': round(float(np.median(np.abs(lateral_err))), 2),
                               'distance_m_median': round(float(np.median(distances)), 1)}
        out['motion'] = self.motion.report()
        out['motion_over_ground'] = self.over_ground.report()
        out['motion_from_flow'] = self.from_flow.report()
        if self.flow_epe['network']:
            out['flow_epe_px'] = {k: round(float(np.mean(v)), 3) for k, v in self.flow_epe.items()}
            out['flow_epe_px']['frames'] = len(self.flow_epe['network'])
        return out


def _world_velocity(world, index_now, index_before, face_now, face_before) -> np.ndarray:
    """An object's true velocity over the ground (m/s) in the optical frame of frame index_now."""
    c_now, c_before = world.scene.camera_to_world(index_now * world.dt), world.scene.camera_to_world(
        index_before * world.dt)
    moved = (c_now[:3, :3] @ face_now + c_now[:3, 3]) - (c_before[:3, :3] @ face_before + c_before[:3, 3])
    return c_now[:3, :3].T @ moved / world.dt


def _score_drive(predictor, world, stream: str, frames: int, scores: _Scores, cmap, movers):
    """One drive: tracking, 3D boxes, motion (relative and over the ground), flow with odometry."""
    from hydranet_ros.bag.make_bag import camera_odometry
    k = Intrinsics.from_k(world.camera.k, world.camera.height, world.camera.width)
    trackers = {mode: FlowTracker() for mode in scores.counts}
    motion, over_ground, previous_truth, previous_pose = MotionEstimator(), MotionEstimator(), {}, None
    mount = Mount().optical_in_base()
    for frame in world.frames(frames):
        stamp = 1_000_000_000 + frame.index * 100_000_000
        result, = predictor.predict(frame.rgb, streams=[stream], stamps_ns=[stamp])
        pose = camera_odometry(world, frame.stamp) @ mount      # what input/odom and the mount give the node
        if result.flow is not None and previous_pose is not None:
            ego = ego_motion_flow(result.flow, result.depth, result.segmentation, k,
                                  np.linalg.inv(previous_pose) @ pose, movers)
            valid = np.isfinite(frame.flow).all(-1)
            for name, flow in (('network', result.flow), ('ego_motion', ego)):
                scores.flow_epe[name].append(float(np.linalg.norm(flow - frame.flow, axis=-1)[valid].mean()))
        previous_pose = pose
        dets = result.detections
        boxes = np.array([[d.x1, d.y1, d.x2, d.y2] for d in dets]).reshape(-1, 4)
        classes = [d.class_id for d in dets]
        truth = [b for b in frame.boxes if b.detectable()]
        t_boxes = np.array([[b.x1, b.y1, b.x2, b.y2] for b in truth]).reshape(-1, 4)
        t_ids, t_classes = [b.instance for b in truth], [b.class_id for b in truth]
        pairs_by_mode, ids_by_mode = {}, {}
        for mode, tracker in trackers.items():
            ids = ids_by_mode[mode] = tracker.update(boxes, classes, stamp, result.flow if mode == 'flow' else None,
                                                     result.image_size)
            pairs_by_mode[mode] = scores.counts[mode].add_frame(t_boxes, t_ids, t_classes, boxes, ids, classes)
        objects = {o.index: o for o in lift_detections(boxes, classes, result.depth, k, result.segmentation, cmap)}
        world_boxes = world.objects_in_camera(frame.index)
        flow_pairs = pairs_by_mode['flow']
        positions = {str(ids_by_mode['flow'][p]): near_face_centre(objects[p].center, objects[p].size)
                     for _, p in flow_pairs if p in objects}
        by_id = {m.id: m for m in motion.update(stamp, positions)}
        ground_by_id = {m.id: m for m in over_ground.update(stamp, positions, pose)}
        for t, p in flow_pairs:
            m, g, inst = by_id.get(str(ids_by_mode['flow'][p])), ground_by_id.get(str(ids_by_mode['flow'][p])), t_ids[t]
            if m is None or not m.velocity_valid or inst not in world_boxes or inst not in previous_truth:
                continue
            face = near_face_centre(*world_boxes[inst])
            scores.motion.add(m, face, previous_truth[inst], world.dt)
            if result.flow is not None:
                v = flow_velocity(boxes[p], result.depth, result.flow, k, world.dt,
                                  result.segmentation, cmap.get(classes[p], ()))
                if v is not None:      # scored as the track's velocity would be, time to contact included
                    scores.from_flow.add(replace(m, velocity=v, time_to_contact=closing(m.position, v)[1]), face,
                                         previous_truth[inst], world.dt)
            if g is not None and g.over_ground_valid:
                scores.over_ground.add_velocity(face, g.velocity_over_ground,
                                                _world_velocity(world, frame.index, frame.index - 1, face,
                                                                previous_truth[inst]))
        previous_truth = {inst: near_face_centre(*box) for inst, box in world_boxes.items()}
        for t, p in pairs_by_mode['flow']:
            if p not in objects or t_ids[t] not in world_boxes:
                continue
            centre, size = world_boxes[t_ids[t]]
            near = centre[2] - size[2] / 2
            scores.near_err.append(objects[p].near_z - near)
            scores.lateral_err.append(objects[p].center[0] - centre[0])
            scores.distances.append(near)


def evaluate(model=None, seeds=(2000, 2001), frames: int = 40, backend: str = 'onnxruntime',
             styles=(None,), movers=('car', 'pedestrian')) -> dict:
    """Run the model over the drives of each style (None: the world's default look); tracking, 3D
    and motion numbers, and the flow with and without odometry (flow.mode ego_motion)."""
    from hydranet_ros.inference import Predictor
    from hydranet_ros.model.registry import resolve
    from hydranet_ros.world import World
    path, pin = resolve(model)
    predictor = Predictor(path, device='cpu', backend=backend, expected_sha256=pin,
                          score_threshold=DEFAULT_SCORE_THRESHOLD)
    cmap = class_label_map(predictor.class_names, predictor.segmentation_names)
    mover_ids = [predictor.segmentation_names.index(m) for m in movers if m in predictor.segmentation_names]
    report = {'model': predictor.model_id, 'seeds': list(seeds), 'frames_per_drive': frames}
    for style in styles:
        scores = _Scores()
        for seed in seeds:
            world = World(seed) if style is None else World(seed, style=style)
            _score_drive(predictor, world, f'{style}-{seed}', frames, scores, cmap, mover_ids)
        if style is None and len(styles) == 1:
            report.update(scores.report())
        else:
            report[style or 'default'] = scores.report()
    return report


def main(argv=None) -> int:
    """CLI: print the report as JSON."""
    parser = argparse.ArgumentParser(prog='python -m hydranet_ros.spatial.evaluation',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default=None)
    parser.add_argument('--seeds', type=int, nargs='+', default=[2000, 2001])
    parser.add_argument('--frames', type=int, default=40)
    parser.add_argument('--style', action='append', help="world style(s), e.g. varied, heldout; default: the "
                                                         "world's default look")
    args = parser.parse_args(argv)
    print(json.dumps(evaluate(args.model, args.seeds, args.frames, styles=tuple(args.style or (None,))), indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
