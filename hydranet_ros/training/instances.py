"""Give a trained checkpoint an instance head, everything else frozen, and score it (PQ).

    python -m hydranet_ros.training.instances --checkpoint models/hydranet_default.pt --output OUT.pt
           [--steps 300] [--batch-size 4] [--seeds 100-119] [--style varied] [--mode frozen|joint|lwf]
           [--cityscapes ROOT]
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
import copy
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
MODES = ('frozen', 'joint', 'lwf')
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
    """(normalised padded image [3, H, W], instance ids [H, W] placed top left, the drive's previous
    image or None) per rendered frame."""
    from hydranet_ros.training.samples import letterbox_content
    from hydranet_ros.world import World
    size = tuple(meta.input_size)
    mean = np.array(meta.normalization['mean'], np.float32)
    std = np.array(meta.normalization['std'], np.float32)
    out = []
    for n, seed in enumerate(seeds):
        content = letterbox_content(cameras[n % len(cameras)], size)
        world = World(int(seed), camera=cameras[n % len(cameras)], style=style, size=content)
        previous = None
        for frame in world.frames(frames):
            image = np.zeros((*size, 3), np.float32)                   # padding: the mean colour, 0 once normalised
            image[:content[0], :content[1]] = (frame.rgb.astype(np.float32) / 255.0 - mean) / std
            tensor = torch.from_numpy(image).permute(2, 0, 1).contiguous()
            out.append((tensor, frame.instances, previous))
            previous = tensor
    return out


#: Cityscapes' instance classes onto the bundled models' detection classes (the head's "things")
CITYSCAPES_THINGS = {'car': 'car', 'person': 'pedestrian'}


def cityscapes_frames(meta, root, split: str = 'train', limit: int | None = None):
    """As _frames, from a Cityscapes folder as published (its reader, training/cityscapes.py): the
    instanceIds of the classes in CITYSCAPES_THINGS, every frame resized to the input as the
    trainer's real datasets are; the sequence's previous frame where the folder has it."""
    from hydranet_ros.training import cityscapes
    from hydranet_ros.training.real_data import ClassMap, RealDataset
    items = cityscapes.frames(root, split)
    items = [it for it in items if it.get('instance_ids') is not None][:limit]
    if not items:
        raise ValueError(f'{root}: no Cityscapes frames with gtFine instanceIds in split {split!r}')
    names = [str(n) for n in meta.detection_classes]
    cmap = ClassMap.from_names({'detection': {k: v for k, v in CITYSCAPES_THINGS.items() if v in names}},
                               'cityscapes', meta.segmentation_classes, names)
    data = RealDataset(items, 'cityscapes', meta.input_size, cmap, len(names))
    mean = np.array(meta.normalization['mean'], np.float32)
    std = np.array(meta.normalization['std'], np.float32)

    def tensor(rgb):
        return torch.from_numpy((rgb.astype(np.float32) / 255.0 - mean) / std).permute(2, 0, 1).contiguous()
    out = []
    for i, item in enumerate(items):
        sample = data.load(i)
        out.append((tensor(sample['image']), sample['instances'],
                    tensor(sample['prev_image']) if item.get('previous') else None))
    return out


def distillation_loss(student: dict, teacher: dict) -> torch.Tensor:
    """Learning without forgetting's term, one form for any head: per old output, the mean absolute
    difference from the frozen original's, relative to the original's mean magnitude; summed."""
    terms = [torch.mean(torch.abs(student[t] - teacher[t])) / teacher[t].abs().mean().clamp(min=1e-6)
             for t in teacher]
    return torch.stack(terms).sum()


def _set_trainable(model, head, mode: str, lr: float, trunk_lr: float):
    """The optimizer for a mode: frozen trains the head alone; joint and lwf every weight, the
    old ones at trunk_lr. BatchNorm statistics stay frozen in every mode (batches of 4)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(mode != 'frozen')
    head.train()
    new = list(head.parameters())
    for p in new:
        p.requires_grad_(True)
    ids = {id(p) for p in new}
    groups = [{'params': new, 'lr': lr, 'base_lr': lr}]
    if mode != 'frozen':
        old = [p for p in model.parameters() if id(p) not in ids]
        groups.append({'params': old, 'lr': trunk_lr, 'base_lr': trunk_lr})
    return torch.optim.AdamW(groups, weight_decay=1e-4)


