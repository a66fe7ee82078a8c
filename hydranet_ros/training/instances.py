"""Give a trained checkpoint an instance head, everything else frozen, and score it (PQ).

    python -m hydranet_ros.training.instances --checkpoint models/hydranet_default.pt --output OUT.pt
           [--steps 300] [--batch-size 4] [--seeds 100-119] [--style varied]
    python -m hydranet_ros.training.instances --evaluate CKPT [--seeds 2000-2009]
           [--style varied --style heldout] [--json out.json]

Training: the checkpoint's network with an InstanceHead added on the shared decoder; the encoder,
decoder and every other head frozen in eval mode (BatchNorm statistics too), so every other
output stays bit-identical. Targets from the synthetic world's exact instance ids, rendered at the
checkpoint's input size letterboxed as the Predictor does: a Gaussian (sigma 8 px) at each
instance's centre of mass, and at each of its pixels the offset to that centre. Loss as
Panoptic-DeepLab's: 200 x MSE on the heatmap + 0.01 x L1 of the offsets (pixels) on instance cells.

Evaluation: through the Predictor (both backends group the same way), PQ / SQ / RQ of the
instances against the world's on drives of each style (metrics.PanopticQuality).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import numpy as np
import torch

from hydranet_ros.metrics import PanopticQuality
from hydranet_ros.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from hydranet_ros.model.hydranet import HydraNet

HEAD = 'instances'
SIGMA_PX = 8.0
STRIDE = 4


def with_instance_head(checkpoint) -> tuple[HydraNet, object]:
    """(the checkpoint's network with a fresh instance head, its metadata); every other tensor the
    checkpoint's own."""
    loaded = load_checkpoint(checkpoint)
    meta = loaded.metadata
    model = HydraNet(dataclasses.replace(meta.config, instances=True))
    missing, unexpected = model.load_state_dict(loaded.model.state_dict(), strict=False)
    if unexpected or any(not k.startswith(f'heads.{HEAD}.') for k in missing):
        raise CheckpointError(f'{checkpoint}: does not fit its own architecture plus the instance head '
                              f'(missing {missing[:3]}, unexpected {unexpected[:3]})')
    return model, meta


def instance_targets(ids: np.ndarray, size_hw, stride: int = STRIDE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(heat [h, w], offsets [2, h, w], on-instance mask [h, w]) on the stride-4 grid (or another
    stride) of a padded input of size_hw, from an instance id image [H, W] (0 = none) at its top left."""
    gh, gw = -(-size_hw[0] // stride), -(-size_hw[1] // stride)
    ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32) * stride       # each cell's input pixel
    cells = np.zeros((gh, gw), np.int64)
    sub = ids[::stride, ::stride]
    cells[:sub.shape[0], :sub.shape[1]] = sub
    heat = np.zeros((gh, gw), np.float32)
    offsets = np.zeros((2, gh, gw), np.float32)
    for i in np.unique(ids):
        if i == 0:
            continue
        py, px = np.nonzero(ids == i)
        cy, cx = float(py.mean()), float(px.mean())
        heat = np.maximum(heat, np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * SIGMA_PX ** 2)))
        on = cells == i
        offsets[0][on], offsets[1][on] = cx - xs[on], cy - ys[on]
    return heat, offsets, cells > 0


def instance_loss(pred: torch.Tensor, heat: torch.Tensor, offsets: torch.Tensor, on: torch.Tensor) -> torch.Tensor:
    """Panoptic-DeepLab's instance loss: 200 MSE of the heatmap, 0.01 L1 of the offsets on instances."""
    centre = torch.mean((pred[:, 0] - heat) ** 2)
    weight = on.unsqueeze(1).to(pred.dtype)
    offset = (torch.abs(pred[:, 1:] - offsets) * weight).sum() / weight.sum().clamp(min=1.0)
    return 200.0 * centre + 0.01 * offset


def _frames(meta, seeds, frames: int, style: str, cameras=('kitti', 'vga')):
    """(normalised padded image [3, H, W], instance ids [H, W] placed top left) per rendered frame."""
    from hydranet_ros.training.samples import letterbox_content
    from hydranet_ros.world import World
    size = tuple(meta.input_size)
    mean = np.array(meta.normalization['mean'], np.float32)
    std = np.array(meta.normalization['std'], np.float32)
    out = []
    for n, seed in enumerate(seeds):
        content = letterbox_content(cameras[n % len(cameras)], size)
        world = World(int(seed), camera=cameras[n % len(cameras)], style=style, size=content)
        for frame in world.frames(frames):
            image = np.zeros((*size, 3), np.float32)                   # padding: the mean colour, 0 once normalised
            image[:content[0], :content[1]] = (frame.rgb.astype(np.float32) / 255.0 - mean) / std
            out.append((torch.from_numpy(image).permute(2, 0, 1).contiguous(), frame.instances))
    return out


def train_instances(checkpoint, output, seeds=range(100, 120), frames: int = 8, style: str = 'varied',
                    steps: int = 300, batch_size: int = 4, lr: float = 2e-3, seed: int = 0, log=print) -> dict:
    """Train the new head on rendered drives; write output; the run's summary."""
    model, meta = with_instance_head(checkpoint)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    started = time.time()
    data = _frames(meta, seeds, frames, style)
    size = tuple(meta.input_size)
    targets = [instance_targets(ids, size) for _, ids in data]
    log(f'rendered {len(data)} frames of {len(list(seeds))} drives ({style}) in {time.time() - started:.0f} s')
    model.eval()                                   # every frozen module in inference mode, BatchNorm included
    head = model.heads[HEAD]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    head.train()
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    losses = []
    for step in range(steps):
        for g in optimizer.param_groups:
            g['lr'] = lr * 0.5 * (1 + np.cos(np.pi * step / max(steps, 1)))
        pick = rng.integers(0, len(data), batch_size)
        images = torch.stack([data[i][0] for i in pick])
        heat, offsets, on = (torch.from_numpy(np.stack([targets[i][k] for i in pick])) for k in range(3))
        with torch.no_grad():
            inputs, _ = model.head_inputs(images)
        pred = head(inputs)[..., :heat.shape[-2], :heat.shape[-1]]
        loss = instance_loss(pred, heat, offsets, on)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 25 == 0 or step + 1 == steps:
            log(f'step {step + 1}/{steps}: loss {np.mean(losses[-25:]):.4f}')
    model.eval()
    summary = {'from': str(checkpoint), 'steps': steps, 'batch_size': batch_size, 'lr': lr,
               'train_seconds': round(time.time() - started, 1), 'final_loss': float(np.mean(losses[-25:])),
               'data': {'type': 'synthetic', 'style': style, 'seeds': f'{len(list(seeds))} seeds x {frames} frames'}}
    new_meta = dataclasses.replace(meta, architecture=model.config.to_dict(), tasks=[*meta.tasks, HEAD],
                                   training={**meta.training, HEAD: summary})
    sha = save_checkpoint(output, model, new_meta)
    log(f'saved {output} (sha256 {sha[:12]}) after {steps} steps in {summary["train_seconds"]:.0f} s')
    return {**summary, 'sha256': sha, 'output': str(output)}


def evaluate_instances(checkpoint, seeds, styles=('varied', 'heldout'), frames: int = 6, cameras=('kitti', 'vga'),
                       backend: str = 'torch') -> dict:
    """PQ / SQ / RQ per style on synthetic drives, through the Predictor."""
    from hydranet_ros.inference import Predictor
    from hydranet_ros.world import World
    from hydranet_ros.world.classes import SEG_ID
    predictor = Predictor(str(checkpoint), device='cpu', backend=backend)
    if HEAD not in predictor.tasks:
        raise ValueError(f'{checkpoint} has no instance head')
    names = [str(n) for n in predictor.segmentation_names]
    things = {SEG_ID[n]: n for n in names if n in predictor.class_names and n in SEG_ID}
    report = {'model': predictor.model_id, 'seeds': list(seeds), 'frames_per_drive': frames}
    for style in styles:
        metric = PanopticQuality(things)
        for n, seed in enumerate(seeds):
            world = World(seed, camera=cameras[n % len(cameras)], style=style)
            for frame in world.frames(frames * 4):
                if frame.index % 4:
                    continue
                result, = predictor.predict(frame.rgb, tasks=('segmentation', HEAD), stamps_ns=[frame.index])
                pred_classes = np.array([SEG_ID.get(names[c], 255) for c in range(len(names))])[result.segmentation]
                metric.update(result.instances, pred_classes, frame.instances, frame.segmentation)
        report[style] = metric.compute()
    return report


def main(argv=None) -> int:
    """The command line: train the head onto a checkpoint, or --evaluate one."""
    from hydranet_ros.training.evaluation import parse_seeds
    parser = argparse.ArgumentParser(prog='python -m hydranet_ros.training.instances',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', help='the trained checkpoint to give the head')
    parser.add_argument('--output')
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--frames', type=int, default=8, help='frames per drive (training) or scored (evaluate)')
    parser.add_argument('--evaluate', metavar='CKPT', help='score a checkpoint that has the head instead')
    parser.add_argument('--seeds', help='default: 100-119 to train, 2000-2009 to evaluate')
    parser.add_argument('--style', action='append')
    parser.add_argument('--json')
    args = parser.parse_args(argv)
    try:
        if args.evaluate:
            result = evaluate_instances(args.evaluate, parse_seeds(args.seeds or '2000-2009'),
                                        tuple(args.style or ('varied', 'heldout')), min(args.frames, 6))
        else:
            if not (args.checkpoint and args.output):
                parser.error('training needs --checkpoint and --output')
            result = train_instances(args.checkpoint, args.output, parse_seeds(args.seeds or '100-119'), args.frames,
                                     (args.style or ['varied'])[0], args.steps, args.batch_size)
    except (CheckpointError, OSError, ValueError) as exc:
        print(f'instances: {exc}', file=sys.stderr)
        return 2
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with open(args.json, 'w') as f:
            f.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
