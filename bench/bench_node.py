"""End-to-end cost of the perception node over real DDS, against the Predictor alone.

    python bench/bench_node.py [--frames 20] [--seconds 10]

1. latency: one 640x480 frame at a time, image published -> last output (stats) received,
   median, vs Predictor.predict on the same frames (median); all four heads.
2. overload: frames published at twice the rate the model sustains, for --seconds; p95
   latency of processed frames vs the model time, frames dropped, resident memory before/after.
3. two cameras: one node batching two cameras vs two nodes with one camera each, both flooded
   for --seconds; frames processed per second in total.
Each node runs in its own process, as deployed; the driver is this process.
Random-weight network of the default architecture (cost does not depend on the weights).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
import torch
import yaml
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from hydranet_ros.inference import Predictor
from hydranet_ros.model import HydraNet, HydraNetConfig
from hydranet_ros.model.checkpoint import CheckpointMetadata, save_checkpoint
from hydranet_ros.msg import InferenceStats
from hydranet_ros.image_codec import numpy_to_image

QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def frame(i, h=480, w=640, frame_id='cam'):
    rgb = np.random.default_rng(i % 4).integers(0, 256, (h, w, 3), dtype=np.uint8)
    msg = numpy_to_image(rgb, 'rgb8')
    msg.header.frame_id = frame_id
    t = 100_000_000_000 + i * 50_000_000          # integer nanoseconds
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(t, 1_000_000_000)
    return msg, rgb, t


class Rig:
    """Perception nodes in their own processes (as deployed: `perception_node --autostart`),
    and a driver node in this process that publishes frames and listens to the outputs."""

    def __init__(self, checkpoint, nodes_params):
        self.procs = []
        self.tmp = Path(tempfile.mkdtemp())
        for i, (ns, params) in enumerate(nodes_params):
            values = {'model_path': str(checkpoint), 'device': 'cpu', 'always_run': True,
                      'warmup_iterations': 2, 'backend': 'torch', **params}
            path = self.tmp / f'params_{i}.yaml'
            path.write_text(yaml.safe_dump({'/**/hydranet': {'ros__parameters': values}}))
            self.procs.append(subprocess.Popen(
                [sys.executable, '-m', 'hydranet_ros.ros.perception_main', '--autostart',
                 '--params-file', str(path), '--namespace', ns],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.peer = rclpy.create_node('bench_driver')
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.peer)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def close(self):
        for p in self.procs:
            p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        self.executor.shutdown()
        self.thread.join(timeout=10)
        self.peer.destroy_node()

    def node_rss_mb(self) -> float:
        total = 0.0
        for p in self.procs:
            for line in Path(f'/proc/{p.pid}/status').read_text().splitlines():
                if line.startswith('VmRSS:'):
                    total += int(line.split()[1]) / 1024
        return total


def stats_listener(rig, topic, sink, last=None):
    def on_stats(msg):
        sink.append((msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, time.perf_counter()))
        if last is not None:
            last[topic] = msg
    return rig.peer.create_subscription(InferenceStats, topic, on_stats, QOS)


def wait(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.001)
    return False


def bench_latency(checkpoint, n):
    """Interleaved per frame: the Predictor alone, then the same frame through the node, so
    machine noise hits both alike."""
    pred = Predictor(checkpoint, device='cpu', backend='torch')
    pred.warmup(2)
    rig = Rig(checkpoint, [('hydranet', {'input_reliability': 'reliable'})])
    got = []
    stats_listener(rig, '/hydranet/stats', got)
    pub = rig.peer.create_publisher(Image, '/hydranet/input/image', QOS)
    wait(lambda: pub.get_subscription_count() > 0, 120)
    model_ms, e2e_ms = [], []
    for i in range(n + 2):
        msg, rgb, t = frame(i)
        s = time.perf_counter()
        pred.predict(rgb, stamps_ns=[t])
        model = (time.perf_counter() - s) * 1e3
        got.clear()
        s = time.perf_counter()
        pub.publish(msg)
        if not wait(lambda: any(abs(st - t) < 1e-6 for st, _ in got), 30):
            continue
        if i >= 2:  # first two frames: discovery and caches
            e2e_ms.append((next(r for st, r in got if abs(st - t) < 1e-6) - s) * 1e3)
            model_ms.append(model)
    rig.close()
    return statistics.median(model_ms), statistics.median(e2e_ms)


def bench_overload(checkpoint, model_ms, seconds):
    rig = Rig(checkpoint, [('hydranet', {'input_reliability': 'reliable', 'qos_depth': 50})])
    got, last = [], {}
    stats_listener(rig, '/hydranet/stats', got, last)
    pub = rig.peer.create_publisher(Image, '/hydranet/input/image', QOS)
    wait(lambda: pub.get_subscription_count() > 0, 120)
    period = model_ms / 2 / 1e3
    sent = {}
    frames = [frame(i) for i in range(4)]
    rss0 = rig.node_rss_mb()
    start = time.perf_counter()
    i = 0
    rss_mid = None
    while time.perf_counter() - start < seconds:
        msg, _, _ = frames[i % 4]
        t = 100.0 + i * 0.05
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int(round((t % 1) * 1e9))
        sent[round(t, 6)] = time.perf_counter()
        pub.publish(msg)
        i += 1
        if rss_mid is None and time.perf_counter() - start > seconds / 2:
            rss_mid = rig.node_rss_mb()
        time.sleep(max(0.0, start + i * period - time.perf_counter()))
    time.sleep(2 * model_ms / 1e3 + 0.5)
    rss1 = rig.node_rss_mb()
    lat = [(r - sent[round(st, 6)]) * 1e3 for st, r in got if round(st, 6) in sent]
    final = last['/hydranet/stats']
    rig.close()
    return {'sent': i, 'processed': len(got), 'dropped': final.frames_dropped,
            'p50_ms': float(np.percentile(lat, 50)), 'p95_ms': float(np.percentile(lat, 95)),
            'rss_mb': (rss0, rss_mid, rss1)}


def bench_two_cameras(checkpoint, seconds):
    results = {}
    for label, layout in (('one node, two cameras batched', [('hydranet', {'cameras': ['a', 'b']})]),
                          ('two nodes, one camera each', [('hn_a', {}), ('hn_b', {})])):
        rig = Rig(checkpoint, layout)
        if len(layout) == 1:
            topics = ['/hydranet/a', '/hydranet/b']
        else:
            topics = ['/hn_a', '/hn_b']
        counts = {t: [] for t in topics}
        for t in topics:
            stats_listener(rig, f'{t}/stats', counts[t])
        pubs = [rig.peer.create_publisher(Image, f'{t}/input/image', QOS) for t in topics]
        wait(lambda: all(p.get_subscription_count() for p in pubs), 120)
        msg, _, _ = frame(0)
        time.sleep(1.0)
        before = sum(len(c) for c in counts.values())
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < seconds:
            t = 100.0 + i * 0.02
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int(round((t % 1) * 1e9))
            for p in pubs:
                p.publish(msg)
            i += 1
            time.sleep(0.02)
        elapsed = time.perf_counter() - start
        results[label] = (sum(len(c) for c in counts.values()) - before) / elapsed
        rig.close()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=20)
    parser.add_argument('--seconds', type=float, default=10.0)
    args = parser.parse_args(argv)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp())
    ckpt = tmp / 'bench.pt'
    config = HydraNetConfig()
    save_checkpoint(ckpt, HydraNet(config), CheckpointMetadata(architecture=config.to_dict(), input_size=[480, 640]))
    rclpy.init()
    try:
        model_ms, e2e_ms = bench_latency(ckpt, args.frames)
        over = bench_overload(ckpt, model_ms, args.seconds)
        two = bench_two_cameras(ckpt, args.seconds)
    finally:
        rclpy.try_shutdown()
    print(f'Machine: {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}, '
          f'640x480 rgb8, all four heads, median of {args.frames} frames\n')
    print('| measure | value | target |')
    print('|---|---|---|')
    print(f'| Predictor alone, median ms | {model_ms:.1f} | |')
    print(f'| node end-to-end (publish -> last output), median ms | {e2e_ms:.1f} | |')
    print(f'| end-to-end / Predictor | {e2e_ms / model_ms:.2f}x | <= 1.10x |')
    print(f"| overload 2x: frames sent / processed / dropped | {over['sent']} / {over['processed']} / "
          f"{over['dropped']} | drops counted |")
    print(f"| overload 2x: latency p50 / p95 ms | {over['p50_ms']:.1f} / {over['p95_ms']:.1f} | |")
    print(f"| overload 2x: p95 / model time | {over['p95_ms'] / model_ms:.2f}x | <= 2x |")
    r0, r1, r2 = over['rss_mb']
    print(f'| overload 2x: node resident memory start / middle / end MB | {r0:.0f} / {r1:.0f} / {r2:.0f} | flat |')
    a, b = two.values()
    print(f'| two cameras: one node batched, frames/s | {a:.2f} | |')
    print(f'| two cameras: two nodes, frames/s | {b:.2f} | |')
    print(f'| two cameras: batched / two nodes | {a / b:.2f}x | |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
