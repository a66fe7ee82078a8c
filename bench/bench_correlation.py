"""The flow cost volume: the vectorised local_correlation against the shifted-copy definition it
replaced, in torch and in onnxruntime, at the feature sizes the networks use.

    python bench/bench_correlation.py [--repeats 30]

Per size and backend: the two implementations timed round-robin (shifted, vectorised,
repeatedly), medians in ms; the backends in separate blocks (onnxruntime's pool threads spin
after each run and would slow the torch call that follows); and the largest difference
between the two (float rounding).
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import warnings

import onnxruntime as ort
import torch
import torch.nn.functional as F

from hydranet_ros.model.flow_ops import local_correlation

# (channels, height, width, radius): bundled model 416x128 (stride 16, its update, stride 8),
# default architecture 640x480 (stride 16) and 1242x375 (stride 16)
SIZES = [(48, 8, 26, 4), (48, 8, 26, 2), (32, 16, 52, 3), (96, 30, 40, 4), (96, 24, 78, 4)]


def shifted_copies(current, previous, radius):
    """The definition, one shifted copy of the previous frame per displacement."""
    h, w = current.shape[-2:]
    padded = F.pad(previous, (radius,) * 4)
    size = 2 * radius + 1
    return torch.cat([(current * padded[:, :, dy:dy + h, dx:dx + w]).mean(dim=1, keepdim=True)
                      for dy in range(size) for dx in range(size)], dim=1)


class _Module(torch.nn.Module):
    def __init__(self, fn, radius):
        super().__init__()
        self.fn, self.radius = fn, radius

    def forward(self, a, b):
        return self.fn(a, b, self.radius)


def _session(fn, radius, cur, prev):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(_Module(fn, radius), (cur, prev), buf, dynamo=False, opset_version=17,
                          input_names=['a', 'b'])
    return ort.InferenceSession(buf.getvalue(), providers=['CPUExecutionProvider'])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=30)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print(f'Machine: {os.cpu_count()} CPU cores, torch {torch.__version__} ({torch.get_num_threads()} threads), '
          f'onnxruntime {ort.__version__}; median of {args.repeats} round-robin repeats\n')
    print('| features C x H x W, radius | torch shifted / vectorised ms | speed-up | '
          'onnxruntime shifted / vectorised ms | speed-up | max difference |')
    print('|---|---|---|---|---|---|')
    for c, h, w, r in SIZES:
        cur, prev = torch.randn(1, c, h, w), torch.randn(1, c, h, w)
        feed = {'a': cur.numpy(), 'b': prev.numpy()}
        sessions = {'shifted': _session(shifted_copies, r, cur, prev), 'vectorised': _session(local_correlation, r,
                                                                                               cur, prev)}
        runs = {('torch', 'shifted'): lambda: shifted_copies(cur, prev, r),
                ('torch', 'vectorised'): lambda: local_correlation(cur, prev, r),
                ('onnxruntime', 'shifted'): lambda: sessions['shifted'].run(None, feed),
                ('onnxruntime', 'vectorised'): lambda: sessions['vectorised'].run(None, feed)}
        times = {k: [] for k in runs}
        with torch.inference_mode():
            for backend in ('torch', 'onnxruntime'):
                pair = {k: fn for k, fn in runs.items() if k[0] == backend}
                for fn in pair.values():
                    fn()
                for _ in range(args.repeats):
                    for key, fn in pair.items():
                        s = time.perf_counter()
                        fn()
                        times[key].append((time.perf_counter() - s) * 1e3)
            diff = float((shifted_copies(cur, prev, r) - local_correlation(cur, prev, r)).abs().max())
        med = {k: statistics.median(v) for k, v in times.items()}
        t_s, t_v = med[('torch', 'shifted')], med[('torch', 'vectorised')]
        o_s, o_v = med[('onnxruntime', 'shifted')], med[('onnxruntime', 'vectorised')]
        print(f'| {c} x {h} x {w}, {r} | {t_s:.2f} / {t_v:.2f} | {t_s / t_v:.2f}x | {o_s:.2f} / {o_v:.2f} | '
              f'{o_s / o_v:.2f}x | {diff:.1e} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
