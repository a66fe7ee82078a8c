"""Cost of the planner outputs (issue 31) per frame, against the all-heads frame time.

    python bench/bench_planner_outputs.py [--checkpoint CKPT] [--frames 12] [--backend onnxruntime torch]

For 640x480 and 1242x375 frames of a synthetic drive, per backend: the Predictor on all four heads
(the frame time), the same with the depth uncertainty head and with the instance head as well (their
costs are the differences; timed apart, _head_costs), then, on those outputs, each planner output
built as the node builds it (default parameters: clouds from every 2nd pixel, the plane fit and the
grid from every 4th), message included: points/ground, points/obstacles (without and with a
height band over the fitted plane) and free_space each subscribed alone (the node splits the frame
only as far as the subscribed outputs need), all three together (one split), free_space's grid and
message from an existing split, the semantic cloud with its sigma field
against without, the ego-motion flow (flow.mode ego_motion, with the drive's odometry) and the depth
+ flow velocities of every detection (detections_3d/motion's velocity_from_flow); with the instance
head (issue 32): the frame with `instances` as well (head and grouping), the ids made track ids, and
the cloud's instance field. Round-robin per frame in this one process; medians (the first frame left
out), and each cost as a share of the frame time of the same backend and size.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
from std_msgs.msg import Header

from hydranet_ros import TASKS
from hydranet_ros.bag.make_bag import camera_odometry
from hydranet_ros.inference import Predictor
from hydranet_ros.model.registry import weights
from hydranet_ros.ros import messages
from hydranet_ros.spatial import Intrinsics, semantic_cloud
from hydranet_ros.spatial.ego_motion import ego_motion_flow
from hydranet_ros.spatial.free_space_evaluation import GROUND_STRIDE
from hydranet_ros.spatial.ground import GridSpec
from hydranet_ros.spatial.motion import flow_velocity
from hydranet_ros.spatial.objects3d import class_label_map
from hydranet_ros.spatial.obstacles import GroundSettings, ground_scene
from hydranet_ros.spatial.tracking import track_instance_ids
from hydranet_ros.world import World

SIZES = {'640x480': 'vga', '1242x375': 'kitti'}
GROUND = ('road', 'lane_marking', 'sidewalk', 'terrain')
OBSTACLES = ('building', 'vegetation', 'pole', 'car', 'pedestrian')


def _head_costs(predictor: Predictor, frames, rounds: int = 3) -> dict:
    """The frame time with each extra head against without, each task set over the whole drive on a
    stream of its own (its flow cache warm), the sets in turn, `rounds` times: medians. Alternating
    the graphs frame by frame (as _measure does for the outputs) costs cache locality that a node,
    which runs one set, does not pay, and hid a head's cost in that noise."""
    sets = {'frame': TASKS}
    sets.update({f'frame + {extra}': (*TASKS, extra) for extra in ('depth_uncertainty', 'instances')
                 if extra in predictor.tasks})
    times: dict[str, list] = {name: [] for name in sets}
    for r in range(rounds):
        for name, tasks in sets.items():
            for i, frame in enumerate(frames):
                s = time.perf_counter()
                predictor.predict(frame.rgb, tasks=tasks, streams=[f'{name}{r}'], stamps_ns=[1_000_000_000 + i * 10**8])
                if i:                                      # the first frame of a stream has no flow
                    times[name].append((time.perf_counter() - s) * 1e3)
    return {name: statistics.median(v) for name, v in times.items()}


