"""`ros2 run hydranet_ros perception_node [--autostart] [--params-file FILE] [ROS args]`.

Starts the lifecycle node in the unconfigured state, as `ros2 launch` would. With
--autostart this entry point acts as the lifecycle manager: it drives configure and activate
from outside the node, and on Ctrl-C deactivate, cleanup and shutdown. Without it, drive the
node with `ros2 lifecycle set /hydranet/hydranet configure` (and activate) as usual.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='perception_node', description=__doc__.split('\n\n')[0])
    parser.add_argument('--autostart', action='store_true', help='configure and activate at start-up')
    parser.add_argument('--params-file', help='ROS 2 parameters YAML (e.g. config/perception.yaml)')
    parser.add_argument('--namespace', default='hydranet', help='node namespace (default: hydranet)')
    parser.add_argument('--name', default='hydranet', help='node name (default: hydranet)')
    own, ros_args = parser.parse_known_args(argv)
    return own, ros_args


def drive(node, transitions) -> bool:
    """Run transitions in order from outside the node; False at the first that fails."""
    for name in transitions:
        result = getattr(node, f'trigger_{name}')()
        if result != TransitionCallbackReturn.SUCCESS:
            node.get_logger().error(f'{name} failed ({result.name}); node is {node.state_label}')
            return False
    return True


def take_down(node, executor, spinner=None, others=()):
    """Mirror of start-up, from whatever state the node is in: deactivate, cleanup, shutdown,
    then stop the executor and destroy the nodes (the context stays valid until the end)."""
    if node.state_label == 'active':
        drive(node, ['deactivate'])
    if node.state_label == 'inactive':
        drive(node, ['cleanup'])
    if node.state_label == 'unconfigured':
        node.trigger_shutdown()
    executor.shutdown()
    if spinner is not None:
        spinner.join(timeout=10)
    for n in (node, *others):
        n.destroy_node()
    rclpy.try_shutdown()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    own, rest = parse_args(argv)
    ros_args = [a for a in rest if a != '--ros-args']
    args = ['perception_node', '--ros-args', *ros_args]
    if own.params_file:
        args += ['--params-file', own.params_file]
    # Our own SIGINT/SIGTERM handling: the context must stay valid while the node is taken
    # down through deactivate, cleanup and shutdown.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    from hydranet_ros.ros.perception_node import PerceptionNode
    node = PerceptionNode(own.name, namespace=own.namespace)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    code = 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        if own.autostart and not drive(node, ['configure', 'activate']):
            code = 1
        else:
            while not stop.wait(0.2) and rclpy.ok():
                pass
            node.get_logger().info('stopping')
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        take_down(node, executor, spinner)
    return code


if __name__ == '__main__':
    sys.exit(main())
