"""Bags per second of `evaluate --offline` over many bags: one after another here, and one Ray
task per bag on a local Ray instance with 1 and 2 workers (median of runs, Ray start-up timed
apart).

    python bench/bench_fleet.py [--bags 8] [--frames 6] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from hydranet_ros.bag.evaluate import Options, evaluate_bags_report
from hydranet_ros.bag.make_bag import write_drive
from hydranet_ros.model.registry import weights


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--bags', type=int, default=8)
    parser.add_argument('--frames', type=int, default=6)
    parser.add_argument('--size', default='416x128', help='WxH of the drives')
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args(argv)
    import ray
    w, h = (int(v) for v in args.size.split('x'))
    with tempfile.TemporaryDirectory() as tmp:
        bags = []
        for k in range(args.bags):
            path = Path(tmp) / f'drive_{k}'
            write_drive(path, seed=5000 + k, frames=args.frames, size=(h, w))
            bags.append(path)
        opts = Options(offline_model=str(weights().path()))
        print(f'Machine: {os.cpu_count()} CPU cores; {args.bags} bags of {args.frames} frames at {w}x{h}, '
              f'evaluate --offline with the bundled model; median of {args.repeats} runs\n')
        print('| engine | workers | bags/s | s per run | Ray start (s) |')
        print('|---|---|---|---|---|')
        reference = None
        for engine, workers in (('here', 1), ('ray', 1), ('ray', 2)):
            start_s = 0.0
            if engine == 'ray':
                t = time.perf_counter()
                ray.init(num_cpus=workers, include_dashboard=False, logging_level='ERROR', log_to_driver=False)
                start_s = time.perf_counter() - t
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                scores, report = evaluate_bags_report(bags, opts, jobs=workers,
                                                      ray='auto' if engine == 'ray' else None)
                times.append(time.perf_counter() - t)
                assert not report.failed, report.failures()
            summary = scores.summary()
            if reference is None:
                reference = summary['scored_frames']
            assert summary['scored_frames'] == reference
            if engine == 'ray':
                ray.shutdown()
            median = statistics.median(times)
            print(f'| {engine} | {workers} | {args.bags / median:.2f} | {median:.1f} | '
                  f'{start_s:.1f} |' if engine == 'ray' else
                  f'| {engine} | {workers} | {args.bags / median:.2f} | {median:.1f} | - |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
