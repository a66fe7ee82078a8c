"""Where flow goes wrong (issue 17; docs/MODEL.md, "Depth and flow without labels"): flow EPE of
one or more networks on held-out drives of the synthetic world, at one input size for all, split
by the size of the true motion and by the true depth, with each group's share of the overall EPE,
and the EPE per drive. Run it on a label-free network and on the supervised bundled one to see
which motions the photometric loss did not teach.

    python bench/flow_by_motion.py models/hydranet_selfsup_odometry2.pt models/hydranet_default.pt \
        [--size 128x416] [--seeds 2000-2009] [--frames 10] [--json runs/flow_by_motion.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hydranet_ros.model.checkpoint import load_checkpoint  # noqa: E402
from hydranet_ros.training.datasets import SyntheticDataset  # noqa: E402
from hydranet_ros.training.evaluation import _seeds  # noqa: E402

MOTION = ((0, 2), (2, 5), (5, 10), (10, 20), (20, 40), (40, np.inf))    # |true flow|, px at the input
DEPTH = ((0, 5), (5, 10), (10, 20), (20, 40), (40, np.inf))             # metres


def _table(err: np.ndarray, key: np.ndarray, bands) -> list[dict]:
    rows = []
    for lo, hi in bands:
        sel = (key >= lo) & (key < hi)
        rows.append({'band': f'{lo}-{hi}' if np.isfinite(hi) else f'> {lo}', 'pixels': round(float(sel.mean()), 3),
                     'epe': round(float(err[sel].mean()), 2) if sel.any() else None,
                     'share': round(float(err[sel].sum() / err.sum()), 2)})
    return rows


def score(checkpoint: str, size, seeds, frames: int, style: str, camera: str) -> dict:
    loaded = load_checkpoint(checkpoint)
    model = loaded.model.eval()
    ds = SyntheticDataset(seeds, frames, size, camera, model.config.num_detection_classes, style=style)
    errs, mags, depths, per_drive = [], [], [], {}
    with torch.no_grad():
        for i in range(len(ds)):
            item, sample = ds[i], ds.samples[i]
            flow = model(item['image'][None], ['flow'], previous_images=item['prev_image'][None])['flow'][0]
            flow = flow.numpy().transpose(1, 2, 0)
            gt = sample['flow'].astype(np.float32)
            valid = np.isfinite(gt).all(-1)
            err = np.linalg.norm(flow - gt, axis=-1)[valid]
            errs.append(err)
            mags.append(np.linalg.norm(gt, axis=-1)[valid])
            depths.append(sample['depth'].astype(np.float64)[valid])
            per_drive.setdefault(sample['seed'], []).append(float(err.mean()))
    err, mag, depth = np.concatenate(errs), np.concatenate(mags), np.concatenate(depths)
    return {'checkpoint': checkpoint, 'sha256': loaded.sha256[:12], 'trained_at': list(loaded.metadata.input_size),
            'epe': round(float(err.mean()), 3),
            'by_motion_px': _table(err, mag, MOTION), 'by_depth_m': _table(err, depth, DEPTH),
            'per_drive': {str(k): round(float(np.mean(v)), 2) for k, v in per_drive.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('checkpoints', nargs='+')
    p.add_argument('--size', default='128x416', help='HxW every network is run at')
    p.add_argument('--seeds', default='2000-2009')
    p.add_argument('--frames', type=int, default=10)
    p.add_argument('--style', default='varied')
    p.add_argument('--camera', default='kitti')
    p.add_argument('--json', help='write the numbers here too')
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    size = tuple(int(v) for v in args.size.lower().split('x'))
    results = [score(c, size, _seeds(args.seeds), args.frames, args.style, args.camera) for c in args.checkpoints]
    for r in results:
        print(f"\n{r['checkpoint']} ({r['sha256']}, trained at {r['trained_at']}): EPE {r['epe']} px at {size}")
        for name in ('by_motion_px', 'by_depth_m'):
            print(f'| {name} | pixels | EPE (px) | share of EPE |\n|---|---|---|---|')
            for row in r[name]:
                print(f"| {row['band']} | {row['pixels']} | {row['epe']} | {row['share']} |")
        print('per drive:', r['per_drive'])
    if args.json:
        Path(args.json).write_text(json.dumps({'size': list(size), 'seeds': args.seeds, 'frames': args.frames,
                                               'style': args.style, 'results': results}, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
