"""Issue 32, part 4: one task's labels ten times rarer than the others', under each sampler and
loss weighting the trainer has, at equal steps.

    python -m experiments.multitask_questions --out runs/multitask [--steps 200] [--batch 4]
           [--seeds 0 1] [--only NAME] [--json results.json]

Every arm is the bundled model's recipe (`config/train_imagenet_lite0.yaml`: ImageNet encoder,
heads from scratch) at the scale of `experiments.generalisation_ablation` (200 steps of batch 4,
15 varied drives x 16 frame pairs), with odometry on every sample (the part-3 arms needed it;
no supervised loss reads it), run once per training seed.
Scored on drives 2000-2004 of the varied and held-out looks (that ablation's `score`). Finished
arms are kept under --out and not trained again, so the experiment resumes where it stopped.
The cross-task consistency arms (part 3) ran from this file at commit e3af0a6; the terms did not
help and were removed (docs/MODEL.md, "Cross-task consistency").
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from experiments.generalisation_ablation import BASE, _slug, report, scale_arguments, trained_and_scored
from hydranet_ros.training.settings import TrainConfig, merge_config

RARE = {'data': {'label_fraction': {'depth': 0.1}}}

# name -> (part, what changes against the recipe at this scale)
ARMS = {
    'all labels': (4, {}),
    'depth on 10%: dataset sampler, fixed weights': (4, RARE),
    'depth on 10%: uncertainty weighting': (4, merge_config(RARE, {'train': {'balancing': 'uncertainty'}})),
    'depth on 10%: DWA': (4, merge_config(RARE, {'train': {'balancing': 'dwa'}})),
    'depth on 10%: task-balanced sampling': (4, merge_config(RARE, {'train': {'sampler': 'task_balanced'}})),
    'depth on 10%: depth loss weight x10 (inverse label frequency)':
        (4, merge_config(RARE, {'train': {'weights': {'depth': 10.0}}})),
}


def arm_config(name: str, seed: int, args) -> TrainConfig:
    base = TrainConfig.load(BASE)
    raw = {'model': dict(base.model), 'data': dict(base.data), 'train': dict(base.train)}
    raw = merge_config(raw, {
        'data': {'train_seeds': list(range(args.train_seeds)), 'frames_per_seed': args.frames, 'odometry': True,
                 'val_seeds': [1000], 'val_frames_per_seed': 4},
        'train': {'steps': args.steps, 'batch_size': args.batch, 'eval_every': 10 ** 9, 'seed': seed,
                  'output': str(Path(args.out) / f'{_slug(name)}_seed{seed}.pt')}})
    raw = merge_config(raw, ARMS[name][1])
    return TrainConfig(model=raw['model'], data=raw['data'], train=raw['train'], name=_slug(name))


def run_arm(name: str, seed: int, args) -> dict:
    return trained_and_scored(arm_config(name, seed, args), Path(args.out) / f'{_slug(name)}_seed{seed}.json',
                              f'{name}, seed {seed}', {'arm': name, 'part': ARMS[name][0], 'seed': seed}, args)


def table(results: list) -> str:
    """Mean over seeds (and each seed's value) per arm: headline metrics of both looks."""
    keys = [('miou', 'mIoU', 3), ('abs_rel', 'AbsRel', 3), ('epe', 'EPE', 2), ('map50', 'mAP', 3)]
    head = ' | '.join(f'{look} {label}' for _, label, _ in keys for look in ('varied', 'held-out'))
    lines = [f'| arm | seeds | {head} | train s |', '|---' * (3 + 2 * len(keys)) + '|']
    for name in dict.fromkeys(r['arm'] for r in results):
        runs = [r for r in results if r['arm'] == name]
        cells = []
        for key, _, digits in keys:
            for look in ('varied', 'heldout'):
                values = [r['scores'][look][key] for r in runs]
                each = ' / '.join(f'{v:.{digits}f}' for v in values)
                cells.append(f'{np.mean(values):.{digits}f} ({each})' if len(values) > 1 else each)
        seconds = np.mean([r['train_seconds'] for r in runs])
        lines.append(f"| {name} | {','.join(str(r['seed']) for r in runs)} | {' | '.join(cells)} | {seconds:.0f} |")
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = scale_arguments(argparse.ArgumentParser(description=__doc__.split('\n\n')[0]), steps=200)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1], help='training seeds of every arm')
    parser.add_argument('--only', action='append', choices=list(ARMS), help='run just these arms')
    parser.add_argument('--json', help='write all results here too')
    args = parser.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = [run_arm(name, seed, args) for seed in args.seeds for name in (args.only or ARMS)]
    return report(results, table(results), args)


if __name__ == '__main__':
    sys.exit(main())