def _step_loss(model, head, teacher, mode, batch, targets, old_tasks, distill_weight: float):
    """(the loss of one batch, its instance part) for a mode."""
    images = torch.stack([b[0] for b in batch])
    heat, offsets, on = (torch.from_numpy(np.stack([t[k] for t in targets])) for k in range(3))
    if mode == 'frozen':
        with torch.no_grad():
            inputs, _ = model.head_inputs(images)
        pred = head(inputs)
    elif mode == 'joint':
        pred = model(images, [HEAD])[HEAD]
    else:
        prev = torch.stack([b[2] if b[2] is not None else b[0] for b in batch])
        valid = torch.tensor([b[2] is not None for b in batch])
        out = model(images, [*old_tasks, HEAD], previous_images=prev, previous_valid=valid)
        with torch.no_grad():
            kept = teacher(images, old_tasks, previous_images=prev, previous_valid=valid)
        pred = out.pop(HEAD)
    inst = instance_loss(pred[..., :heat.shape[-2], :heat.shape[-1]], heat, offsets, on)
    if mode != 'lwf':
        return inst, inst
    return inst + distill_weight * distillation_loss(out, kept), inst


def train_instances(checkpoint, output, seeds=range(100, 120), frames: int = 8, style: str = 'varied',
                    steps: int = 300, batch_size: int = 4, lr: float = 2e-3, seed: int = 0, log=None,
                    mode: str = 'frozen', trunk_lr: float = 2e-4, distill_weight: float = 1.0,
                    cityscapes=None) -> dict:
    """Train the new head on rendered drives; write output; the run's summary.

    mode: 'frozen' (everything but the new head frozen: every other output bit-identical),
    'joint' (every weight trains on the instance loss, the old ones at trunk_lr) or 'lwf' (joint
    plus distillation of every old head from the frozen original: learning without forgetting).
    cityscapes: a Cityscapes root to train on (its train split) instead of rendered drives."""
    if mode not in MODES:
        raise ValueError(f"mode '{mode}' is not one of {MODES}")
    log = log or (lambda line: print(line, flush=True))
    model, meta = with_instance_head(checkpoint)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    started = time.time()
    if cityscapes is not None:
        data = cityscapes_frames(meta, cityscapes)
        source = {'type': 'cityscapes', 'root': str(cityscapes), 'frames': len(data)}
    else:
        data = _frames(meta, seeds, frames, style)
        source = {'type': 'synthetic', 'style': style, 'seeds': f'{len(list(seeds))} seeds x {frames} frames'}
    targets = [instance_targets(ids, tuple(meta.input_size)) for _, ids, _ in data]
    log(f'{len(data)} training frames ({source["type"]}) in {time.time() - started:.0f} s')
    head = model.heads[HEAD]
    old_tasks = [t for t in model.heads if t != HEAD]
    teacher = copy.deepcopy(model).eval().requires_grad_(False) if mode == 'lwf' else None
    optimizer = _set_trainable(model, head, mode, lr, trunk_lr)
    losses = []
    for step in range(steps):
        for g in optimizer.param_groups:
            g['lr'] = g['base_lr'] * 0.5 * (1 + np.cos(np.pi * step / max(steps, 1)))
        pick = rng.integers(0, len(data), batch_size)
        loss, inst = _step_loss(model, head, teacher, mode, [data[i] for i in pick], [targets[i] for i in pick],
                                old_tasks, distill_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append((float(loss.detach()), float(inst.detach())))
        if (step + 1) % 25 == 0 or step + 1 == steps:
            total, part = np.mean(losses[-25:], axis=0)
            log(f'step {step + 1}/{steps}: loss {total:.4f} (instances {part:.4f})')
    model.eval()
    summary = {'from': str(checkpoint), 'mode': mode, 'steps': steps, 'batch_size': batch_size, 'lr': lr,
               'train_seconds': round(time.time() - started, 1), 'final_loss': float(np.mean(losses[-25:], axis=0)[1]),
               'data': source}
    if mode != 'frozen':
        summary.update(trunk_lr=trunk_lr, **({'distill_weight': distill_weight} if mode == 'lwf' else {}))
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
    parser.add_argument('--mode', choices=MODES, default='frozen',
                        help='frozen: only the new head trains (default); joint: every weight; lwf: joint with '
                             'the old heads distilled from the original')
    parser.add_argument('--trunk-lr', type=float, default=2e-4, help='joint/lwf: learning rate of the old weights')
    parser.add_argument('--cityscapes', metavar='ROOT', help='train on a Cityscapes folder (gtFine instanceIds) '
                        'instead of rendered drives')
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
                                     (args.style or ['varied'])[0], args.steps, args.batch_size, mode=args.mode,
                                     trunk_lr=args.trunk_lr, cityscapes=args.cityscapes)
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
