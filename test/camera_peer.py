"""A camera in its own process for transport tests: publishes rgb8 frames at a steady rate from
the moment its publisher exists, as a driver does (it waits for no subscriber).

Usage: camera_peer.py TOPIC COUNT HZ WIDTH HEIGHT reliable|best_effort [READERS]
With READERS, it first waits (at most 20 s) until that many subscriptions have matched it, so every
frame it sends has each of its readers to go to.
Prints 'published N' when done, then waits for SIGINT so late deliveries still have a sender.
"""
import sys
import time

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image


def main(argv):
    if len(argv) not in (6, 7) or argv[5] not in ('reliable', 'best_effort') or (argv[6:] and not argv[6].isdigit()):
        print(__doc__, file=sys.stderr)
        return 2
    topic, count, hz, width, height = argv[0], int(argv[1]), float(argv[2]), int(argv[3]), int(argv[4])
    reliability = ReliabilityPolicy.RELIABLE if argv[5] == 'reliable' else ReliabilityPolicy.BEST_EFFORT
    rclpy.init()
    node = rclpy.create_node('hydranet_test_camera')
    pub = node.create_publisher(Image, topic, QoSProfile(depth=10, reliability=reliability))
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8).tobytes()
    deadline = time.monotonic() + 20.0
    readers = int(argv[6]) if argv[6:] else 0
    while pub.get_subscription_count() < readers and time.monotonic() < deadline:
        time.sleep(0.005)
    start = time.monotonic()
    try:
        for k in range(count):
            msg = Image(height=height, width=width, encoding='rgb8', step=3 * width, data=pixels)
            msg.header.frame_id = f'frame{k}'
            msg.header.stamp.sec, msg.header.stamp.nanosec = 1 + k // 1000, (k % 1000) * 1_000_000
            pub.publish(msg)
            time.sleep(max(0.0, start + (k + 1) / hz - time.monotonic()))
        print(f'published {count}', flush=True)
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
