"""Shared pytest set-up: every test session talks DDS on its own domain, on loopback only.

Set before any test imports rclpy, and inherited by the processes the tests start, so
concurrent test runs (or other ROS users of this machine) never see each other's traffic.
"""
import os
import random
import sys
from pathlib import Path

import pytest

os.environ.setdefault('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
# Exported ONNX graphs of this session's (random-weight) checkpoints go to a folder of its own,
# shared with the node processes the tests start, instead of the user's cache.
if 'HYDRANET_ONNX_CACHE_DIR' not in os.environ:
    import atexit
    import shutil
    import tempfile
    os.environ['HYDRANET_ONNX_CACHE_DIR'] = tempfile.mkdtemp(prefix='hydranet-test-onnx-')
    atexit.register(shutil.rmtree, os.environ['HYDRANET_ONNX_CACHE_DIR'], True)

TEST_DIR = Path(__file__).resolve().parent
if str(TEST_DIR) not in sys.path:
    sys.path.insert(0, str(TEST_DIR))

# the hang watchdog's hooks (see hang_watchdog.py), registered by being names of this conftest
from hang_watchdog import pytest_configure, pytest_runtest_protocol  # noqa: E402,F401


@pytest.fixture
def ros_node():
    """A fresh rclpy context and node for one test; torn down even when the test fails."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(f'hydranet_test_{os.getpid()}', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    node.executor_for_test = executor
    try:
        yield node
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory):
    """A small random-weight checkpoint (4 segmentation classes, 2 detection classes)."""
    from node_harness import make_tiny_checkpoint
    return make_tiny_checkpoint(tmp_path_factory.mktemp('models') / 'tiny.pt')


@pytest.fixture(scope='module')
def drive():
    """Three 1242x375 frames of a held-out synthetic drive with cars in view, and its camera_info."""
    from sensor_msgs.msg import CameraInfo

    from hydranet_ros.world import World
    world = World(2000)
    frames = list(world.frames(3, start=10))
    info = CameraInfo(width=1242, height=375, k=world.camera.k, distortion_model='plumb_bob', d=[0.0] * 5)
    return frames, info


@pytest.fixture
def node():
    """The node on the bundled model, configured and active, with its stats subscribed."""
    from hydranet_ros.model.registry import weights
    from hydranet_ros.msg import InferenceStats
    from node_harness import NodeHarness
    h = NodeHarness(weights().path(), detection__score_threshold=0.3)
    h.configure_activate()
    h.subscribe(InferenceStats, '/hydranet/stats')
    yield h
    h.close()
