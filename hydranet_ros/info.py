"""`ros2 run hydranet_ros hydranet_info`: print what this installation provides.

A first check after `colcon build`: versions of the package and its numeric stack, whether the
generated interfaces and vision_msgs import, and where they come from.
"""
import importlib
import sys

from hydranet_ros import TASKS, __version__


def _where(module_name):
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return f'not importable ({exc})'
    return getattr(module, '__file__', None) or 'namespace package'


def main(argv=None):
    """The `hydranet_info` command line."""
    lines = [
        f'hydranet_ros {__version__} (tasks: {", ".join(TASKS)})',
        f'python {sys.version.split()[0]} at {sys.executable}',
        f'hydranet_ros.msg: {_where("hydranet_ros.msg")}',
        f'vision_msgs.msg: {_where("vision_msgs.msg")}',
        f'rclpy: {_where("rclpy")}',
        f'torch: {_where("torch")}',
    ]
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
