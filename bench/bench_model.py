"""Cost of the HydraNet: shared trunk vs separate networks, head subsets, cached flow, GMACs.

    python bench/bench_model.py [--repeats 7] [--sizes 640x480,1242x375] [--json out.json]

Every timing is the median of --repeats runs, batch 1, inference mode, BatchNorm folded and
channels_last (the predictor's set-up). The variants being compared are timed round-robin
within one run, so machine noise hits them alike; ratios are what to compare across machines.
Results go to stdout as the markdown table used in docs/BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

from hydranet_ros import TASKS
from hydranet_ros.model import FLOW_FEATURES, HydraNet, HydraNetConfig
from hydranet_ros.model.fuse import fuse_conv_bn
from hydranet_ros.model.summary import component_costs, parse_size


def prepare(model, device, dtype):
    model = fuse_conv_bn(model).to(device)
    if device.type == 'cpu':
        model = model.to(memory_format=torch.channels_last)
    return model.to(dtype)


def timed(fn, device):
    if device.type == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3


def bench_size(size, repeats, device, dtype):
    h, w = size
    torch.manual_seed(0)
    config = HydraNetConfig()
    shared = prepare(HydraNet(config), device, dtype)
    # Four single-task networks, each its own encoder + decoder + one head.
    separate = {t: prepare(HydraNet(config), device, dtype) for t in TASKS}
    x_prev = torch.randn(1, 3, h, w, device=device, dtype=dtype)
    x = torch.randn(1, 3, h, w, device=device, dtype=dtype)
    if device.type == 'cpu':
        x_prev = x_prev.contiguous(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        prev = shared(x_prev, (), return_flow_features=True)[FLOW_FEATURES]
        prev_sep = separate['flow'](x_prev, (), return_flow_features=True)[FLOW_FEATURES]
        variants = {
            'all_heads': lambda: shared(x, None, previous_features=prev, return_flow_features=True),
            'separate_4': lambda: [separate[t](x, [t], previous_features=prev_sep if t == 'flow' else None,
                                               return_flow_features=t == 'flow') for t in TASKS],
            'depth_only': lambda: shared(x, ['depth']),
            'seg_depth': lambda: shared(x, ['segmentation', 'depth']),
            'flow_cached': lambda: shared(x, ['flow'], previous_features=prev, return_flow_features=True),
            # Without the cache: encode the previous frame again, then the flow request.
            'flow_reencode': lambda: shared(x, ['flow'], previous_features=shared.flow_features(shared.encoder(x_prev)),
                                            return_flow_features=True),
            'flow_reencode_to_stride': lambda: shared(
                x, ['flow'], previous_features=shared.encode_flow_features(x_prev), return_flow_features=True),
        }
        for fn in variants.values():   # warm-up
            fn()
        samples = {k: [] for k in variants}
        for _ in range(repeats):
            for name, fn in variants.items():
                samples[name].append(timed(fn, device))
    med = {k: statistics.median(v) for k, v in samples.items()}
    cpu_model = HydraNet(config)
    macs_all = component_costs(cpu_model, size, TASKS)['total'][1]
    macs_sd = component_costs(cpu_model, size, ['segmentation', 'depth'])['total'][1]
    return {
        'size': f'{w}x{h}', 'median_ms': med,
        'ratios': {
            'throughput_all_vs_separate': med['separate_4'] / med['all_heads'],
            'depth_only_vs_all': med['depth_only'] / med['all_heads'],
            'flow_cached_vs_reencode': med['flow_cached'] / med['flow_reencode'],
            'flow_cached_vs_reencode_to_stride': med['flow_cached'] / med['flow_reencode_to_stride'],
        },
        'gmacs': {'seg_depth': macs_sd, 'all_heads': macs_all, 'all_vs_seg_depth': macs_all / macs_sd},
    }


def machine_note(device, dtype):
    if device.type == 'cuda':
        return f'{torch.cuda.get_device_name(device)}, {str(dtype).replace("torch.", "")}, torch {torch.__version__}'
    return (f'CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, '
            f'{torch.get_num_threads()} torch threads, fp32, torch {torch.__version__}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--sizes', default='640x480,1242x375')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda' (fp16 on cuda)")
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error('--repeats must be >= 5 (medians of fewer runs are not reported)')
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == 'cuda' else torch.float32
    results = [bench_size(parse_size(s), args.repeats, device, dtype) for s in args.sizes.split(',')]
    print(f'Machine: {machine_note(device, dtype)}; median of {args.repeats} runs, batch 1\n')
    print('| size | all heads ms | 4 separate ms | throughput ratio (>= 3.0) | depth-only / all (<= 0.55) '
          '| flow cached / re-encode (<= 0.6) | flow cached / re-encode to stride 16 '
          '| GMACs seg+depth (<= 6.5) | GMACs all / seg+depth (<= 1.35) |')
    print('|---|---|---|---|---|---|---|---|---|')
    for r in results:
        m, q, g = r['median_ms'], r['ratios'], r['gmacs']
        print(f"| {r['size']} | {m['all_heads']:.1f} | {m['separate_4']:.1f} | "
              f"{q['throughput_all_vs_separate']:.2f}x | {q['depth_only_vs_all']:.2f} | "
              f"{q['flow_cached_vs_reencode']:.2f} | {q['flow_cached_vs_reencode_to_stride']:.2f} | "
              f"{g['seg_depth']:.2f} | {g['all_vs_seg_depth']:.2f} |")
    print('\nMedian ms per variant:')
    for r in results:
        print(f"  {r['size']}: " + ', '.join(f'{k} {v:.1f}' for k, v in r['median_ms'].items()))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'machine': machine_note(device, dtype), 'repeats': args.repeats,
                       'results': results}, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
