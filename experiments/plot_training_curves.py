"""Training curves from training state files (the periodic evaluations `train` keeps in
`<output>.state.pt`): a PNG with one panel per metric and a markdown table.

    python -m experiments.plot_training_curves models/hydranet_selfsup_odometry.state.pt:odometry \
        models/hydranet_selfsup_odometry2.state.pt:"stage 2":2400 -o docs/data/selfsup_curves.png

Each state is STATE.pt[:label[:offset]]; offset shifts its steps on the plot (a run that went on
from another's checkpoint starts where that one ended); the tables keep the run's own steps.
"""
from __future__ import annotations

import argparse
import sys

import torch

METRICS = (('abs_rel_median_scaled', 'depth AbsRel, median-scaled'), ('abs_rel', 'depth AbsRel, metric'),
           ('epe', 'flow EPE (px)'), ('miou', 'mIoU'), ('map50', 'mAP@0.5'))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('states', nargs='+', help='STATE.pt[:label[:offset]]')
    p.add_argument('-o', '--output', required=True, help='PNG to write')
    args = p.parse_args(argv)
    runs = []
    for text in args.states:
        path, _, rest = text.partition(':')
        label, _, offset = rest.partition(':')
        try:
            offset = int(offset or 0)
        except ValueError:
            print(f'{text}: the offset after the label must be a whole number of steps', file=sys.stderr)
            return 2
        history = torch.load(path, map_location='cpu', weights_only=True).get('history') or []
        if not history:
            print(f'{path}: no evaluations in its history', file=sys.stderr)
            return 2
        runs.append((label or path, history, offset))
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    shown = [(k, title) for k, title in METRICS if any(k in h for _, hist, _ in runs for h in hist)]
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 3.0))
    for ax, (key, title) in zip(axes, shown):
        for label, hist, offset in runs:
            pts = [(h['step'] + offset, h[key]) for h in hist if key in h]
            ax.plot([s for s, _ in pts], [v for _, v in pts], marker='o', ms=3, label=label)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel('step', fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    for label, hist, _ in runs:
        keys = [k for k, _ in shown if any(k in h for h in hist)]
        print(f'\n{label}\n\n| step | ' + ' | '.join(keys) + ' |\n|' + '---|' * (len(keys) + 1))
        for h in hist:
            print(f"| {h['step']} | " + ' | '.join(f'{h[k]:.3f}' if k in h else '' for k in keys) + ' |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
