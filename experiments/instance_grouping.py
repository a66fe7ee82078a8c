"""Choose the instance grouping's peak threshold and window (issue 32): PQ of a checkpoint's
instance head on validation drives (seeds 1000-1003 by default: neither the head's training
drives 100-119 nor the evaluation's 2000-2009) for each (threshold, window), the network run once
per frame and only the grouping repeated.

    python -m experiments.instance_grouping CKPT [--seeds 1000-1003] [--frames 4] [--style varied]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from hydranet_ros.inference.instances import group_instances, upsample_offsets
from hydranet_ros.metrics import PanopticQuality
from hydranet_ros.training.evaluation import parse_seeds

THRESHOLDS = (0.1, 0.2, 0.3, 0.5)
WINDOWS = (3, 5, 7, 9)


def main(argv=None) -> int:
    from hydranet_ros.inference import Predictor
    from hydranet_ros.world import World
    from hydranet_ros.world.classes import SEG_ID
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('checkpoint')
    p.add_argument('--seeds', default='1000-1003')
    p.add_argument('--frames', type=int, default=4)
    p.add_argument('--style', default='varied')
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    predictor = Predictor(args.checkpoint, device='cpu', backend='torch')
    names = [str(n) for n in predictor.segmentation_names]
    to_world = np.array([SEG_ID.get(n, 255) for n in names])
    cases = []
    for n, seed in enumerate(parse_seeds(args.seeds)):
        world = World(seed, camera=('kitti', 'vga')[n % 2], style=args.style)
        for frame in world.frames(args.frames * 4):
            if frame.index % 4:
                continue
            # the raw maps, grouped below as the Predictor does (at model resolution, then resized)
            captured = {}
            original = predictor._instances

            def capture(maps, seg, size_hw):
                captured.update(maps=maps, seg=seg, size=size_hw)
                return original(maps, seg, size_hw)
            predictor._instances = capture
            result, = predictor.predict(frame.rgb, tasks=('segmentation', 'instances'))
            predictor._instances = original
            cases.append((captured, result, frame))
    print(f'{len(cases)} frames of {args.style} drives {args.seeds}; PQ (car, pedestrian) per threshold x window')
    print('| threshold | ' + ' | '.join(f'window {w}' for w in WINDOWS) + ' |\n|---|' + '---|' * len(WINDOWS))
    for thr in THRESHOLDS:
        row = []
        for win in WINDOWS:
            metric = PanopticQuality({SEG_ID['car']: 'car', SEG_ID['pedestrian']: 'pedestrian'})
            for captured, result, frame in cases:
                maps, seg = captured['maps'], captured['seg']
                ch, cw = seg.shape
                gh, gw = -(-ch // 4), -(-cw // 4)
                offsets = upsample_offsets(maps[1:, :gh, :gw], (gh * 4, gw * 4))[:, :ch, :cw]
                ids = group_instances(maps[0, :gh, :gw], offsets, np.isin(seg, predictor.thing_ids), threshold=thr,
                                      window=win)
                import cv2
                h, w = captured['size']
                ids = cv2.resize(ids, (w, h), interpolation=cv2.INTER_NEAREST) if (ch, cw) != (h, w) else ids
                metric.update(ids, to_world[result.segmentation], frame.instances, frame.segmentation)
            r = metric.compute()
            row.append(f"{r['pq']:.3f} ({r['car']['pq']:.3f}, {r['pedestrian']['pq']:.3f})")
        print(f'| {thr} | ' + ' | '.join(row) + ' |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
