"""Where flow goes wrong (issue 17; docs/MODEL.md, "Depth and flow without labels"): flow EPE of
one or more networks on held-out drives of the synthetic world, at one input size for all, split
by the size of the true motion and by the true depth, with each group's share of the overall EPE,
and the EPE per drive. Run it on a label-free network and on the supervised bundled one to see
which motions the photometric loss did not teach. --rigid also scores the flow a static scene would
have under the network's own depth and the true camera motion (odometry), against the flow head,
on static and on moving pixels (moving: the true flow differs by > 1 px from the rigid flow of the
true depth): how much better a flow the depth head already knows than the flow head, and the
flow that takes the rigid flow wherever the network's own segmentation sees no mover (--movers,
default car,pedestrian) and the flow head elsewhere: no label involved, only the camera motion
(odometry) at run time.

    python -m experiments.flow_by_motion models/hydranet_selfsup_odometry2.pt models/hydranet_default.pt \
        [--size 128x416] [--seeds 2000-2009] [--frames 10] [--rigid] [--json runs/flow_by_motion.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


from hydranet_ros.model.checkpoint import load_checkpoint
from hydranet_ros.training.datasets import SyntheticDataset
from hydranet_ros.training.evaluation import parse_seeds
from hydranet_ros.training.self_supervised import rigid_flow

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


def _rigid_table(head: np.ndarray, rigid: np.ndarray, mag: np.ndarray, moving: np.ndarray) -> list[dict]:
    rows = []
    for name, part in (('static', ~moving), ('moving', moving)):
        for lo, hi in MOTION:
            sel = part & (mag >= lo) & (mag < hi)
            rows.append({'pixels': name, 'band': f'{lo}-{hi}' if np.isfinite(hi) else f'> {lo}',
                         'share': round(float(sel.mean()), 3),
                         'epe_head': round(float(head[sel].mean()), 2) if sel.any() else None,
                         'epe_rigid': round(float(rigid[sel].mean()), 2) if sel.any() else None})
    return rows


def score(checkpoint: str, size, seeds, frames: int, style: str, camera: str, rigid: bool = False,
          movers=('car', 'pedestrian')) -> dict:
    loaded = load_checkpoint(checkpoint)
    model = loaded.model.eval()
    names = loaded.metadata.segmentation_names
    unknown = sorted(set(movers) - set(names))
    if rigid and unknown:
        raise SystemExit(f'--movers {unknown} are not classes of {checkpoint}: {names}')
    mover_ids = torch.tensor([names.index(m) for m in movers]) if rigid else None
    ds = SyntheticDataset(seeds, frames, size, camera, model.config.num_detection_classes, style=style,
                          odometry=rigid)
    errs, mags, depths, per_drive, rigid_errs, moving, fused_errs = [], [], [], {}, [], [], []
    with torch.no_grad():
        for i in range(len(ds)):
            item, sample = ds[i], ds.samples[i]
            out = model(item['image'][None], ['flow', 'depth', 'segmentation'] if rigid else ['flow'],
                        previous_images=item['prev_image'][None])
            flow = out['flow'][0].numpy().transpose(1, 2, 0)
            gt = sample['flow'].astype(np.float32)
            valid = np.isfinite(gt).all(-1)
            err = np.linalg.norm(flow - gt, axis=-1)[valid]
            errs.append(err)
            mags.append(np.linalg.norm(gt, axis=-1)[valid])
            depths.append(sample['depth'].astype(np.float64)[valid])
            per_drive.setdefault(sample['seed'], []).append(float(err.mean()))
            if rigid:
                if not bool(item['has_pose']) or not bool(item['has_intrinsics']):
                    raise SystemExit(f'frame {i} has no camera motion or intrinsics: --rigid needs both')
                k, t = item['intrinsics'][None], item['pose'][None]
                depth = out['depth'].float()
                if depth.shape[-2:] != gt.shape[:2]:
                    depth = torch.nn.functional.interpolate(depth, size=gt.shape[:2], mode='bilinear',
                                                            align_corners=False)
                mine = rigid_flow(depth, k, t)[0].numpy().transpose(1, 2, 0)
                true_depth = torch.from_numpy(np.nan_to_num(sample['depth'].astype(np.float32), nan=1e3, posinf=1e3))
                truth = rigid_flow(true_depth[None, None], k, t)[0].numpy().transpose(1, 2, 0)
                rigid_errs.append(np.linalg.norm(mine - gt, axis=-1)[valid])
                seen_moving = torch.isin(out['segmentation'][0].argmax(0), mover_ids).numpy()
                fused = np.where(seen_moving[..., None], flow, mine)
                fused_errs.append(np.linalg.norm(fused - gt, axis=-1)[valid])
                moving.append(np.linalg.norm(truth - gt, axis=-1)[valid] > 1.0)
    err, mag, depth = np.concatenate(errs), np.concatenate(mags), np.concatenate(depths)
    result = {'checkpoint': checkpoint, 'sha256': loaded.sha256[:12], 'trained_at': list(loaded.metadata.input_size),
              'epe': round(float(err.mean()), 3),
              'by_motion_px': _table(err, mag, MOTION), 'by_depth_m': _table(err, depth, DEPTH),
              'per_drive': {str(k): round(float(np.mean(v)), 2) for k, v in per_drive.items()}}
    if rigid:
        rerr, mov = np.concatenate(rigid_errs), np.concatenate(moving)
        result['rigid'] = {'epe_rigid': round(float(rerr.mean()), 3), 'moving_share': round(float(mov.mean()), 3),
                           'epe_rigid_static_head_moving': round(float(np.where(mov, err, rerr).mean()), 3),
                           'movers': list(movers), 'epe_fused': round(float(np.concatenate(fused_errs).mean()), 3),
                           'by_motion_px': _rigid_table(err, rerr, mag, mov)}
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('checkpoints', nargs='+')
    p.add_argument('--size', default='128x416', help='HxW every network is run at')
    p.add_argument('--seeds', default='2000-2009')
    p.add_argument('--frames', type=int, default=10)
    p.add_argument('--style', default='varied')
    p.add_argument('--camera', default='kitti')
    p.add_argument('--rigid', action='store_true',
                   help="also score the rigid flow of the network's depth and the true camera motion")
    p.add_argument('--movers', default='car,pedestrian',
                   help='segmentation classes whose pixels keep the flow head (with --rigid)')
    p.add_argument('--json', help='write the numbers here too')
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    size = tuple(int(v) for v in args.size.lower().split('x'))
    movers = tuple(m.strip() for m in args.movers.split(',') if m.strip())
    results = [score(c, size, parse_seeds(args.seeds), args.frames, args.style, args.camera, args.rigid, movers)
               for c in args.checkpoints]
    for r in results:
        print(f"\n{r['checkpoint']} ({r['sha256']}, trained at {r['trained_at']}): EPE {r['epe']} px at {size}")
        for name in ('by_motion_px', 'by_depth_m'):
            print(f'| {name} | pixels | EPE (px) | share of EPE |\n|---|---|---|---|')
            for row in r[name]:
                print(f"| {row['band']} | {row['pixels']} | {row['epe']} | {row['share']} |")
        print('per drive:', r['per_drive'])
        if 'rigid' in r:
            g = r['rigid']
            print(f"rigid flow of its depth + the camera motion: EPE {g['epe_rigid']} px (flow head {r['epe']}); "
                  f"rigid on static pixels, head on moving ({g['moving_share']:.1%}): "
                  f"{g['epe_rigid_static_head_moving']}; rigid where its segmentation sees no "
                  f"{'/'.join(g['movers'])}, head there: {g['epe_fused']}")
            print('| pixels | true motion (px) | share | flow head EPE | rigid flow EPE |\n|---|---|---|---|---|')
            for row in g['by_motion_px']:
                print(f"| {row['pixels']} | {row['band']} | {row['share']} | {row['epe_head']} | {row['epe_rigid']} |")
    if args.json:
        Path(args.json).write_text(json.dumps({'size': list(size), 'seeds': args.seeds, 'frames': args.frames,
                                               'style': args.style, 'results': results}, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
