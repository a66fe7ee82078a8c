"""Score a network trained without depth or flow labels (issue 17; docs/MODEL.md, "Depth and
flow without labels") on held-out drives of the synthetic world:

- depth AbsRel median-scaled (each image scaled to the ground truth's median: the shape alone);
- depth AbsRel metric with the camera-height scale: one global factor that makes the network's
  depth metric, found on *training* drives only from what a robot knows, its camera's height above
  the road and its mount's pitch: each road pixel of the network's own segmentation has a ray that
  meets a flat road at a known depth, and the factor is the median of that over the network's
  depth (median over frames; `scale_from_camera_height`, method 'rays'). No depth label is read
  to find it. Also with the older 'plane' fit (a RANSAC plane through the back-projected road,
  whose distance must be the height; no pitch needed);
- the same with the factor found per frame on the held-out frame itself (an online variant);
- flow EPE (pixels at the network input).

    python -m experiments.selfsup_eval models/hydranet_selfsup.pt [--seeds 2000-2009] [--calib-seeds 0-9]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


from hydranet_ros.metrics import DepthMetric, FlowMetric
from hydranet_ros.model.checkpoint import load_checkpoint
from hydranet_ros.training.datasets import SyntheticDataset
from hydranet_ros.training.evaluation import parse_seeds, median_ratio
from hydranet_ros.training.depth_scale import scale_from_camera_height
from hydranet_ros.world import World
from hydranet_ros.world.classes import SEGMENTATION_CLASSES

ROAD = [n for n, _ in SEGMENTATION_CLASSES].index('road')


def _frames(model, seeds, frames, size, style, camera):
    """(dataset, outputs [(depth, seg, flow)], camera height per sample)."""
    ds = SyntheticDataset(seeds, frames, size, camera, model.config.num_detection_classes, style=style)
    worlds = {s: World(s, camera, size=size, style=style).scene for s in seeds}
    outs = []
    with torch.no_grad():
        for i in range(len(ds)):
            it = ds[i]
            o = model(it['image'][None], ['segmentation', 'depth', 'flow'], previous_images=it['prev_image'][None])
            outs.append((o['depth'][0, 0].numpy(), o['segmentation'][0].argmax(0).numpy(), o['flow'][0].numpy()))
    # the mount as a robot's /tf_static gives it: height, and pitch (the world's looks up when positive)
    return ds, outs, [(worlds[s['seed']].camera_height, -worlds[s['seed']].pitch) for s in ds.samples]


def _camera_height_factor(depth, seg, k, mount, method='rays'):
    return scale_from_camera_height(depth, seg == ROAD, np.asarray(k, np.float64).reshape(-1), mount[0],
                                    pitch=mount[1], method=method)




def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('checkpoint')
    p.add_argument('--seeds', default='2000-2009', help='held-out drives scored')
    p.add_argument('--calib-seeds', default='0-9', help='training drives the camera-height factor is found on')
    p.add_argument('--frames', type=int, default=10)
    p.add_argument('--style', default='varied')
    p.add_argument('--camera', default='kitti')
    p.add_argument('--json', help='write the numbers here too')
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    loaded = load_checkpoint(args.checkpoint)
    model = loaded.model.eval()
    size = tuple(loaded.metadata.input_size)
    lo, hi = model.config.depth_min, model.config.depth_max
    cal, cal_out, cal_h = _frames(model, parse_seeds(args.calib_seeds), 5, size, args.style, args.camera)
    factors = [_camera_height_factor(d, s, cal.samples[i]['intrinsics'], cal_h[i])
               for i, (d, s, _) in enumerate(cal_out)]
    factors = [f for f in factors if f is not None]
    global_factor = float(np.median(factors)) if factors else None
    plane = [_camera_height_factor(d, s, cal.samples[i]['intrinsics'], cal_h[i], 'plane')
             for i, (d, s, _) in enumerate(cal_out)]
    plane = [f for f in plane if f is not None]
    plane_factor = float(np.median(plane)) if plane else None
    ds, outs, heights = _frames(model, parse_seeds(args.seeds), args.frames, size, args.style, args.camera)
    # the model card's metrics: AbsRel and EPE over every labelled pixel of the frames
    med, metric, per_frame, raw, metric_plane = (DepthMetric(lo, hi) for _ in range(5))
    flow_metric = FlowMetric()
    per_frame_frames = 0
    for i, (d, s, f) in enumerate(outs):
        sample = ds.samples[i]
        gt = sample['depth'].astype(np.float32)
        med.update(d * np.float32(median_ratio(d, gt, lo, hi)), gt)
        raw.update(d, gt)
        if global_factor:
            metric.update(d * np.float32(global_factor), gt)
        if plane_factor:
            metric_plane.update(d * np.float32(plane_factor), gt)
        own = _camera_height_factor(d, s, sample['intrinsics'], heights[i])
        if own:
            per_frame.update(d * np.float32(own), gt)
            per_frame_frames += 1
        flow_metric.update(f.transpose(1, 2, 0), sample['flow'].astype(np.float32))
    result = {
        'checkpoint': str(args.checkpoint), 'sha256': loaded.sha256[:12], 'input_size': list(size),
        'held_out': f'{args.style} seeds {args.seeds}, {len(outs)} frames, {args.camera}',
        'abs_rel_median_scaled': round(med.compute()['abs_rel'], 4),
        'camera_height_factor': None if global_factor is None else round(global_factor, 4),
        'calibration_frames': f'{len(factors)} of {len(cal_out)} (seeds {args.calib_seeds})',
        'abs_rel_metric_camera_height': round(metric.compute()['abs_rel'], 4) if global_factor else None,
        'camera_height_factor_plane_fit': None if plane_factor is None else round(plane_factor, 4),
        'abs_rel_metric_camera_height_plane_fit': round(metric_plane.compute()['abs_rel'], 4) if plane_factor else None,
        'abs_rel_metric_per_frame_camera_height':
            round(per_frame.compute()['abs_rel'], 4) if per_frame_frames else None,
        'per_frame_scaled_frames': per_frame_frames,
        'abs_rel_unscaled': round(raw.compute()['abs_rel'], 4),
        'flow_epe_px': round(flow_metric.compute()['epe'], 3)}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
