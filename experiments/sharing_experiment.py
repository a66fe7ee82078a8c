"""Does sharing help? The multi-task HydraNet against four single-task networks of the same
architecture, each trained with the same data and the same number of steps, evaluated on the
same held-out synthetic sequences.

    python -m experiments.sharing_experiment [--config config/train_synthetic.yaml] [--steps 300]
           [--train-seeds 20] [--equal-compute] [--json out.json]

Single-task networks are the same HydraNet trained (and evaluated) with one task only; the
budget (steps x batch) is per network, so the four single-task networks together use four
times the training steps of the multi-task one. --equal-compute adds a multi-task network
trained for four times the steps (the four single-task networks' total). Training seconds
per network are reported too.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from hydranet_ros import TASKS
from hydranet_ros.model.checkpoint import load_checkpoint
from hydranet_ros.training.datasets import SyntheticDataset
from hydranet_ros.training.evaluation import evaluate, headline
from hydranet_ros.training.trainer import TrainConfig, train


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default='config/train_synthetic.yaml')
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--train-seeds', type=int, default=20)
    parser.add_argument('--test-seeds', default='3000,3001')
    parser.add_argument('--equal-compute', action='store_true',
                        help='also train the multi-task network for steps x 4')
    parser.add_argument('--json')
    args = parser.parse_args(argv)
    base = TrainConfig.load(args.config)
    base.data['train_seeds'] = list(range(args.train_seeds))
    base.train.update(steps=args.steps, eval_every=10 ** 9, threads=base.train.get('threads', 0))
    out_dir = Path(tempfile.mkdtemp(prefix='sharing_'))
    runs = {'multi-task': (list(TASKS), args.steps)}
    if args.equal_compute:
        runs[f'multi-task, {len(TASKS)}x steps'] = (list(TASKS), args.steps * len(TASKS))
    runs.update({f'{t} only': ([t], args.steps) for t in TASKS})
    results = {}
    test_seeds = [int(s) for s in args.test_seeds.split(',')]
    test_set = None
    for label, (tasks, steps) in runs.items():
        cfg = TrainConfig(model=dict(base.model), data=dict(base.data), train=dict(base.train), name=label)
        cfg.train.update(tasks=tasks, steps=steps,
                         output=str(out_dir / f'{label.replace(" ", "_").replace(",", "")}.pt'))
        print(f'== training {label} ({steps} steps)', flush=True)
        run = train(cfg, progress=False, log=lambda m: print('   ', m, flush=True))
        model = load_checkpoint(cfg.train['output']).model
        if test_set is None:
            data = base.data
            test_set = SyntheticDataset(test_seeds, 20, data['input_size'], data.get('camera', 'kitti'),
                                        model.config.num_detection_classes)
        results[label] = {**headline(evaluate(model, test_set, tasks)), 'steps': steps,
                          'train_s': run['train_seconds']}
        print(f'   {label}: {results[label]}', flush=True)
    print(f'\n{args.steps} steps x batch {base.train.get("batch_size", 8)} per network, '
          f'{args.train_seeds} training sequences, test seeds {test_seeds}\n')
    print('| network | steps | training time (s) | mIoU | depth AbsRel | flow EPE (px) | mAP@0.5 |')
    print('|---|---|---|---|---|---|---|')
    for label, r in results.items():
        cells = [f"{r['miou']:.3f}" if 'miou' in r else '', f"{r['abs_rel']:.3f}" if 'abs_rel' in r else '',
                 f"{r['epe']:.2f}" if 'epe' in r else '', f"{r['map50']:.3f}" if 'map50' in r else '']
        print(f"| {label} | {r['steps']} | {r['train_s']:.0f} | " + ' | '.join(cells) + ' |')
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
