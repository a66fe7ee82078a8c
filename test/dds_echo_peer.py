"""A second ROS process for round-trip tests: echoes every message it receives.

Usage: dds_echo_peer.py TYPE IN_TOPIC OUT_TOPIC [TYPE IN_TOPIC OUT_TOPIC ...]
where TYPE is 'pkg/msg/Name'. Each message received on IN_TOPIC is republished unchanged on
OUT_TOPIC, so the test process checks what crossed DDS twice (test -> peer -> test).
"""
import sys

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.qos import QoSProfile, ReliabilityPolicy

from rostest_util import message_class


def main(argv):
    triples = [argv[i:i + 3] for i in range(0, len(argv), 3)]
    if not triples or any(len(t) != 3 for t in triples):
        print(__doc__, file=sys.stderr)
        return 2
    rclpy.init()
    node = rclpy.create_node('hydranet_dds_echo_peer')
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    keep = []
    for type_name, in_topic, out_topic in triples:
        cls = message_class(type_name)
        pub = node.create_publisher(cls, out_topic, qos)
        keep.append(node.create_subscription(cls, in_topic, pub.publish, qos))
        keep.append(pub)
    print('peer ready', flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
