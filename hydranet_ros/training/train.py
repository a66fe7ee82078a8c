"""`ros2 run hydranet_ros train --config config/train_synthetic.yaml` (or python -m
hydranet_ros.training.train). Under torchrun it trains with DDP (gloo on CPU, nccl on GPU).
Overrides: --steps N, --output PATH, --resume PATH, --no-progress. `train.init_from` starts
from a trained checkpoint (matching tensors copied, new modules kept at their start);
`model.encoder_weights: PATH` starts the encoder from ImageNet MobileNetV2 weights in
torchvision's layout (width_mult 1.0)."""
from __future__ import annotations

import argparse
import sys

from hydranet_ros.model.imagenet import EncoderWeightsError
from hydranet_ros.training.trainer import InitFromError, TrainConfig, train


def main(argv=None) -> int:
    """The `train` command line."""
    parser = argparse.ArgumentParser(prog='train', description=__doc__.split('\n')[0])
    parser.add_argument('--config', required=True, help='training YAML (model, data, train sections)')
    parser.add_argument('--steps', type=int)
    parser.add_argument('--output')
    parser.add_argument('--resume')
    parser.add_argument('--no-progress', action='store_true')
    args = parser.parse_args(argv)
    try:
        config = TrainConfig.load(args.config)
    except (OSError, ValueError) as exc:
        print(f'train: {exc}', file=sys.stderr)
        return 2
    for key in ('steps', 'output', 'resume'):
        if getattr(args, key) is not None:
            config.train[key] = getattr(args, key)
    try:
        train(config, progress=not args.no_progress)
    except (InitFromError, EncoderWeightsError) as exc:
        print(f'train: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
