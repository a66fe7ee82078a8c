"""`hydranet_summary`: parameters and GMACs per component at a given resolution.

    hydranet_summary --size 640x480 [--checkpoint model.pt] [--tasks segmentation,depth]

GMACs are multiply-accumulates counted by torch's FlopCounterMode (FLOPs / 2) for one image;
ops it does not count (pooling, interpolation, elementwise) are small here.
"""
from __future__ import annotations

import argparse
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from hydranet_ros import TASKS
from hydranet_ros.model.config import HydraNetConfig, check_tasks
from hydranet_ros.model.hydranet import HydraNet


def parse_size(text: str) -> tuple[int, int]:
    """'640x480' (width x height) -> (height, width)."""
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480 (width x height), got '{text}'") from None
    if w < 32 or h < 32:
        raise argparse.ArgumentTypeError(f'size must be at least 32x32, got {text}')
    return h, w


def component_costs(model: HydraNet, size, tasks=None) -> dict:
    """{component: (params, GMACs)} for encoder, decoder, each requested head, and total."""
    tasks = check_tasks(tasks)
    h, w = size
    x = torch.zeros(1, 3, h, w)
    model = model.eval()
    with torch.no_grad():
        prev = model(x, (), return_flow_features=True)['flow_features'] if 'flow' in tasks else None
        counter = FlopCounterMode(display=False, depth=3)
        with counter:
            model(x, tasks, previous_features=prev)
    flops = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}

    def params(module):
        return sum(p.numel() for p in module.parameters())

    rows = {'encoder': (params(model.encoder), flops.get('HydraNet.encoder', 0) / 2e9),
            'decoder': (params(model.decoder), flops.get('HydraNet.decoder', 0) / 2e9)}
    for task in tasks:
        rows[f'heads.{task}'] = (params(model.heads[task]), flops.get(f'HydraNet.heads.{task}', 0) / 2e9)
    rows['total'] = (sum(r[0] for r in rows.values()), flops.get('HydraNet', 0) / 2e9)
    return rows


def main(argv=None) -> int:
    """The `hydranet_summary` command line."""
    parser = argparse.ArgumentParser(prog='hydranet_summary', description=__doc__.split('\n\n')[0])
    parser.add_argument('--size', type=parse_size, default=(480, 640), help='WIDTHxHEIGHT (default 640x480)')
    parser.add_argument('--checkpoint', help='checkpoint file (default: an untrained default network)')
    parser.add_argument('--tasks', default=','.join(TASKS), help='comma-separated tasks (default all)')
    args = parser.parse_args(argv)
    try:
        tasks = check_tasks([t for t in args.tasks.split(',') if t])
        if args.checkpoint:
            from hydranet_ros.model.checkpoint import load_checkpoint
            model = load_checkpoint(args.checkpoint).model
        else:
            model = HydraNet(HydraNetConfig())
    except (ValueError, OSError) as exc:
        print(f'hydranet_summary: {exc}', file=sys.stderr)
        return 2
    h, w = args.size
    rows = component_costs(model, (h, w), tasks)
    print(f'HydraNet at {w}x{h}, tasks: {", ".join(tasks)}')
    print(f'{"component":<22}{"params (M)":>12}{"GMACs":>10}')
    for name, (n_params, gmacs) in rows.items():
        print(f'{name:<22}{n_params / 1e6:>12.3f}{gmacs:>10.3f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
