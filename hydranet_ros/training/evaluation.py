"""Evaluating a HydraNet on a labelled dataset with the shared metrics."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from hydranet_ros.metrics import DepthMetric, DetectionMetric, FlowMetric, SegmentationMetric
from hydranet_ros.model.checkpoint import CheckpointError, load_checkpoint
from hydranet_ros.model.detection_decode import decode_detections
from hydranet_ros.training.datasets import SyntheticDataset
from hydranet_ros.world.camera import checkpoint_focal_px


@torch.no_grad()
def evaluate(model, dataset, tasks, batch_size: int = 8, max_samples: int | None = None,
             min_box: float = 4.0, max_occlusion: float = 0.7, median_scaled: bool = False) -> dict:
    """Metrics of model on dataset (a SyntheticDataset: samples at the network's input size).
    Ground-truth boxes too small or too occluded to be detectable are 'ignore' boxes.
    median_scaled: each image's depth is scaled so its median over the labelled pixels is the
    ground truth's (the usual score of depth known only up to scale, e.g. from video alone)."""
    cfg = model.config
    was_training = model.training
    model.eval()
    seg_m = SegmentationMetric(cfg.num_classes)
    depth_m = DepthMetric(cfg.depth_min, cfg.depth_max)
    flow_m = FlowMetric()
    det_m = DetectionMetric(cfg.num_detection_classes)
    n = len(dataset) if max_samples is None else min(len(dataset), max_samples)
    device = next(model.parameters()).device
    for start in range(0, n, batch_size):
        idx = list(range(start, min(n, start + batch_size)))
        items = [dataset[i] for i in idx]
        image = torch.stack([it['image'] for it in items]).to(device)
        prev_image = torch.stack([it['prev_image'] for it in items]).to(device)
        prev = model.encode_flow_features(prev_image) if 'flow' in tasks else None
        out = model(image, tasks, previous_features=prev)
        for j, i in enumerate(idx):
            raw = dataset.samples[i] if hasattr(dataset, 'samples') else None
            it = items[j]
            if 'segmentation' in out and it['has_segmentation']:
                seg_m.update(out['segmentation'][j].argmax(0).cpu().numpy(), it['segmentation'].numpy())
            if 'depth' in out and it['has_depth']:
                scale = float(raw.get('depth_scale', 1.0)) if raw is not None else 1.0   # the lens in use
                pred, gt = out['depth'][j, 0].cpu().numpy() * np.float32(scale), it['depth'].numpy()
                if median_scaled:
                    pred = pred * np.float32(median_ratio(pred, gt, cfg.depth_min, cfg.depth_max))
                depth_m.update(pred, gt)
            if 'flow' in out and it['has_flow']:
                flow_m.update(out['flow'][j].permute(1, 2, 0).cpu().numpy(), it['flow'].permute(1, 2, 0).numpy())
            if 'detection' in out and it['has_detection'] and raw is not None:
                dec = decode_detections(out['detection'][j:j + 1], cfg.num_detection_classes, top_k=100)
                gts = raw['all_boxes']
                gt_boxes = np.array([[b.x1, b.y1, b.x2, b.y2] for b in gts], np.float64).reshape(-1, 4)
                ignore = np.array([not b.detectable(max_occlusion, min_box) for b in gts], bool)
                det_m.update(dec.boxes[0].cpu().numpy(), dec.scores[0].cpu().numpy(), dec.classes[0].cpu().numpy(),
                             gt_boxes, [b.class_id for b in gts], ignore)
    model.train(was_training)
    result = {}
    if 'segmentation' in tasks:
        result['segmentation'] = seg_m.compute()
    if 'depth' in tasks:
        result['depth'] = depth_m.compute()
    if 'flow' in tasks:
        result['flow'] = flow_m.compute()
    if 'detection' in tasks:
        result['detection'] = det_m.compute()
    return result


def median_ratio(pred: np.ndarray, gt: np.ndarray, depth_min: float, depth_max: float) -> float:
    """median(ground truth) / median(prediction) over the pixels labelled within the depth range
    (1 when there are none)."""
    ok = np.isfinite(gt) & (gt >= depth_min) & (gt <= depth_max) & np.isfinite(pred) & (pred > 0)
    return float(np.median(gt[ok]) / np.median(pred[ok])) if ok.any() else 1.0


def per_class_line(metrics: dict, meta) -> str:
    """'IoU road 0.91 ... | AP@0.5 car 0.56 ...' with the checkpoint's class names."""
    parts = []
    if 'segmentation' in metrics:
        names = meta.segmentation_names
        parts.append('IoU ' + ' '.join(f'{n} {v:.2f}' for n, v in zip(names, metrics['segmentation']['per_class_iou'])))
    if 'detection' in metrics:
        parts.append('AP@0.5 ' + ' '.join(f'{n} {v:.2f}' for n, v in
                                          zip(meta.detection_classes, metrics['detection']['per_class_ap50'])))
    return ' | '.join(parts)


def headline(metrics: dict) -> dict:
    """The four numbers the model card and the quality test use."""
    out = {}
    if 'segmentation' in metrics:
        out['miou'] = metrics['segmentation']['miou']
    if 'depth' in metrics:
        out['abs_rel'] = metrics['depth']['abs_rel']
    if 'flow' in metrics:
        out['epe'] = metrics['flow']['epe']
    if 'detection' in metrics:
        out['map50'] = metrics['detection']['map50']
    return out


def parse_seeds(text: str) -> list[int]:
    """'2000-2003,2010' -> [2000, 2001, 2002, 2003, 2010]."""
    seeds = []
    for part in text.split(','):
        lo, _, hi = part.strip().partition('-')
        lo, hi = int(lo), int(hi or lo)
        if hi < lo:
            raise ValueError(f"seed range '{part.strip()}' is empty")
        seeds.extend(range(lo, hi + 1))
    return seeds


def main(argv=None) -> int:
    """python -m hydranet_ros.training.evaluation --checkpoint PATH --seeds 2000-2003: the model
    card's numbers (held-out synthetic drives letterboxed into the checkpoint's input size as the
    node does, depth scaled for the lens in use), per seed group and style."""
    parser = argparse.ArgumentParser(prog='hydranet_ros.training.evaluation', description=main.__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', required=True)
    parser.add_argument('--seeds', action='append', required=True,
                        help='a group of drive seeds, e.g. 2000-2001; repeat for more groups')
    parser.add_argument('--frames', type=int, default=12, help='frame pairs per drive')
    parser.add_argument('--camera', default='kitti', help='camera preset(s), one per seed in turn: kitti,vga')
    parser.add_argument('--style', action='append', help='world style(s) (classic, varied, heldout); '
                        'repeat for more (default classic)')
    parser.add_argument('--no-letterbox', action='store_true',
                        help='render at the input size instead of letterboxing the camera image into it')
    parser.add_argument('--median-scaled', action='store_true',
                        help='score depth after scaling each image to the ground truth\'s median (scale-free depth)')
    parser.add_argument('--per-class', action='store_true', help='also print IoU and AP@0.5 per class')
    parser.add_argument('--json', help='write the results here too')
    args = parser.parse_args(argv)
    try:
        ckpt = load_checkpoint(args.checkpoint)
        groups = [parse_seeds(g) for g in args.seeds]
    except (CheckpointError, OSError, ValueError) as exc:
        print(f'evaluation: {exc}', file=sys.stderr)
        return 2
    meta = ckpt.metadata
    results = []
    cameras = [c.strip() for c in args.camera.split(',') if c.strip()]
    for style in args.style or ['classic']:
        for seeds in groups:
            try:
                data = SyntheticDataset(seeds, args.frames, meta.input_size, cameras[0],
                                        meta.config.num_detection_classes, style=style, cameras=cameras,
                                        letterbox=not args.no_letterbox, training_focal_px=checkpoint_focal_px(meta),
                                        normalise_depth=False)
            except ValueError as exc:
                print(f'evaluation: {exc}', file=sys.stderr)
                return 2
            metrics = evaluate(ckpt.model, data, meta.tasks, median_scaled=args.median_scaled)
            head = headline(metrics)
            results.append({'style': style, 'seeds': seeds, 'cameras': cameras, 'frames': len(data),
                            'median_scaled': args.median_scaled, **head})
            print(f'{style} seeds {seeds[0]}-{seeds[-1]} ({len(data)} frames, {"/".join(cameras)}): '
                  + ', '.join(f'{k} {v:.3f}' for k, v in head.items()), flush=True)
            if args.per_class:
                print('  ' + per_class_line(metrics, meta), flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'checkpoint': str(args.checkpoint), 'model_id': ckpt.model_id, 'results': results}, f, indent=1)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
