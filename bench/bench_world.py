"""Rendering speed of the synthetic world (frames/s with all labels), median of runs.

    python bench/bench_world.py [--frames 40] [--repeats 5] [--sizes 416x128,1242x375,640x480]
                                [--styles classic,varied,heldout]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from hydranet_ros.world import World


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=40)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--sizes', default='416x128,1242x375,640x480')
    parser.add_argument('--styles', default='classic', help='world styles, e.g. classic,varied,heldout')
    args = parser.parse_args(argv)
    print(f'Machine: {os.cpu_count()} CPU cores, one process; {args.frames} frames per run, '
          f'median of {args.repeats} runs (different seeds)\n')
    print('| style | size (WxH) | camera | frames/s | ms/frame |')
    print('|---|---|---|---|---|')
    for style in args.styles.split(','):
        for text in args.sizes.split(','):
            w, h = (int(v) for v in text.split('x'))
            camera = 'vga' if (w, h) == (640, 480) else 'kitti'
            rates = []
            for r in range(args.repeats):
                world = World(100 + r, camera, size=(h, w), style=style)
                start = time.perf_counter()
                for _ in world.frames(args.frames):
                    pass
                rates.append(args.frames / (time.perf_counter() - start))
            fps = statistics.median(rates)
            print(f'| {style} | {w}x{h} | {camera} | {fps:.1f} | {1000 / fps:.0f} |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
