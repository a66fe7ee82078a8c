"""Running the perception node in-process over real DDS, with a peer node for topics."""
import threading
import time

import numpy as np
import rclpy
from rclpy.exceptions import InvalidHandle
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from hydranet_ros.model import HydraNet, HydraNetConfig
from hydranet_ros.model.checkpoint import CheckpointMetadata, save_checkpoint

TINY = HydraNetConfig(width_mult=0.35, decoder_channels=16, num_classes=4, num_detection_classes=2)
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def make_tiny_checkpoint(path):
    import torch
    torch.manual_seed(0)
    meta = CheckpointMetadata(
        architecture=TINY.to_dict(), input_size=[96, 160], name='tiny',
        segmentation_classes=[{'name': n, 'color': c} for n, c in
                              [('road', [128, 64, 128]), ('car', [0, 0, 142]), ('person', [220, 20, 60]),
                               ('sky', [70, 130, 180])]],
        detection_classes=['car', 'person'])
    save_checkpoint(path, HydraNet(TINY), meta)
    return path


class NodeHarness:
    """A PerceptionNode plus a peer node spun by one executor on a background thread."""

    def __init__(self, checkpoint, namespace='hydranet', **params):
        from hydranet_ros.ros.perception_node import PerceptionNode
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        overrides = [Parameter('model_path', value=str(checkpoint)), Parameter('device', value='cpu'),
                     Parameter('warmup_iterations', value=0),
                     # as short as before the parameter existed: most tests start their publishers later
                     Parameter('input_discovery_wait_s', value=1.0)]
        overrides += [Parameter(k.replace('__', '.'), value=v) for k, v in params.items()]
        self.node = PerceptionNode(namespace=namespace, parameter_overrides=overrides, context=self.context)
        self.peer = rclpy.create_node('test_peer', context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=3, context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.peer)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()
        self.received = {}

    def _spin(self):
        # Not executor.spin(): close() stops this loop before shutting the executor down, so no
        # callback is ever submitted to an executor that is already shut down.
        # InvalidHandle: a publisher or subscription destroyed by a transition in the test's thread
        # while the wait was being built (rclpy's race; hydranet_ros/ros/spinning.py): wait again.
        while not self._stop.is_set() and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except InvalidHandle:
                continue

    def subscribe(self, msg_type, topic, qos=RELIABLE):
        self.received.setdefault(topic, [])
        return self.peer.create_subscription(msg_type, topic, self.received[topic].append, qos)

    def publisher(self, msg_type, topic, qos=RELIABLE):
        return self.peer.create_publisher(msg_type, topic, qos)

    def wait_for(self, predicate, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    def wait_matched(self, pub, timeout=10.0):
        return self.wait_for(lambda: pub.get_subscription_count() > 0, timeout)

    def configure_activate(self):
        from rclpy.lifecycle import TransitionCallbackReturn
        assert self.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert self.node.trigger_activate() == TransitionCallbackReturn.SUCCESS

    def close(self):
        try:
            if self.node.state_label == 'active':
                self.node.trigger_deactivate()
            if self.node.state_label == 'inactive':
                self.node.trigger_cleanup()
        finally:
            self._stop.set()
            self.thread.join(timeout=30)
            if self.thread.is_alive():
                # tearing the executor and nodes down under a spinning thread can hang or crash
                # inside rclpy (ros2/rclpy#663): leave them to the process and say so
                raise RuntimeError('the harness spin thread did not stop within 30 s; nodes left alive')
            self.executor.shutdown()
            self.node.destroy_node()
            self.peer.destroy_node()
            rclpy.shutdown(context=self.context)


def rgb_image(h, w, seed=0, stamp=(1, 0), frame_id='camera_optical', encoding='rgb8'):
    from hydranet_ros.image_codec import numpy_to_image
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    if encoding == 'bgr8':
        rgb = rgb[..., ::-1]
    msg = numpy_to_image(np.ascontiguousarray(rgb), encoding)
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    msg.header.frame_id = frame_id
    return msg
