"""Soak: the perception node (own process, bundled model, CPU) fed 30 Hz camera input for a while.

Reports per minute: frames sent, processed, dropped, latency p50/p95 (receipt to outputs, from
`stats`), node RSS; overall memory slope (MB/min, least squares after the first minute),
processing errors and rejected frames from /diagnostics, and whether the node process
stayed up. Not a test: numbers go to docs/BENCHMARKS.md.

    python bench/soak.py --minutes 10 [--rate 30] [--size 416x128]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from hydranet_ros.image_codec import numpy_to_image
from hydranet_ros.msg import InferenceStats
from hydranet_ros.model.registry import weights
from hydranet_ros.ros.replay import node_command
from hydranet_ros.world import World


def rss_mb(pid: int) -> float:
    with open(f'/proc/{pid}/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmRSS')) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--minutes', type=float, default=10.0)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--size', default='416x128')
    parser.add_argument('--json', help='also write the results here')
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split('x'))
    world = World(4242, 'kitti', size=(h, w))
    frames = [f.rgb for f in world.frames(30)]
    cam = world.camera
    os.environ.setdefault('ROS_DOMAIN_ID', str(60 + os.getpid() % 30))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    log = open('/tmp/hydranet_soak_node.log', 'w')
    proc = subprocess.Popen(node_command(weights().path(), params={'input_reliability': 'best_effort',
                                                                       'qos_depth': 5}),
                            stdout=log, stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node('soak_driver')
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    image_pub = node.create_publisher(Image, '/camera/image_raw', qos)
    info_pub = node.create_publisher(CameraInfo, '/camera/camera_info', qos)
    stats, diags = [], []
    node.create_subscription(InferenceStats, '/hydranet/stats', lambda m: stats.append((time.monotonic(), m)), 100)
    node.create_subscription(DiagnosticArray, '/diagnostics', lambda m: diags.append(m), 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    stop = threading.Event()
    spinner = threading.Thread(target=lambda: [executor.spin_once(timeout_sec=0.05) for _ in iter(stop.is_set, True)],
                               daemon=True)
    spinner.start()
    deadline = time.monotonic() + 120
    while image_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.0)
    info = CameraInfo(width=cam.width, height=cam.height, k=cam.k,
                      p=[cam.fx, 0, cam.cx, 0, 0, cam.fy, cam.cy, 0, 0, 0, 1, 0])
    msgs = [numpy_to_image(f, 'rgb8') for f in frames]
    start = time.monotonic()
    end = start + args.minutes * 60
    sent, memory, i = [], [], 0
    next_sample = start
    period = 1.0 / args.rate
    while time.monotonic() < end and proc.poll() is None:
        t = time.monotonic()
        msg = msgs[i % len(msgs)]
        stamp = 1_700_000_000 + i * period
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), int((stamp % 1) * 1e9)
        info.header.stamp = msg.header.stamp
        info_pub.publish(info)
        image_pub.publish(msg)
        sent.append(t)
        i += 1
        if t >= next_sample:
            memory.append((t - start, rss_mb(proc.pid)))
            next_sample += 10.0
        time.sleep(max(0.0, start + i * period - time.monotonic()))
    alive = proc.poll() is None
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    stop.set()
    spinner.join(timeout=5)
    log.close()
    node_log = open('/tmp/hydranet_soak_node.log').read()
    rows = []
    minutes = int(np.ceil(args.minutes))
    for m in range(minutes):
        lo, hi = start + 60 * m, start + 60 * (m + 1)
        lat = [s.total_ms for t, s in stats if lo <= t < hi]
        mem = [v for t, v in memory if 60 * m <= t < 60 * (m + 1)]
        rows.append({'minute': m + 1, 'sent': sum(lo <= t < hi for t in sent), 'processed': len(lat),
                     'latency_p50_ms': float(np.median(lat)) if lat else None,
                     'latency_p95_ms': float(np.percentile(lat, 95)) if lat else None,
                     'rss_mb': float(np.mean(mem)) if mem else None})
    late = [(t, v) for t, v in memory if t >= 60] or memory
    slope = float(np.polyfit([t / 60 for t, _ in late], [v for _, v in late], 1)[0]) if len(late) > 2 else float('nan')
    last = stats[-1][1] if stats else None
    values = {kv.key: kv.value for kv in diags[-1].status[0].values} if diags else {}
    result = {'machine': f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores', 'rate_hz': args.rate,
              'minutes': args.minutes, 'size': args.size, 'node_alive_to_the_end': alive,
              'frames_sent': len(sent), 'frames_processed': last.frames_processed if last else 0,
              'frames_dropped': last.frames_dropped if last else 0,
              'frames_rejected': last.frames_rejected if last else 0,
              'processing_errors': values.get('processing_errors'),
              'tracebacks_in_node_log': node_log.count('Traceback'),
              'memory_slope_mb_per_min': slope, 'per_minute': rows}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    node.destroy_node()
    rclpy.shutdown()
    return 0 if alive else 1


if __name__ == '__main__':
    sys.exit(main())
