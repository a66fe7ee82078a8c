"""Give a trained checkpoint a depth uncertainty head, everything else frozen, and score it.

    python -m hydranet_ros.training.uncertainty --checkpoint models/hydranet_default.pt
           --config config/train_depth_uncertainty.yaml --output OUT.pt [--steps N]
    python -m hydranet_ros.training.uncertainty --evaluate CKPT [--seeds 2000-2009]
           [--style varied --style heldout] [--json out.json]

Training: the checkpoint's network with a DepthUncertaintyHead added, its encoder, decoder and
every other head frozen (eval mode, so BatchNorm statistics do not move either): only the new
head learns, from the network's own depth error on the config's data (Laplace negative
log-likelihood). Every other output of the new checkpoint is bit-identical to the old one's. The
metadata is the old checkpoint's, with depth_uncertainty added to its tasks and this run in its
training record.

Evaluation: on synthetic drives of each style, letterboxed as the node does and depth scaled for
the lens: the share of pixels within b and 2b of the truth against a Laplace's 63% and 86%, the
sparsification curve of AbsRel and AUSE (hydranet_ros.metrics.UncertaintyMetric).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import numpy as np
import torch

from hydranet_ros.metrics import UncertaintyMetric
from hydranet_ros.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from hydranet_ros.model.hydranet import HydraNet
from hydranet_ros.training.losses import depth_uncertainty_loss
from hydranet_ros.training.settings import TrainConfig
from hydranet_ros.training.sources import augmentation_from, make_datasets
from hydranet_ros.world.camera import checkpoint_focal_px

HEAD = 'depth_uncertainty'


def with_uncertainty_head(checkpoint) -> tuple[HydraNet, object]:
    """(the checkpoint's network with a fresh uncertainty head, its metadata); every other tensor
    the checkpoint's own."""
    loaded = load_checkpoint(checkpoint)
    meta = loaded.metadata
    config = dataclasses.replace(meta.config, depth_uncertainty=True)
    model = HydraNet(config)
    missing, unexpected = model.load_state_dict(loaded.model.state_dict(), strict=False)
    if unexpected or any(not k.startswith(f'heads.{HEAD}.') for k in missing):
        raise CheckpointError(f'{checkpoint}: does not fit its own architecture plus the uncertainty head '
                              f'(missing {missing[:3]}, unexpected {unexpected[:3]})')
    return model, meta


def train_uncertainty(checkpoint, config: TrainConfig, output, steps: int | None = None, log=print) -> dict:
    """Train the new head on config's data; write output; the run's summary."""
    model, meta = with_uncertainty_head(checkpoint)
    # the error the node sees is the error at the checkpoint's own input size
    config = TrainConfig(model=config.model, data={**config.data, 'input_size': list(meta.input_size)},
                         train=config.train, name=config.name)
    tcfg, dcfg = config.resolved()
    torch.manual_seed(int(tcfg.seed))
    rng = np.random.default_rng(int(tcfg.seed))
    if tcfg.threads:
        torch.set_num_threads(int(tcfg.threads))
    augmentation, targets = augmentation_from(tcfg)
    focal = checkpoint_focal_px(meta)
    train_set, _ = make_datasets(dcfg, model.config, augment=bool(tcfg.augment), focal_px=focal,
                                 augmentation=augmentation, look_targets=targets)
    model.eval()                                   # every frozen module in inference mode, BatchNorm included
    head = model.heads[HEAD]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    head.train()
    optimizer = torch.optim.AdamW(head.parameters(), lr=float(tcfg.lr), weight_decay=float(tcfg.weight_decay))
    total = int(steps if steps is not None else tcfg.steps)
    cfg = model.config
    losses, started = [], time.time()
    for step in range(total):
        for g in optimizer.param_groups:
            g['lr'] = float(tcfg.lr) * 0.5 * (1 + np.cos(np.pi * step / max(total, 1)))
        items = [train_set[int(i)] for i in rng.integers(0, len(train_set), int(tcfg.batch_size))]
        batch = {k: torch.stack([it[k] for it in items]) for k in ('image', 'depth', 'has_depth')}
        with torch.no_grad():
            inputs, (h, w) = model.head_inputs(batch['image'])
            depth = model.heads['depth'](inputs)[..., :h, :w]
        scale = head(inputs)[..., :h, :w]
        loss = depth_uncertainty_loss(scale, depth, batch['depth'], batch['has_depth'], cfg.depth_min, cfg.depth_max)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if (step + 1) % max(int(tcfg.log_every), 1) == 0 or step + 1 == total:
            log(f'step {step + 1}/{total}: nll {np.mean(losses[-20:]):.3f}')
    model.eval()
    summary = {'from': str(checkpoint), 'steps': total, 'batch_size': int(tcfg.batch_size), 'lr': float(tcfg.lr),
               'train_seconds': round(time.time() - started, 1), 'final_nll': float(np.mean(losses[-20:])),
               'data': {'type': dcfg.type, 'style': dcfg.style, 'seeds': f'{len(dcfg.train_seeds)} seeds'}}
    new_meta = dataclasses.replace(meta, architecture=model.config.to_dict(), tasks=[*meta.tasks, HEAD],
                                   training={**meta.training, HEAD: summary})
    sha = save_checkpoint(output, model, new_meta)
    log(f'saved {output} (sha256 {sha[:12]}) after {total} steps in {summary["train_seconds"]:.0f} s')
    return {**summary, 'sha256': sha, 'output': str(output)}


def evaluate_uncertainty(checkpoint, seeds, styles=('varied', 'heldout'), frames: int = 6, cameras=('kitti', 'vga'),
                         pixels_per_frame: int = 20000, backend: str = 'torch') -> dict:
    """Calibration and sparsification per style on synthetic drives, through the Predictor."""
    from hydranet_ros.inference import Predictor
    from hydranet_ros.world import World
    predictor = Predictor(str(checkpoint), device='cpu', backend=backend)
    if HEAD not in predictor.tasks:
        raise ValueError(f'{checkpoint} has no depth uncertainty head')
    rng = np.random.default_rng(0)
    report = {'model': predictor.model_id, 'seeds': list(seeds), 'frames_per_drive': frames}
    for style in styles:
        metric = UncertaintyMetric(max_depth=predictor.config.depth_max)
        for n, seed in enumerate(seeds):
            world = World(seed, camera=cameras[n % len(cameras)], style=style)
            for frame in world.frames(frames * 4):
                if frame.index % 4:
                    continue
                result, = predictor.predict(frame.rgb, tasks=('depth', HEAD), focal_px=world.camera.fx)
                pick = rng.choice(frame.depth.size, min(pixels_per_frame, frame.depth.size), replace=False)
                metric.update(result.depth.ravel()[pick], result.depth_uncertainty.ravel()[pick],
                              frame.depth.ravel()[pick])
        report[style] = metric.compute()
    return report


def main(argv=None) -> int:
    """The command line: train the head onto a checkpoint, or --evaluate one."""
    from hydranet_ros.training.evaluation import parse_seeds
    parser = argparse.ArgumentParser(prog='python -m hydranet_ros.training.uncertainty',
                                     description=__doc__.split('\n\n')[0])
    parser.add_argument('--checkpoint', help='the trained checkpoint to give the head')
    parser.add_argument('--config', help='training YAML: its data and train sections (lr, batch_size, steps)')
    parser.add_argument('--output')
    parser.add_argument('--steps', type=int)
    parser.add_argument('--evaluate', metavar='CKPT', help='score a checkpoint that has the head instead')
    parser.add_argument('--seeds', default='2000-2009')
    parser.add_argument('--frames', type=int, default=6)
    parser.add_argument('--style', action='append')
    parser.add_argument('--json')
    args = parser.parse_args(argv)
    try:
        if args.evaluate:
            result = evaluate_uncertainty(args.evaluate, parse_seeds(args.seeds),
                                          tuple(args.style or ('varied', 'heldout')), args.frames)
        else:
            if not (args.checkpoint and args.config and args.output):
                parser.error('training needs --checkpoint, --config and --output')
            result = train_uncertainty(args.checkpoint, TrainConfig.load(args.config), args.output, args.steps)
    except (CheckpointError, OSError, ValueError) as exc:
        print(f'uncertainty: {exc}', file=sys.stderr)
        return 2
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        with open(args.json, 'w') as f:
            f.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
