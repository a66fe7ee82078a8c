"""torch against onnxruntime: the Predictor, and the node end to end, on this machine's CPU.

    python bench/bench_backends.py [--frames 30] [--seconds 8] [--json bench/results_backends.json]

Two models, all four heads, a flow sequence (every frame after the first has a previous one):
  bundled  the bundled checkpoint, 416x128 input, fed 640x480 frames
  default  the default architecture (random weights; cost does not depend on them), 640x480
1. Predictor: one process per backend, one frame at a time, round-robin (each frame goes to
   both, the order alternating), median ms per backend and the ratio.
2. Node latency: one node process per backend, both alive; each frame is published to one
   node and its last output awaited, then to the other; median end-to-end ms, the ratio to the
   Predictor's median in this same run, and the backends' ratio.
3. Node throughput: each node flooded in turn (alternating blocks of --seconds / 2, twice),
   frames processed per second; p95 latency at twice the rate the model sustains against the
   model time; resident memory before, during and after.
Also: lazy heads on onnxruntime (depth only against all heads) on the Predictor.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rclpy
import torch
from sensor_msgs.msg import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_node import QOS, Rig, stats_listener, wait          # noqa: E402

from hydranet_ros.image_codec import numpy_to_image             # noqa: E402
from hydranet_ros.inference import Predictor                    # noqa: E402
from hydranet_ros.inference.backends import OnnxOptions         # noqa: E402
from hydranet_ros.model import HydraNet, HydraNetConfig         # noqa: E402
from hydranet_ros.model.checkpoint import CheckpointMetadata, save_checkpoint   # noqa: E402
from hydranet_ros.model.registry import weights                 # noqa: E402
from hydranet_ros.world import World                            # noqa: E402

BACKENDS = ('torch', 'onnxruntime')


def drive(n):
    """n 640x480 frames of a synthetic drive (real content: detections and flow are non-trivial)."""
    return [f.rgb for f in World(2000, size=(480, 640)).frames(n)]


def _predictor_worker(conn, checkpoint, backend, cache_dir, tasks, frames):
    """One backend's Predictor in a process of its own: times predict() on the frame index it
    is sent, so neither backend's idle threads run while the other is measured."""
    predictor = Predictor(checkpoint, device='cpu', backend=backend, onnx=OnnxOptions(cache_dir=cache_dir))
    predictor.warmup(3)
    images = drive(frames)
    conn.send('ready')
    while (i := conn.recv()) is not None:
        s = time.perf_counter()
        predictor.predict(images[i % len(images)], tasks=tasks, stamps_ns=[1_000_000_000 + i * 50_000_000])
        conn.send((time.perf_counter() - s) * 1e3)


def bench_predictor(checkpoint, frames, cache_dir, tasks=None):
    """Round-robin over one process per backend: each frame to both, the order alternating."""
    ctx = multiprocessing.get_context('spawn')
    workers = {}
    for b in BACKENDS:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_predictor_worker, args=(child, str(checkpoint), b, cache_dir, tasks, frames))
        proc.start()
        child.close()          # so a worker that dies shows as EOFError here, not a hang
        workers[b] = (proc, parent)
    for _, conn in workers.values():
        assert conn.recv() == 'ready'
    times = {b: [] for b in BACKENDS}
    for i in range(2 * frames):
        for b in (BACKENDS if i % 2 == 0 else BACKENDS[::-1]):
            workers[b][1].send(i)
            times[b].append(workers[b][1].recv())
            time.sleep(0.02)    # let the other process's pools settle before it is timed
    for proc, conn in workers.values():
        conn.send(None)
        proc.join(timeout=30)
    return {b: statistics.median(t[2:]) for b, t in times.items()}


class Nodes:
    """One node process per backend in one rig, each in its own namespace."""

    def __init__(self, checkpoint, cache_dir, **params):
        common = {'input_reliability': 'reliable', 'qos_depth': 50, 'onnx.cache_dir': cache_dir, **params}
        self.rig = Rig(checkpoint, [(b, {'backend': b, **common}) for b in BACKENDS])
        self.got = {b: [] for b in BACKENDS}
        self.last = {}
        for b in BACKENDS:
            stats_listener(self.rig, f'/{b}/stats', self.got[b], self.last)
        self.pubs = {b: self.rig.peer.create_publisher(Image, f'/{b}/input/image', QOS) for b in BACKENDS}
        wait(lambda: all(p.get_subscription_count() for p in self.pubs.values()), 120)

    def one(self, backend, msg, t):
        got = self.got[backend]
        got.clear()
        s = time.perf_counter()
        self.pubs[backend].publish(msg)
        if not wait(lambda: any(abs(st - t * 1e-9) < 1e-6 for st, _ in got), 60):
            return None
        return (next(r for st, r in got if abs(st - t * 1e-9) < 1e-6) - s) * 1e3

    def close(self):
        self.rig.close()


def bench_node_latency(nodes: Nodes, images, offset):
    lat = {b: [] for b in BACKENDS}
    msgs = [numpy_to_image(im, 'rgb8') for im in images]
    for i in range(2 * len(images)):
        msg = msgs[i % len(msgs)]
        t = offset + i * 50_000_000
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t, 1_000_000_000)
        order = BACKENDS if i % 2 == 0 else BACKENDS[::-1]
        for b in order:
            ms = nodes.one(b, msg, t)
            if ms is not None and i >= 2:
                lat[b].append(ms)
    return {b: statistics.median(v) for b, v in lat.items()}


