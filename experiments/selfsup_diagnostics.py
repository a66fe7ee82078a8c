"""Where a label-free network's depth goes wrong, and two fixes checked against it (issue 17;
docs/MODEL.md, "Depth and flow without labels"), on held-out drives of the synthetic world:

- AbsRel by distance band and class, with each group's share of the overall AbsRel;
- a ground-contact prior: pixels of upright things (pole, pedestrian, car, building, vegetation)
  take, column by column, the depth of the ground pixel just below them (z-depth is constant up a
  vertical surface for a level camera). How many near (< 5 m) pixels have such a contact in view,
  and what the prior does to AbsRel, with the ground-truth and with the network's segmentation;
- depth triangulated from the flow head and the true camera motion (what distilling flow into
  depth could reach), against the depth head.

    python -m experiments.selfsup_diagnostics models/hydranet_selfsup_odometry2.pt [--seeds 2000-2009] [--frames 10]
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
from hydranet_ros.world.classes import SEG_ID, SEGMENTATION_CLASSES

GROUND = [SEG_ID[n] for n in ('road', 'lane_marking', 'sidewalk', 'terrain')]
UPRIGHT = [SEG_ID[n] for n in ('pole', 'pedestrian', 'car', 'building', 'vegetation')]
BANDS = (('< 5 m', 0.0, 5.0), ('5-10 m', 5.0, 10.0), ('10-40 m', 10.0, 40.0), ('> 40 m', 40.0, np.inf))


def ground_contact(depth: np.ndarray, seg: np.ndarray):
    """(depth with every run of one upright class in a column set to the depth of the ground pixel
    just below the run, mask of the pixels that had such a contact)."""
    out, hit = depth.copy(), np.zeros(seg.shape, bool)
    ground, upright = np.isin(seg, GROUND), np.isin(seg, UPRIGHT)
    h, w = seg.shape
    for x in range(w):
        y = h - 1
        while y >= 0:
            if not upright[y, x]:
                y -= 1
                continue
            top = y
            while top > 0 and seg[top - 1, x] == seg[y, x]:
                top -= 1
            if y + 1 < h and ground[y + 1, x]:
                out[top:y + 1, x] = depth[y + 1, x]
                hit[top:y + 1, x] = True
            y = top - 1
    return out, hit


def triangulate(flow: np.ndarray, t_this_to_prev: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Depth of each pixel of this frame from its flow (previous -> this, [2, H, W]) and the camera
    motion: least squares of the two projection equations in the previous camera."""
    h, w = flow.shape[1:]
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.linalg.inv(k) @ np.stack([u.ravel(), v.ravel(), np.ones(h * w)])
    a = k @ (t_this_to_prev[:3, :3] @ rays)
    b = k @ t_this_to_prev[:3, 3:]
    uq, vq = (u - flow[0]).ravel(), (v - flow[1]).ravel()
    c1, c2 = a[0] - uq * a[2], a[1] - vq * a[2]
    e1, e2 = uq * b[2] - b[0], vq * b[2] - b[1]
    return ((c1 * e1 + c2 * e2) / np.maximum(c1 ** 2 + c2 ** 2, 1e-12)).reshape(h, w)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('checkpoint')
    p.add_argument('--seeds', default='2000-2009')
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
    ds = SyntheticDataset(parse_seeds(args.seeds), args.frames, size, args.camera, model.config.num_detection_classes,
                          style=args.style, odometry=True)
    names = [n for n, _ in SEGMENTATION_CLASSES]
    groups, totals = {}, {k: [0.0, 0] for k in ('depth head', 'contact prior, true classes',
                                                 'contact prior, network classes', 'triangulated from flow')}
    near, near_contact = 0, 0
    with torch.no_grad():
        for i in range(len(ds)):
            item, s = ds[i], ds.samples[i]
            out = model(item['image'][None], ['segmentation', 'depth', 'flow'],
                        previous_images=item['prev_image'][None])
            d = out['depth'][0, 0].numpy().astype(np.float64)
            seg_net = out['segmentation'][0].argmax(0).numpy()
            gt, seg = s['depth'].astype(np.float64), s['segmentation']
            valid = np.isfinite(gt) & (gt >= lo) & (gt <= hi)
            err = np.where(valid, np.abs(d - gt) / np.where(valid, gt, 1.0), 0.0)
            for band, a, b in BANDS:
                m = valid & (gt >= a) & (gt < b)
                for c in np.unique(seg[m]):
                    g = groups.setdefault((band, names[c] if c < len(names) else str(c)), [0.0, 0, []])
                    mm = m & (seg == c)
                    g[0] += err[mm].sum()
                    g[1] += int(mm.sum())
                    g[2].append(float(np.median(d[mm] / gt[mm])))
            with_true, hit = ground_contact(d, seg)
            with_net, _ = ground_contact(d, seg_net)
            tri = np.clip(triangulate(out['flow'][0].numpy().astype(np.float64), np.asarray(s['relative_pose']),
                                      np.asarray(s['intrinsics'])), lo, hi)
            for key, x in (('depth head', d), ('contact prior, true classes', with_true),
                           ('contact prior, network classes', with_net), ('triangulated from flow', tri)):
                totals[key][0] += (np.abs(x - gt) / np.where(valid, gt, 1.0))[valid].sum()
                totals[key][1] += int(valid.sum())
            near_mask = valid & (gt < 5.0)
            near += int(near_mask.sum())
            near_contact += int((near_mask & hit).sum())
    overall = totals['depth head'][0]
    result = {
        'checkpoint': str(args.checkpoint), 'held_out': f'{args.style} seeds {args.seeds}, {len(ds)} frames',
        'abs_rel': {k: round(v[0] / max(v[1], 1), 4) for k, v in totals.items()},
        'near_pixels_with_ground_contact_in_view': f'{near_contact} of {near}',
        'groups': [{'band': b, 'class': c, 'pixels': n, 'abs_rel': round(e / n, 3),
                    'share_of_abs_rel': round(e / overall, 3), 'median_ratio': round(float(np.median(r)), 2)}
                   for (b, c), (e, n, r) in sorted(groups.items(), key=lambda kv: -kv[1][0])]}
    print(json.dumps({k: v for k, v in result.items() if k != 'groups'}, indent=1))
    print('| distance | class | pixels | AbsRel | share of AbsRel | median ratio |\n|---|---|---|---|---|---|')
    for g in result['groups'][:12]:
        print(f"| {g['band']} | {g['class']} | {g['pixels']} | {g['abs_rel']} | {g['share_of_abs_rel']} | "
              f"{g['median_ratio']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