def _measure(predictor: Predictor, frames, k, header, poses) -> dict:
    times: dict[str, list] = {}

    def timed(name, fn):
        s = time.perf_counter()
        out = fn()
        times.setdefault(name, []).append((time.perf_counter() - s) * 1e3)
        return out

    names = predictor.segmentation_names
    settings = GroundSettings.from_names(names, GROUND, OBSTACLES)
    spec = GridSpec()
    with_head = 'depth_uncertainty' in predictor.tasks
    movers = [names.index(n) for n in ('car', 'pedestrian')]
    cmap = class_label_map(predictor.class_names, names)
    previous_pose = None
    for i, frame in enumerate(frames):
        stamp = 1_000_000_000 + i * 100_000_000
        # the outputs to build on (the heads' own costs: _head_costs)
        r = predictor.predict(frame.rgb, tasks=(*TASKS, 'depth_uncertainty') if with_head else TASKS,
                              streams=['b'], stamps_ns=[stamp])[0]

        def split(parts, band=(0.0, 0.0)):      # what the node does with these outputs subscribed
            scene = ground_scene(r.depth, r.segmentation, k, settings, frame.rgb, 2, sigma=r.depth_uncertainty,
                                 parts=parts, grid_stride=GROUND_STRIDE, obstacle_band=band)
            if 'ground' in parts:
                messages.point_cloud(header, scene.ground)
            if 'obstacles' in parts:
                messages.point_cloud(header, scene.obstacles)
            if 'grid' in parts:
                messages.occupancy_grid(header, scene.grid(spec, 0.2, 2.5))
            return scene
        timed('points/ground alone', lambda: split({'ground'}))
        timed('points/obstacles alone', lambda: split({'obstacles'}))
        timed('points/obstacles alone, 0.2-2.5 m band', lambda: split({'obstacles'}, (0.2, 2.5)))
        timed('free_space alone (its split)', lambda: split({'grid'}))
        scene = timed('all three (one split)', lambda: split({'ground', 'obstacles', 'grid'}))
        timed('free_space (grid + message)', lambda: messages.occupancy_grid(header, scene.grid(spec, 0.2, 2.5)))
        timed('points (no sigma)', lambda: messages.point_cloud(header, semantic_cloud(
            r.depth, k, frame.rgb, r.segmentation, 2)))
        if r.flow is not None and previous_pose is not None:
            motion = np.linalg.inv(previous_pose) @ poses[i]
            timed('flow.mode ego_motion (rigid flow + movers)', lambda: ego_motion_flow(
                r.flow, r.depth, r.segmentation, k, motion, movers))
            boxes = [(d.x1, d.y1, d.x2, d.y2, d.class_id) for d in r.detections]
            timed('velocity_from_flow (every detection)', lambda: [
                flow_velocity(b[:4], r.depth, r.flow, k, 0.1, r.segmentation, cmap.get(b[4], ())) for b in boxes])
        previous_pose = poses[i]
        if 'instances' in predictor.tasks:
            grouping = predictor._instances            # the grouping after the network, timed on its own

            def timed_grouping(*args):
                return timed('instances: grouping (peaks + offsets)', lambda: grouping(*args))
            predictor._instances = timed_grouping
            ri = predictor.predict(frame.rgb, tasks=(*TASKS, 'instances'), streams=['c'], stamps_ns=[stamp])[0]
            predictor._instances = grouping
            boxes = np.array([[d.x1, d.y1, d.x2, d.y2] for d in ri.detections]).reshape(-1, 4)
            timed('instances: track ids + message', lambda: messages.instance_image(
                header, track_instance_ids(ri.instances, boxes, list(range(1, len(boxes) + 1)))))
            timed('points (instance field)', lambda: messages.point_cloud(header, semantic_cloud(
                ri.depth, k, frame.rgb, ri.segmentation, 2, instances=ri.instances)))
        if with_head:
            timed('points (with sigma)', lambda: messages.point_cloud(header, semantic_cloud(
                r.depth, k, frame.rgb, r.segmentation, 2, sigma=r.depth_uncertainty)))
    return {name: statistics.median(v[1:]) for name, v in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', default=None, help='default: the bundled model')
    parser.add_argument('--frames', type=int, default=12)
    parser.add_argument('--backend', nargs='+', default=['onnxruntime', 'torch'])
    args = parser.parse_args(argv)
    path = args.checkpoint or weights().path()
    header = Header(frame_id='camera_optical')
    print(f'Machine: {os.cpu_count()} CPU cores, torch {torch.__version__}; median of {args.frames - 1} frames '
          f'of a synthetic drive (the first left out), {path}\n')
    print('| size | backend | output | ms per frame | share of the all-heads frame |')
    print('|---|---|---|---|---|')
    for size, camera in SIZES.items():
        world = World(2000, camera=camera)
        frames = list(world.frames(args.frames))
        k = Intrinsics.from_k(world.camera.k, world.camera.height, world.camera.width)
        for backend in args.backend:
            predictor = Predictor(path, device='cpu', backend=backend)
            predictor.warmup(1)
            heads = _head_costs(predictor, frames)
            med = _measure(predictor, frames, k, header, [camera_odometry(world, f.stamp) for f in frames])
            frame = heads['frame']
            print(f'| {size} | {backend} | all four heads | {frame:.1f} | |')
            for extra, label in (('depth_uncertainty', 'depth/uncertainty (head)'),
                                 ('instances', 'instances (head + grouping)')):
                if f'frame + {extra}' in heads:
                    cost = heads[f'frame + {extra}'] - frame
                    print(f'| {size} | {backend} | {label} | {cost:.1f} | {100 * cost / frame:.1f}% |')
            for name, value in med.items():
                print(f'| {size} | {backend} | {name} | {value:.2f} | {100 * value / frame:.1f}% |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