def bench_node_throughput(nodes: Nodes, images, model_ms, seconds, offset):
    """Each backend's node flooded at twice its model rate, in alternating blocks."""
    msgs = [numpy_to_image(im, 'rgb8') for im in images[:4]]
    result = {b: {'processed': 0, 'elapsed': 0.0, 'latency': [], 'rss': []} for b in BACKENDS}
    i = 0
    for block in range(4):
        b = BACKENDS[block % 2]
        period = model_ms[b] / 2 / 1e3
        got, sent = nodes.got[b], {}
        got.clear()
        r = result[b]
        r['rss'].append(_rss_mb(nodes.rig, BACKENDS.index(b)))
        start = time.perf_counter()
        while time.perf_counter() - start < seconds / 2:
            msg = msgs[i % len(msgs)]
            t = offset + i * 50_000_000
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t, 1_000_000_000)
            sent[round(t * 1e-9, 6)] = time.perf_counter()
            nodes.pubs[b].publish(msg)
            i += 1
            time.sleep(max(0.0, start + len(sent) * period - time.perf_counter()))
        elapsed = time.perf_counter() - start
        time.sleep(2 * model_ms[b] / 1e3 + 0.5)
        r['processed'] += len(got)
        r['elapsed'] += elapsed
        r['latency'] += [(rt - sent[round(st, 6)]) * 1e3 for st, rt in got if round(st, 6) in sent]
        r['rss'].append(_rss_mb(nodes.rig, BACKENDS.index(b)))
    return {b: {'fps': r['processed'] / r['elapsed'], 'p95_ms': float(np.percentile(r['latency'], 95)),
                'rss_mb': r['rss']} for b, r in result.items()}


def _rss_mb(rig, index):
    for line in Path(f'/proc/{rig.procs[index].pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
    return float('nan')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=30)
    parser.add_argument('--seconds', type=float, default=8.0)
    parser.add_argument('--json', type=Path, default=None, help='also write the numbers here')
    args = parser.parse_args(argv)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    tmp = Path(tempfile.mkdtemp())
    cache_dir = str(tmp / 'onnx')
    torch.manual_seed(0)
    default_ckpt = tmp / 'default.pt'
    config = HydraNetConfig()
    save_checkpoint(default_ckpt, HydraNet(config),
                    CheckpointMetadata(architecture=config.to_dict(), input_size=[480, 640]))
    models = {'bundled 416x128': weights().path(), 'default 640x480': default_ckpt}
    images = drive(args.frames)
    report = {'machine': f'{os.cpu_count()} CPU cores, torch {torch.__version__} ({torch.get_num_threads()} threads), '
                         f'onnxruntime {__import__("onnxruntime").__version__}, CPUExecutionProvider',
              'frames': args.frames, 'models': {}}
    rclpy.init()
    try:
        for label, ckpt in models.items():
            pred = bench_predictor(ckpt, args.frames, cache_dir)
            entry = {'predictor_ms': pred}
            if label.startswith('bundled'):
                entry['onnxruntime_depth_only_ms'] = bench_predictor(ckpt, args.frames, cache_dir, ['depth'])
            nodes = Nodes(ckpt, cache_dir, always_run=True, warmup_iterations=3)
            try:
                entry['node_ms'] = bench_node_latency(nodes, images, 100_000_000_000)
                entry['node_flood'] = bench_node_throughput(nodes, images, pred, args.seconds, 200_000_000_000)
            finally:
                nodes.close()
            report['models'][label] = entry
            print(label, json.dumps(entry), flush=True)
    finally:
        rclpy.try_shutdown()
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + '\n')
    return 0


def print_table(report):
    print(f"\nMachine: {report['machine']}; 640x480 rgb8 frames of a synthetic drive, all four heads, "
          f"median of {2 * report['frames'] - 2} frames per backend, round-robin\n")
    print('| model | measure | torch | onnxruntime | onnxruntime / torch |')
    print('|---|---|---|---|---|')
    for label, e in report['models'].items():
        p, n, f = e['predictor_ms'], e['node_ms'], e['node_flood']
        print(f"| {label} | Predictor ms (frames/s) | {p['torch']:.1f} ({1e3 / p['torch']:.1f}) | "
              f"{p['onnxruntime']:.1f} ({1e3 / p['onnxruntime']:.1f}) | {p['torch'] / p['onnxruntime']:.2f}x faster |")
        print(f"| {label} | node end-to-end ms (frames/s) | {n['torch']:.1f} ({1e3 / n['torch']:.1f}) | "
              f"{n['onnxruntime']:.1f} ({1e3 / n['onnxruntime']:.1f}) | {n['torch'] / n['onnxruntime']:.2f}x faster |")
        print(f"| {label} | node end-to-end / Predictor | {n['torch'] / p['torch']:.2f} | "
              f"{n['onnxruntime'] / p['onnxruntime']:.2f} | |")
        print(f"| {label} | node flooded at 2x, frames/s | {f['torch']['fps']:.1f} | {f['onnxruntime']['fps']:.1f} | "
              f"{f['onnxruntime']['fps'] / f['torch']['fps']:.2f}x |")
        print(f"| {label} | flooded: p95 latency / Predictor | {f['torch']['p95_ms'] / p['torch']:.2f} | "
              f"{f['onnxruntime']['p95_ms'] / p['onnxruntime']:.2f} | |")
        print(f"| {label} | flooded: node memory MB, first / last | "
              f"{f['torch']['rss_mb'][0]:.0f} / {f['torch']['rss_mb'][-1]:.0f} | "
              f"{f['onnxruntime']['rss_mb'][0]:.0f} / {f['onnxruntime']['rss_mb'][-1]:.0f} | |")
        if 'onnxruntime_depth_only_ms' in e:
            d = e['onnxruntime_depth_only_ms']
            print(f"| {label} | Predictor, depth head only, ms | {d['torch']:.1f} | {d['onnxruntime']:.1f} | "
                  f"{d['torch'] / d['onnxruntime']:.2f}x faster |")


if __name__ == '__main__':
    sys.exit(main())
