"""How many camera frames reach the perception node over DDS, before and after the transport fixes.

    python bench/bench_dds_delivery.py [--seconds 10] [--repeats 1] [--out docs/dds_delivery.json]

A camera process (this script with --publish, default Fast DDS settings unless stated) publishes
rgb8 frames of 640x480 and 1242x375 at 15 and 30 Hz, best-effort or reliable, to a perception
node in its own process (`perception_node --autostart`, bundled model, all heads running).
Frames delivered = what the node received (processed + dropped by its latest-frame policy +
rejected, from its /diagnostics); sent = what the camera published. Three set-ups:
- before: the node as it was (input_reliability best_effort, middleware default transports);
- after: the node's defaults (input_reliability auto, the package's DDS profile), the camera
  with default settings, as a camera driver started on its own;
- after, camera with profile: both load config/fastdds.xml (as when both are started from one
  launch file, or FASTDDS_DEFAULT_PROFILES_FILE is exported for the robot).
The node's own loss estimate (frames_lost_upstream in /diagnostics) is reported beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {'640x480': (480, 640), '1242x375': (375, 1242)}
RATES = (15, 30)
RELIABILITY = ('best_effort', 'reliable')
SETUPS = {
    'before': ({'input_reliability': 'best_effort'}, {'HYDRANET_DDS_PROFILE': '0'}, False),
    'after': ({}, {}, False),
    'after, camera with profile': ({}, {}, True),
}
ROOT = Path(__file__).resolve().parent.parent


def publish(args) -> int:
    """The camera: wait for the node's subscription, publish --count frames at --rate, print sent."""
    import numpy as np
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    rclpy.init()
    node = rclpy.create_node('bench_camera')
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE if args.reliability == 'reliable'
                     else ReliabilityPolicy.BEST_EFFORT)
    pub = node.create_publisher(Image, args.topic, qos)
    h, w = SIZES[args.size]
    msg = Image(height=h, width=w, encoding='rgb8', step=w * 3)
    msg.data = np.random.default_rng(0).integers(0, 256, h * w * 3, dtype=np.uint8).tobytes()
    deadline = time.monotonic() + 60
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.5)   # the node adapts its subscription's reliability within a second
    period = 1.0 / args.rate
    start = time.monotonic()
    for i in range(args.count):
        t = start + i * period
        time.sleep(max(0.0, t - time.monotonic()))
        stamp = 1000.0 + i * period
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), int(round((stamp % 1) * 1e9))
        pub.publish(msg)
    time.sleep(1.0)
    print(json.dumps({'sent': args.count, 'seconds': time.monotonic() - start}), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def _diagnostics_listener():
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    rclpy.init()
    node = rclpy.create_node('bench_delivery_listener')
    latest = {}

    def on_diag(msg):
        for status in msg.status:
            if status.name.endswith('perception'):
                latest.update({kv.key: kv.value for kv in status.values})
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 10)
    return rclpy, node, latest


def run_one(size, rate, reliability, setup, seconds, model) -> dict:
    import rclpy
    from hydranet_ros.ros.replay import stop_process
    node_params, node_env, camera_profile = SETUPS[setup]
    tmp = Path(tempfile.mkdtemp())
    params = {'model_path': str(model), 'device': 'cpu', 'always_run': True, 'diagnostics_period_s': 0.5,
              **node_params}
    lines = [f'    {k}: {json.dumps(v)}' for k, v in params.items()]
    (tmp / 'params.yaml').write_text('/**/hydranet:\n  ros__parameters:\n' + '\n'.join(lines) + '\n')
    env = {k: v for k, v in os.environ.items() if k not in ('FASTDDS_DEFAULT_PROFILES_FILE',)}
    node_proc = subprocess.Popen([sys.executable, '-m', 'hydranet_ros.ros.perception_main', '--autostart',
                                  '--params-file', str(tmp / 'params.yaml')], env={**env, **node_env},
                                 stdout=open(tmp / 'node.log', 'w'), stderr=subprocess.STDOUT)
    _, listener, latest = _diagnostics_listener()
    try:
        deadline = time.monotonic() + 60
        while 'frames_processed' not in latest and time.monotonic() < deadline:
            rclpy.spin_once(listener, timeout_sec=0.1)
        camera_env = dict(env, HYDRANET_DDS_PROFILE='0')
        if camera_profile:
            camera_env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(ROOT / 'config' / 'fastdds.xml')
        count = int(seconds * rate)
        camera = subprocess.Popen([sys.executable, __file__, '--publish', '--topic', '/hydranet/input/image',
                                   '--size', size, '--rate', str(rate), '--count', str(count),
                                   '--reliability', reliability], env=camera_env,
                                  stdout=subprocess.PIPE, text=True)
        while camera.poll() is None:
            rclpy.spin_once(listener, timeout_sec=0.1)
        sent = json.loads(camera.stdout.read().strip().splitlines()[-1])['sent']
        settle = time.monotonic() + 2.0
        while time.monotonic() < settle:
            rclpy.spin_once(listener, timeout_sec=0.1)
        received = sum(int(latest.get(k, 0)) for k in ('frames_processed', 'frames_dropped', 'frames_rejected'))
        return {'size': size, 'rate_hz': rate, 'publisher': reliability, 'setup': setup, 'sent': sent,
                'received': received, 'lost_upstream_estimate': int(latest.get('frames_lost_upstream', 0)),
                'subscription': latest.get('input_reliability', '')}
    finally:
        stop_process(node_proc)
        listener.destroy_node()
        rclpy.shutdown()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=10.0, help='publishing time per case')
    parser.add_argument('--repeats', type=int, default=1)
    parser.add_argument('--out', type=Path, help='write the rows as JSON')
    parser.add_argument('--publish', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--topic', help=argparse.SUPPRESS)
    parser.add_argument('--size', choices=SIZES, help=argparse.SUPPRESS)
    parser.add_argument('--rate', type=float, help=argparse.SUPPRESS)
    parser.add_argument('--count', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--reliability', choices=RELIABILITY, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.publish:
        return publish(args)
    from hydranet_ros.model.registry import weights
    model = weights().path()
    rows = []
    print(f'machine: {os.cpu_count()} cores; {args.seconds:g} s per case; node: bundled model, all heads')
    print('| image | rate | publisher | set-up | delivered / sent | node\'s loss estimate | subscription |')
    print('|---|---|---|---|---|---|---|')
    for size in SIZES:
        for rate in RATES:
            for reliability in RELIABILITY:
                for setup in SETUPS:
                    runs = [run_one(size, rate, reliability, setup, args.seconds, model) for _ in range(args.repeats)]
                    # the run with the median delivery stands for the case (all runs kept in the JSON)
                    median = sorted(runs, key=lambda r: r['received'] / r['sent'])[len(runs) // 2]
                    ratio = median['received'] / median['sent']
                    row = dict(median, ratio=ratio, runs=runs)
                    rows.append(row)
                    print(f"| {size} | {rate} Hz | {reliability} | {setup} | "
                          f"{row['received']}/{row['sent']} ({100 * ratio:.1f}%) | "
                          f"{row['lost_upstream_estimate']} | {row['subscription']} |", flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
