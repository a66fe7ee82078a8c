"""The GPU table: the bundled model's frame on one GPU, per backend and precision, 1 and 2 cameras.

    python bench/bench_gpu.py [--device cuda] [--frames 40] [--json out.json]

For 640x480 and 1242x375 frames of a synthetic drive, one and two cameras (a batch of two images,
each with its own flow stream), all four heads, flow from the second frame on: the Predictor's
median and p90 ms per call (preprocessing, network and the outputs at the images' size, as the
node calls it) for torch fp32, torch fp16 (autocast), onnxruntime with the CUDA provider and
onnxruntime with TensorRT fp16, each where this machine has it; a row says why where it does not.
Then the bundled network alone at each frame's own resolution (rounded up to a multiple of 32;
random input, torch fp16, batch 1 and 2), the cost of a model trained at that size. Written to run once
in a short device lease: no training, graphs exported once each. `--device cpu` runs the same
script on the CPU (a dry run of its logic; CPU numbers belong to the other benches).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch

from hydranet_ros import TASKS
from hydranet_ros.inference import Predictor
from hydranet_ros.inference.backends import OnnxOptions
from hydranet_ros.model.registry import weights
from hydranet_ros.world import World

SIZES = {'640x480': 'vga', '1242x375': 'kitti'}
#: (label, backend, precision, onnxruntime providers)
VARIANTS = (('torch fp32', 'torch', 'fp32', None), ('torch fp16', 'torch', 'fp16', None),
            ('onnxruntime CUDA fp32', 'onnxruntime', 'fp32', ('CUDAExecutionProvider',)),
            ('onnxruntime TensorRT fp16', 'onnxruntime', 'fp16',
             ('TensorrtExecutionProvider', 'CUDAExecutionProvider')))


def _sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def _missing_provider(providers, device) -> str | None:
    if providers is None:
        return None
    if not device.startswith('cuda'):
        return f'{providers[0]} needs --device cuda'
    import onnxruntime as ort
    have = ort.get_available_providers()
    return None if providers[0] in have else f'{providers[0]} not in this onnxruntime ({", ".join(have)})'


def time_predictor(path, frames, cameras, device, backend, precision, providers, n) -> dict:
    onnx = OnnxOptions(providers=providers) if providers else None
    predictor = Predictor(path, device=device, precision=precision, backend=backend, onnx=onnx)
    predictor.warmup(3)
    streams = [f'camera{i}' for i in range(cameras)]
    times = []
    for i in range(n):
        images = [frames[(i + c) % len(frames)].rgb for c in range(cameras)]
        _sync(device)
        start = time.perf_counter()
        predictor.predict(images, tasks=TASKS, streams=streams, stamps_ns=[10**9 + i * 10**8] * cameras)
        _sync(device)
        if i:                                       # the first call has no flow yet
            times.append((time.perf_counter() - start) * 1e3)
    p90 = max(times) if len(times) < 10 else statistics.quantiles(times, n=10)[-1]
    return {'median_ms': statistics.median(times), 'p90_ms': p90,
            'backend': predictor.backend_description}


def time_network(path, size_hw, batch, device, n) -> float:
    """The bundled model's network alone at size_hw, four heads (its weights: the architecture it ships)."""
    from hydranet_ros.model.checkpoint import load_checkpoint
    model = load_checkpoint(path).model.eval().to(device)
    x = torch.rand(batch, 3, *size_hw, device=device)
    dtype = torch.float16 if device.startswith('cuda') else torch.bfloat16
    times = []
    with torch.inference_mode(), torch.autocast(device.split(':')[0], dtype=dtype):
        previous = model.encode_flow_features(torch.rand_like(x))     # the previous frame's, cached
        for i in range(n + 3):
            _sync(device)
            start = time.perf_counter()
            model(x, TASKS, previous_features=previous)
            _sync(device)
            if i >= 3:
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--frames', type=int, default=40)
    parser.add_argument('--json', help='also write the results to this file')
    args = parser.parse_args(argv)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'
    path = weights().path()
    report = {'machine': f'{platform.node()}, GPU {gpu}, torch {torch.__version__}', 'model': str(path), 'rows': []}
    print(f'Machine: {report["machine"]}; {args.frames - 1} calls each (the first left out), {path}\n')
    print('| size | cameras | backend | median ms per call | p90 ms |')
    print('|---|---|---|---|---|')
    for size, camera in SIZES.items():
        frames = list(World(2000, camera=camera).frames(8))
        for cameras in (1, 2):
            for label, backend, precision, providers in VARIANTS:
                row = {'size': size, 'cameras': cameras, 'variant': label}
                why = _missing_provider(providers, args.device)
                try:
                    if why:
                        raise RuntimeError(why)
                    row.update(time_predictor(path, frames, cameras, args.device, backend, precision, providers,
                                              args.frames))
                    cells = f'{row["median_ms"]:.2f} | {row["p90_ms"]:.2f}'
                except Exception as exc:              # a missing provider or precision: said, not fatal
                    row['error'] = f'{type(exc).__name__}: {exc}'.splitlines()[0][:200]
                    cells = f'not measured: {row["error"]} | '
                report['rows'].append(row)
                print(f'| {size} | {cameras} | {label} | {cells} |', flush=True)
    print('\n| network alone at | batch | torch, autocast | median ms |')
    print('|---|---|---|---|')
    for size_hw in ((480, 640), (384, 1248)):
        for batch in (1, 2):
            ms = time_network(path, size_hw, batch, args.device, max(5, args.frames // 2))
            report['rows'].append({'network_hw': size_hw, 'batch': batch, 'median_ms': ms})
            print(f'| {size_hw[1]}x{size_hw[0]} | {batch} | {args.device} | {ms:.2f} |', flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
