"""The node's input subscriptions and their reliability (`input_reliability`: reliable,
best_effort, or auto: follow the publishers, as `ros2 bag record` does)."""
from __future__ import annotations

import time

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from hydranet_ros import topics

RELIABILITY = {'reliable': ReliabilityPolicy.RELIABLE, 'best_effort': ReliabilityPolicy.BEST_EFFORT}
#: How often `auto` looks at the publishers again after activation.
QOS_CHECK_PERIOD_S = 1.0


def adapted_reliability(setting: str, publishers, current: str = 'best_effort') -> str:
    """The input subscription's reliability: `reliable` or `best_effort` as set, or with `auto`
    adapted to the publishers present: reliable when all of them are reliable (a reliable
    subscription then loses nothing in transport), best effort when any is not (the only one that
    matches a best-effort publisher). With no publisher there is nothing to adapt to: `current`
    stays."""
    if setting != 'auto':
        return setting
    if not publishers:
        return current
    if all(info.qos_profile.reliability == ReliabilityPolicy.RELIABLE for info in publishers):
        return 'reliable'
    return 'best_effort'


class InputSubscriptions:
    """One subscription per (camera, topic), (re)created with the reliability its publishers call
    for; callbacks on_image(cam, msg, info) and on_camera_info(cam, msg)."""

    def __init__(self, node, get_params, on_image, on_camera_info):
        self._node, self._get_params = node, get_params
        self._on_image, self._on_camera_info = on_image, on_camera_info
        self.subs = {}          # (camera, topic) -> (subscription, reliability)
        self._timer = None
        self._closed = False    # a timer or QoS event may still be running while the node deactivates

    @property
    def _params(self):
        return self._get_params()

    def image_topic(self, cam: str) -> str:
        return topics.input_image_topic(cam, self._params.input_transport)

    def publishers_of(self, name: str):
        return self._node.get_publishers_info_by_topic(self._node.resolve_topic_name(name))

    def start(self, cameras):
        """Subscribe every camera's image and camera_info; with `auto`, first wait (at most
        `input_discovery_wait_s`) for the cameras already running to be discovered, so that the first
        subscription already has their reliability (a camera started later is adapted to within
        QOS_CHECK_PERIOD_S), then keep following the publishers."""
        names = [(cam, self.image_topic(cam)) for cam in cameras]
        if self._params.input_reliability == 'auto':
            deadline = time.monotonic() + self._params.input_discovery_wait_s
            while time.monotonic() < deadline and not all(self.publishers_of(n) for _, n in names):
                time.sleep(0.05)
        for cam, name in names:
            self.subscribe(cam, name)
            self.subscribe(cam, topics.topic(cam, topics.INPUT_CAMERA_INFO))
        if self._params.input_reliability == 'auto':
            self._timer = self._node.create_timer(QOS_CHECK_PERIOD_S, self.adapt)

    def subscribe(self, cam: str, name: str, reliability: str | None = None, params=None):
        """(Re)create one input subscription with the reliability its publishers call for."""
        node, p = self._node, params or self._params
        reliability = reliability or adapted_reliability(p.input_reliability, self.publishers_of(name))
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p.qos_depth, reliability=RELIABILITY[reliability])
        # A publisher this subscription cannot match: adapt now (auto), or say why nothing arrives.
        events = SubscriptionEventCallbacks(incompatible_qos=lambda event: self._on_incompatible_qos(name))
        if name.endswith(topics.INPUT_CAMERA_INFO):
            sub = node.create_subscription(CameraInfo, name, lambda msg: self._on_camera_info(cam, msg), qos,
                                           event_callbacks=events)
        else:
            msg_type = CompressedImage if name.endswith(topics.INPUT_COMPRESSED) else Image
            sub = node.create_subscription(msg_type, name, lambda msg, info: self._on_image(cam, msg, info), qos,
                                           event_callbacks=events)
        if self._closed:        # closed meanwhile: nothing may stay subscribed
            node.destroy_subscription(sub)
            return
        old = self.subs.get((cam, name))
        self.subs[(cam, name)] = (sub, reliability)
        if old is not None:
            node.destroy_subscription(old[0])

    def _on_incompatible_qos(self, name: str):
        p = self._params
        if self._closed or p is None:
            return
        if p.input_reliability == 'auto':
            self.adapt()
        else:
            self._node.get_logger().warning(
                f'{self._node.resolve_topic_name(name)}: a publisher\'s QoS does not match this subscription '
                f'(input_reliability {p.input_reliability}); its messages cannot arrive. '
                f'Use input_reliability auto or best_effort', throttle_duration_sec=10.0)

    def adapt(self):
        """With input_reliability `auto`: follow the publishers as they come and go."""
        p = self._params
        if self._closed or p is None:
            return
        for (cam, name), (_, current) in list(self.subs.items()):
            wanted = adapted_reliability(p.input_reliability, self.publishers_of(name), current)
            if wanted != current:
                self._node.get_logger().info(f'{self._node.resolve_topic_name(name)}: publishers now call for a '
                                             f'{wanted} subscription (was {current}); resubscribing')
                self.subscribe(cam, name, wanted, p)

    def reliability(self, cam: str) -> str:
        entry = self.subs.get((cam, self.image_topic(cam)))
        return entry[1] if entry else 'none'

    def loss_advice(self, cam: str) -> str:
        """What a loss of frames before the node means, given how this camera is subscribed."""
        name = self.image_topic(cam)
        publishers = self.publishers_of(name)
        if self.reliability(cam) == 'reliable' and publishers and all(
                i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in publishers):
            return ('the camera and this subscription are both reliable, so the publisher itself skipped them '
                    '(its queue overflowed or it publishes faster than it delivers) or they were sent before '
                    'this subscription matched')
        return ('the camera publishes best effort, so its frames can be dropped in transport: make its publisher '
                'reliable, or load config/fastdds.xml in its process too (docs/NODE.md, "Transport")')

    def describe(self) -> str:
        return ', '.join(f'{name}: {rel}' for (_, name), (_, rel) in self.subs.items())

    def close(self):
        self._closed = True
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._timer = None
        for sub, _ in self.subs.values():
            self._node.destroy_subscription(sub)
        self.subs = {}
