"""Time per frame of several checkpoints through the Predictor (what the node runs).

    python bench/bench_checkpoints.py A.pt B.pt [--sizes 416x128,640x480] [--repeats 7] [--frames 10]
        [--backend torch|onnxruntime]     (a known name such as hydranet_default works as well as a file)

Each repeat times a run of --frames consecutive frames (all heads, flow from the cache) for
every checkpoint in turn (round-robin, so machine noise hits them alike) and keeps the time per
frame; the table gives the median over repeats and each checkpoint's ratio to the first.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from hydranet_ros.inference import Predictor
from hydranet_ros.inference.backends import OnnxOptions
from hydranet_ros.model.registry import resolve
from hydranet_ros.model.summary import parse_size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('checkpoints', nargs='+')
    parser.add_argument('--sizes', default='416x128,640x480')
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--frames', type=int, default=10)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--backend', default='torch', choices=('torch', 'onnxruntime'))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    predictors = []
    for name in args.checkpoints:
        path, pin = resolve(name)
        predictors.append(Predictor(path, device='cpu', backend=args.backend, expected_sha256=pin,
                                    onnx=OnnxOptions(threads=args.threads)))
    rng = np.random.default_rng(0)
    print(f'{args.backend} (torch {torch.__version__}), {args.threads} threads, median of {args.repeats} runs of '
          f'{args.frames} frames\n')
    print('| size | ' + ' | '.join(f'{p.model_id} ms/frame' for p in predictors) + ' | ratio to the first |')
    print('|---' * (len(predictors) + 2) + '|')
    for size in args.sizes.split(','):
        h, w = parse_size(size)
        frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(args.frames)]
        samples = [[] for _ in predictors]
        for p in predictors:                 # warm-up, outside the timing
            p.predict([frames[0]], streams=['bench'], stamps_ns=[0])
        for _ in range(args.repeats):
            for k, p in enumerate(predictors):
                p.reset()
                start = time.perf_counter()
                for i, frame in enumerate(frames):
                    p.predict([frame], streams=['bench'], stamps_ns=[100_000_000 * (i + 1)])
                samples[k].append((time.perf_counter() - start) * 1e3 / len(frames))
        medians = [statistics.median(s) for s in samples]
        ratios = ', '.join(f'{m / medians[0]:.2f}' for m in medians)
        print(f'| {w}x{h} | ' + ' | '.join(f'{m:.1f}' for m in medians) + f' | {ratios} |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
