"""`ros2 run hydranet_ros perception_node [--autostart] [--params-file FILE ...] [--ros-args ...]`.

Starts the lifecycle node in the unconfigured state, as `ros2 launch` would. With
--autostart this entry point acts as the lifecycle manager: it drives configure and activate
from outside the node, and on Ctrl-C deactivate, cleanup and shutdown. Without it, drive the
node with `ros2 lifecycle set /hydranet/hydranet configure` (and activate) as usual.

Everything after `--ros-args` belongs to rcl and reaches it untouched (`ros2 launch` passes
remaps, several `--params-file` and `--log-level` there); this entry point's own
`--params-file` options are handed to rcl ahead of those, so they merge the way rcl merges
(later files win, key by key). Unless the user configured Fast DDS themselves, the package's
transport profile (config/fastdds.xml) is loaded for camera-sized messages.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.signals import SignalHandlerOptions
from rclpy.utilities import remove_ros_args

from hydranet_ros import topics
from hydranet_ros.ros import spinning, transport
from hydranet_ros.ros.bag_common import ignore_late_interrupts
from hydranet_ros.ros.parameters import NODE_NAME

#: How long after start-up another node of the same name is looked for on the graph.
NAME_CLASH_WATCH_S = 3.0


class UsageError(Exception):
    """A bad command line: printed as one line, exit code 2."""


def parse_args(argv):
    """(own options, arguments for rcl) from the command line after the program name."""
    parser = argparse.ArgumentParser(prog='perception_node', description=__doc__.split('\n\n')[0])
    parser.add_argument('--autostart', action='store_true', help='configure and activate at start-up')
    parser.add_argument('--params-file', action='append', default=[], metavar='FILE',
                        help='ROS 2 parameters YAML (e.g. config/perception.yaml); repeat to merge, later wins')
    parser.add_argument('--namespace', default=topics.NODE_NAMESPACE,
                        help=f'node namespace (default: {topics.NODE_NAMESPACE}; a `__ns:=` remap wins)')
    parser.add_argument('--name', default=NODE_NAME, help=f'node name (default: {NODE_NAME}; a `__node:=` remap wins)')
    for path in _own_params_files(argv):
        if not os.path.isfile(path):
            raise UsageError(f'--params-file {path}: no such file')
    try:
        # rcl parses the ROS arguments here (a missing or malformed --params-file after
        # --ros-args is reported by rcl, in one line, below).
        own_argv = remove_ros_args(['perception_node', *argv])[1:]
    except Exception as exc:   # rclpy's RCLInvalidROSArgsError
        raise UsageError(f'invalid ROS arguments: {" ".join(str(exc).split())}') from None
    own = parser.parse_args(own_argv)
    rcl_args = ['perception_node']
    for path in own.params_file:
        rcl_args += ['--ros-args', '--params-file', path, '--']
    return own, [*rcl_args, *argv]


def _own_params_files(argv):
    """The values of --params-file outside --ros-args sections (checked before rcl sees them)."""
    found, in_ros, i = [], False, 0
    while i < len(argv):
        arg = argv[i]
        if arg == '--ros-args':
            in_ros = True
        elif arg == '--' and in_ros:
            in_ros = False
        elif not in_ros and arg == '--params-file' and i + 1 < len(argv):
            found.append(argv[i + 1])
            i += 1
        elif not in_ros and arg.startswith('--params-file='):
            found.append(arg.partition('=')[2])
        i += 1
    return found


def name_clash(node, timeout_s: float = NAME_CLASH_WATCH_S, stop: threading.Event | None = None) -> bool:
    """True if another node with this node's fully qualified name shows up on the graph within
    timeout_s (discovery takes a moment). Two nodes of one name share their services, so a
    launch's lifecycle transitions would reach the old one."""
    me = (node.get_name(), node.get_namespace())
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
        if node.get_node_names_and_namespaces().count(me) > 1:
            return True
        time.sleep(0.1)
    return False


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
    ignore_late_interrupts()      # the node is down; a second Ctrl-C must not kill the exit


def main(argv=None) -> int:
    """The `perception_node` entry point; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        own, rcl_args = parse_args(argv)
    except UsageError as exc:
        print(f'perception_node: error: {exc}', file=sys.stderr)
        return 2
    profile, why = transport.apply_profile()
    # Our own SIGINT/SIGTERM handling: the context must stay valid while the node is taken
    # down through deactivate, cleanup and shutdown.
    rclpy.init(args=rcl_args, signal_handler_options=SignalHandlerOptions.NO)
    from hydranet_ros.ros.perception_node import PerceptionNode
    node = PerceptionNode(own.name, namespace=own.namespace)
    log = node.get_logger()
    log.info(f'DDS transport profile: {profile} ({why})' if profile else f'DDS transport profile not loaded ({why})')
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    # not executor.spin itself: rclpy's destruction race would end this thread (ros/spinning.py)
    spinner = threading.Thread(target=spinning.spin, args=(executor, log.warning), daemon=True)
    spinner.start()
    code = 0
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def watch():
        # Said, not acted on: a node killed moments ago stays on the graph until its DDS lease
        # runs out, and this node must not refuse to start because of such a ghost.
        if name_clash(node, stop=stop):
            log.error(f'another node named {node.get_fully_qualified_name()} is on the graph: lifecycle '
                      f'transitions and parameter calls may reach it instead of this one; stop it, or start '
                      f'this one with another name or namespace (namespace:=... with ros2 launch)')
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        if own.autostart and not drive(node, ['configure', 'activate']):
            code = 1
        else:
            while not stop.wait(0.2) and rclpy.ok():
                pass
            log.info('stopping')
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        stop.set()
        watcher.join(timeout=5)
        take_down(node, executor, spinner)
    return code


if __name__ == '__main__':
    sys.exit(main())
