"""What record and play share: start-up, message classes by type name, QoS between rclpy and bag metadata."""
from __future__ import annotations

import importlib
import signal

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def message_class(msgtype: str):
    """The rclpy message class of 'pkg/msg/Name'; LookupError when the package is not installed."""
    try:
        package, kind, name = msgtype.split('/')
        return getattr(importlib.import_module(f'{package}.{kind}'), name)
    except (ValueError, ImportError, AttributeError):
        raise LookupError(f"message type '{msgtype}' is not installed here") from None


def to_rclpy_qos(bag_qos, reliable=None, depth: int = 100) -> QoSProfile:
    """rclpy QoS from a bag's offered profile (rosbags Qos), reliability overridable."""
    from rosbags.interfaces import QosDurability, QosReliability
    rel = ReliabilityPolicy.RELIABLE
    durable = DurabilityPolicy.VOLATILE
    if bag_qos is not None:
        if bag_qos.reliability == QosReliability.BEST_EFFORT:
            rel = ReliabilityPolicy.BEST_EFFORT
        if bag_qos.durability == QosDurability.TRANSIENT_LOCAL:
            durable = DurabilityPolicy.TRANSIENT_LOCAL
    if reliable is not None:
        rel = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
    if durable == DurabilityPolicy.TRANSIENT_LOCAL:
        depth = max(1, bag_qos.depth if bag_qos is not None and bag_qos.depth else 1)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=rel, durability=durable)


def ignore_late_interrupts():
    """Call once the work is done and saved: under `ros2 launch`, Ctrl-C reaches a process twice
    (from the terminal and from launch), and a second SIGINT during the interpreter's exit (DDS
    teardown takes a moment) would kill it with the default handler (exit code -2). SIGTERM keeps
    its default, for launch's escalation."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_node(program: str, node_name: str, ros_args):
    """rclpy initialised with the tool's own SIGINT/SIGTERM handling, and its node.

    Returns (node, stop): stop is a list that becomes non-empty on the first signal, so the
    tool can finish its work (close the bag, wait for acknowledgements) before shutting down.
    """
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(True))
    args = [a for a in ros_args if a != '--ros-args']
    rclpy.init(args=[program, '--ros-args', *args], signal_handler_options=SignalHandlerOptions.NO)
    return rclpy.create_node(node_name), stop
