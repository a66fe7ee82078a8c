"""The generalisation recipe's ablation (issue 30): the bundled model's recipe at equal steps with
one ingredient taken out at a time, and the same network from scratch, each scored on the varied
(in-style) and held-out synthetic looks.

    python -m experiments.generalisation_ablation --out runs/ablation [--steps 150] [--batch 4]
           [--train-seeds 15] [--frames 16] [--only NAME] [--json results.json]

Every run starts from `config/train_imagenet_lite0.yaml` (the bundled model's config) with the
scale shrunk to what a 2-core CPU affords (steps, batch, drives: the same for every run, so runs
compare at equal steps and data). Each run's checkpoint and scores are kept under --out, and a run
whose scores are there is not trained again, so the experiment resumes where it stopped. Scored on
drives 2000-2004 of each look, KITTI-like and VGA cameras in turn, letterboxed as the node does.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from hydranet_ros.model.checkpoint import load_checkpoint
from hydranet_ros.training.datasets import SyntheticDataset
from hydranet_ros.training.evaluation import evaluate, headline
from hydranet_ros.training.trainer import TrainConfig, train
from hydranet_ros.world.camera import checkpoint_focal_px

BASE = 'config/train_imagenet_lite0.yaml'
TEST_SEEDS = [2000, 2001, 2002, 2003, 2004]
TEST_STYLES = ('varied', 'heldout')

# name -> (what changes against the full recipe: {section: {key: value}}, what it takes out)
VARIANTS = {
    'full recipe': ({}, 'nothing: all four ingredients and the style randomisation'),
    'encoder lr = decoder lr': ({'train': {'encoder_lr': None}}, 'the lower encoder learning rate'),
    'no frozen blocks': ({'train': {'freeze_encoder_blocks': 0}}, 'frozen stem and first blocks'),
    'encoder BN trained': ({'train': {'freeze_encoder_bn': False}}, 'frozen encoder BatchNorm'),
    'no feature distance': ({'train': {'feature_distance': 0.0}}, 'the ImageNet feature distance'),
    'no style randomisation': ({'data': {'style': 'classic'}, 'train': {'color_jitter': 0.0, 'hue_jitter': 0.0}},
                               'the varied world style and colour/hue jitter'),
    'from scratch': ({'model': {'encoder_weights': None},
                      'train': {'encoder_lr': None, 'freeze_encoder_blocks': 0, 'freeze_encoder_bn': False,
                                'feature_distance': 0.0}},
                     'the ImageNet start (and with it the ingredients that keep it)'),
}


def variant_config(name: str, args) -> TrainConfig:
    """The full recipe at the experiment's scale with the variant's changes laid over it."""
    base = TrainConfig.load(BASE)
    cfg = TrainConfig(model=dict(base.model), data=dict(base.data), train=dict(base.train), name=name)
    cfg.data.update(train_seeds=list(range(args.train_seeds)), frames_per_seed=args.frames,
                    val_seeds=[1000], val_frames_per_seed=4)   # scored on the test drives instead
    cfg.train.update(steps=args.steps, batch_size=args.batch, eval_every=10 ** 9,
                     output=str(Path(args.out) / f'{_slug(name)}.pt'))
    for section, change in VARIANTS[name][0].items():
        target = getattr(cfg, section)
        for key, value in change.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
    return cfg


def _slug(name: str) -> str:
    return ''.join(c if c.isalnum() else '_' for c in name).strip('_')


def score(checkpoint: str, frames: int) -> dict:
    """Headline metrics per look on the test drives."""
    ckpt = load_checkpoint(checkpoint)
    meta = ckpt.metadata
    out = {}
    for style in TEST_STYLES:
        data = SyntheticDataset(TEST_SEEDS, frames, meta.input_size, 'kitti', meta.config.num_detection_classes,
                                style=style, cameras=['kitti', 'vga'], letterbox=True,
                                training_focal_px=checkpoint_focal_px(meta), normalise_depth=False)
        out[style] = headline(evaluate(ckpt.model, data, meta.tasks))
    return out


def trained_and_scored(cfg: TrainConfig, done: Path, label: str, fields: dict, args) -> dict:
    """Train cfg and score its checkpoint, unless done (the result file) exists; the result (fields,
    the scale, the timings and the scores) is written there and returned."""
    if done.exists():
        return json.loads(done.read_text())
    print(f'== {label} ({args.steps} steps x batch {args.batch})', flush=True)
    started = time.monotonic()
    summary = train(cfg, progress=False, log=lambda m: print('   ', m, flush=True))
    result = {**fields, 'steps': args.steps, 'batch': args.batch,
              'train_seconds': summary['train_seconds'], 'wall_seconds': time.monotonic() - started,
              'scores': score(cfg.train['output'], args.test_frames)}
    done.write_text(json.dumps(result, indent=1))
    print(f'   {label}: {result["scores"]}', flush=True)
    return result


def run_variant(name: str, args) -> dict:
    """Train (unless its scores exist) and score one variant; the result is kept beside its checkpoint."""
    return trained_and_scored(variant_config(name, args), Path(args.out) / f'{_slug(name)}.json', name,
                              {'variant': name, 'takes_out': VARIANTS[name][1]}, args)


def table(results: list) -> str:
    """The markdown table: in-style and held-out headline metrics and the held-out gap per variant."""
    lines = ['| variant (takes out) | varied mIoU | held-out mIoU | varied AbsRel | held-out AbsRel | '
             'varied EPE | held-out EPE | varied mAP | held-out mAP | train s |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for r in results:
        v, h = r['scores']['varied'], r['scores']['heldout']
        lines.append(f"| {r['variant']} ({r['takes_out']}) | {v['miou']:.3f} | {h['miou']:.3f} | "
                     f"{v['abs_rel']:.3f} | {h['abs_rel']:.3f} | {v['epe']:.2f} | {h['epe']:.2f} | "
                     f"{v['map50']:.3f} | {h['map50']:.3f} | {r['train_seconds']:.0f} |")
    return '\n'.join(lines)


def scale_arguments(parser: argparse.ArgumentParser, steps: int) -> argparse.ArgumentParser:
    """The options every small-scale training experiment shares: where, how many steps, how much data."""
    parser.add_argument('--out', required=True, help="folder for the runs' checkpoints and scores")
    parser.add_argument('--steps', type=int, default=steps)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--train-seeds', type=int, default=15, help='training drives')
    parser.add_argument('--frames', type=int, default=16, help='frame pairs per training drive')
    parser.add_argument('--test-frames', type=int, default=8, help='frame pairs per test drive')
    return parser


def report(results: list, markdown: str, args) -> int:
    """Print an experiment's table and, with --json, write its results; the exit status."""
    print(markdown)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def main(argv=None) -> int:
    parser = scale_arguments(argparse.ArgumentParser(description=__doc__.split('\n\n')[0]), steps=150)
    parser.add_argument('--only', action='append', choices=list(VARIANTS), help='run just these variants')
    parser.add_argument('--json', help='write all results here too')
    args = parser.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = [run_variant(name, args) for name in (args.only or VARIANTS)]
    return report(results, table(results), args)


if __name__ == '__main__':
    sys.exit(main())
