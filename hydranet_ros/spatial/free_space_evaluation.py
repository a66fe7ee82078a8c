"""How well the free-space grid and the ground plane hold up, on synthetic drives with exact truth.

    python -m hydranet_ros.spatial.free_space_evaluation [--seeds 2000-2009] [--frames 6]
           [--style varied --style heldout] [--model NAME|PATH] [--stride 4] [--also-stride 2]
           [--json out.json]

Per frame, the node's grid (the network's depth and segmentation, the ground plane fitted per
frame with the parameters' default mount as prior, and with the plane fixed to the true mount) is
compared with the world's exact free space: the world's exact depth and classes through the same
projection, on the plane fitted to its exact ground points. IoU of free cells and of occupied
cells by forward range band (predicted cells looked up at the truth's cell centres, so a tilted
plane costs what it costs), and the fitted plane's height and pitch errors against the world's
camera. Default settings of the node's parameter table.
"""
from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

from hydranet_ros.spatial.cloud import Intrinsics
from hydranet_ros.spatial.ground import GridSpec, grid_agreement
from hydranet_ros.spatial.obstacles import GroundSettings, ground_scene

GROUND_CLASSES = ('road', 'lane_marking', 'sidewalk', 'terrain')
OBSTACLE_CLASSES = ('building', 'vegetation', 'pole', 'car', 'pedestrian')


def _mean(rows, key):
    vals = [r[key] for r in rows if not math.isnan(r[key])]
    return round(float(np.mean(vals)), 3) if vals else None


#: the truth's pixel stride (the node's default `points.stride`), whatever stride is scored
TRUTH_STRIDE = 2
#: the node's default `ground.stride`: the pixels its plane fit and grid use
GROUND_STRIDE = 4


def evaluate(model=None, seeds=range(2000, 2010), frames: int = 6, styles=('varied', 'heldout'),
             backend: str = 'onnxruntime', stride: int = GROUND_STRIDE, other_strides=()) -> dict:
    """The report: per style, mean IoUs by band for the fitted and the true-mount plane (the plane
    and grid from every stride-th pixel), plane errors; for each of other_strides, the fitted
    plane's grid from every that-many-th pixel, labelled 'fit, stride N' (the truth always from
    every TRUTH_STRIDE-th pixel)."""
    from hydranet_ros.inference import Predictor
    from hydranet_ros.model.registry import resolve
    from hydranet_ros.world import World
    path, pin = resolve(model)
    predictor = Predictor(path, device='cpu', backend=backend, expected_sha256=pin)
    names = predictor.segmentation_names
    spec = GridSpec()
    report = {'model': predictor.model_id, 'seeds': list(seeds), 'frames_per_drive': frames, 'grid': vars(spec)}
    for style in styles:
        rows = {'fit': [], 'true mount': [], **{f'fit, stride {n}': [] for n in other_strides}}
        height_err, pitch_err = [], []
        for seed in seeds:
            world = World(seed, style=style)
            cam = world.camera
            k = Intrinsics.from_k(cam.k, cam.height, cam.width)
            true_pitch = -math.degrees(world.scene.pitch)           # REP 103 sign
            mount = dict(camera_height_m=world.scene.camera_height, camera_pitch_deg=true_pitch)
            truth_settings = GroundSettings.from_names(names, GROUND_CLASSES, OBSTACLE_CLASSES, **mount)
            for frame in world.frames(frames * 4):
                if frame.index % 4:
                    continue
                result, = predictor.predict(frame.rgb, tasks=('segmentation', 'depth'), focal_px=cam.fx)
                truth = ground_scene(frame.depth, frame.segmentation, k, truth_settings, stride=TRUTH_STRIDE)
                truth_grid = truth.grid(spec, 0.2, 2.5)
                for label, settings in (('fit', GroundSettings.from_names(names, GROUND_CLASSES, OBSTACLE_CLASSES)),
                                        ('true mount', GroundSettings.from_names(names, GROUND_CLASSES,
                                                                                 OBSTACLE_CLASSES, plane='fixed',
                                                                                 **mount))):
                    scene = ground_scene(result.depth, result.segmentation, k, settings, stride=stride)
                    rows[label].append(grid_agreement(scene.grid(spec, 0.2, 2.5), truth_grid))
                    if label == 'fit':
                        height_err.append(abs(scene.plane.offset - truth.plane.offset))
                        pitch_err.append(abs(math.degrees(scene.plane.pitch_rad - truth.plane.pitch_rad)))
                fit = GroundSettings.from_names(names, GROUND_CLASSES, OBSTACLE_CLASSES)
                for n in other_strides:
                    scene = ground_scene(result.depth, result.segmentation, k, fit, stride=n, parts={'grid'})
                    rows[f'fit, stride {n}'].append(grid_agreement(scene.grid(spec, 0.2, 2.5), truth_grid))
        report[style] = {label: {key: _mean(r, key) for key in r[0]} for label, r in rows.items()}
        report[style]['plane_height_error_m_median'] = round(float(np.median(height_err)), 3)
        report[style]['plane_pitch_error_deg_median'] = round(float(np.median(pitch_err)), 2)
        report[style]['frames'] = len(height_err)
    return report


def main(argv=None) -> int:
    """CLI: print the report as JSON."""
    from hydranet_ros.training.evaluation import parse_seeds
    parser = argparse.ArgumentParser(prog='python -m hydranet_ros.spatial.free_space_evaluation',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default=None)
    parser.add_argument('--seeds', default='2000-2009')
    parser.add_argument('--frames', type=int, default=6, help='frames per drive (every 4th of the drive)')
    parser.add_argument('--style', action='append', help='world style(s); default varied and heldout')
    parser.add_argument('--stride', type=int, default=GROUND_STRIDE,
                        help="the plane's and grid's pixel stride (the node's ground.stride)")
    parser.add_argument('--also-stride', type=int, action='append', default=[],
                        help='also score the fitted grid from every N-th pixel (repeatable)')
    parser.add_argument('--json')
    args = parser.parse_args(argv)
    report = evaluate(args.model, parse_seeds(args.seeds), args.frames, tuple(args.style or ('varied', 'heldout')),
                      stride=args.stride, other_strides=tuple(args.also_stride))
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        with open(args.json, 'w') as f:
            f.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
