"""The node's input subscriptions and their reliability (`input_reliability`: reliable,
best_effort, or auto: follow the publishers, as `ros2 bag record` does)."""
from __future__ import annotations

import threading
import time

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from hydranet_ros import topics

RELIABILITY = {'reliable': ReliabilityPolicy.RELIABLE, 'best_effort': ReliabilityPolicy.BEST_EFFORT}
#: How often `auto` looks at the publishers again after activation (a publisher's arrival is also
#: seen at once, by the subscription's matched event; the check catches departures and misses).
QOS_CHECK_PERIOD_S = 1.0
#: A replaced subscription is destroyed once its successor has matched, or after this long.
RETIRE_AFTER_S = 3.0
#: A loss found this soon after `auto` switched a topic to reliable is the switch's gap.
SWITCH_GAP_WINDOW_S = 5.0


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
        self._standby = {}        # (camera, topic) -> a reliable subscription beside a best-effort one
        self._retired = []        # (subscription, its successor's key, since): replaced, still delivering
        self.late_switch = {}     # (camera, topic) -> when auto switched it best effort -> reliable
        self._timer = self._soon = None
        self._adapt_lock = threading.Lock()   # the timer and the QoS events run on different threads
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
            # a matched publisher adapts at once, from the executor: not inside the event callback of
            # the subscription that adapting destroys (rclpy then reports a destroyed handle)
            self._soon = self._node.create_guard_condition(self.adapt)

    def subscribe(self, cam: str, name: str, reliability: str | None = None, params=None):
        """(Re)create one input subscription with the reliability its publishers call for. With `auto`
        and no publisher yet, a reliable standby beside the best-effort one: a reliable camera that
        comes later is received reliably from its first frame, and switching is only promoting it."""
        p = params or self._params
        publishers = self.publishers_of(name)
        reliability = reliability or adapted_reliability(p.input_reliability, publishers)
        sub = self._create(cam, name, reliability, p)
        if self._closed:        # closed meanwhile: nothing may stay subscribed
            self._node.destroy_subscription(sub)
            return
        old = self.subs.get((cam, name))
        self.subs[(cam, name)] = (sub, reliability)
        if old is not None:     # kept until the new one has matched: no frame falls between the two
            self._retired.append((old[0], (cam, name), time.monotonic()))
        self._keep_standby(cam, name, reliability, publishers, p)

    def _create(self, cam: str, name: str, reliability: str, p):
        node = self._node
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p.qos_depth, reliability=RELIABILITY[reliability])
        # A publisher this subscription cannot match: adapt now (auto), or say why nothing arrives.
        # A new publisher matched: with auto, adapt now, before its frames go best effort for a second.
        events = SubscriptionEventCallbacks(incompatible_qos=lambda event: self._on_incompatible_qos(name),
                                            matched=self._on_matched)
        if name.endswith(topics.INPUT_CAMERA_INFO):
            return node.create_subscription(CameraInfo, name, lambda msg: self._on_camera_info(cam, msg), qos,
                                            event_callbacks=events)
        msg_type = CompressedImage if name.endswith(topics.INPUT_COMPRESSED) else Image
        return node.create_subscription(msg_type, name, lambda msg, info: self._on_image(cam, msg, info), qos,
                                        event_callbacks=events)

    def _keep_standby(self, cam: str, name: str, reliability: str, publishers, p):
        """A reliable standby exactly while `auto` is best effort for want of any publisher."""
        key = (cam, name)
        wanted = p.input_reliability == 'auto' and reliability == 'best_effort' and not publishers
        if wanted and key not in self._standby and not self._closed:
            self._standby[key] = self._create(cam, name, 'reliable', p)
        elif not wanted and key in self._standby:
            self._retired.append((self._standby.pop(key), key, time.monotonic()))

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

    def _on_matched(self, event):
        p = self._params
        if self._closed or p is None or p.input_reliability != 'auto' or event.current_count_change <= 0:
            return
        soon = self._soon
        if soon is not None:
            soon.trigger()

    def adapt(self):
        """With input_reliability `auto`: follow the publishers as they come and go."""
        p = self._params
        if self._closed or p is None:
            return
        with self._adapt_lock:
            self._reap()
            for (cam, name), (_, current) in list(self.subs.items()):
                publishers = self.publishers_of(name)
                wanted = adapted_reliability(p.input_reliability, publishers, current)
                if wanted == current:
                    self._keep_standby(cam, name, current, publishers, p)
                    continue
                log = self._node.get_logger().info
                topic = self._node.resolve_topic_name(name)
                if wanted == 'reliable':
                    self.late_switch[(cam, name)] = time.monotonic()
                standby = self._standby.pop((cam, name), None) if wanted == 'reliable' else None
                if standby is None:
                    log(f'{topic}: publishers now call for a {wanted} subscription (was {current}); resubscribing')
                    self.subscribe(cam, name, wanted, p)
                    continue
                log(f'{topic}: publishers now call for a reliable subscription (was {current}); its reliable '
                    'standby takes over')
                self._retired.append((self.subs[(cam, name)][0], (cam, name), time.monotonic()))
                self.subs[(cam, name)] = (standby, 'reliable')

    def _reap(self):
        """Destroy the replaced subscriptions whose successor has matched a publisher (or that have
        waited RETIRE_AFTER_S): duplicates meanwhile are dropped by their sequence numbers."""
        keep = []
        for sub, key, since in self._retired:
            successor = self.subs.get(key)
            if successor is None or successor[0].get_publisher_count() > 0 or \
                    time.monotonic() - since > RETIRE_AFTER_S:
                self._node.destroy_subscription(sub)
            else:
                keep.append((sub, key, since))
        self._retired = keep

    def reliability(self, cam: str) -> str:
        entry = self.subs.get((cam, self.image_topic(cam)))
        return entry[1] if entry else 'none'

    def loss_advice(self, cam: str) -> str:
        """What a loss of frames before the node means, given how this camera is subscribed and how
        its publishers publish: the camera's QoS is blamed only when the camera is best effort."""
        name = self.image_topic(cam)
        publishers = self.publishers_of(name)
        reliable_camera = bool(publishers) and all(
            i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in publishers)
        mine = self.reliability(cam)
        switched = self.late_switch.pop((cam, name), None)     # the gap of a switch is explained once
        if reliable_camera and (mine == 'best_effort' or (
                switched is not None and time.monotonic() - switched < SWITCH_GAP_WINDOW_S)):
            setting = self._params.input_reliability if self._params else 'auto'
            cause = ('input_reliability auto then switched it to reliable' if setting == 'auto' else
                     f'input_reliability is {setting}: set auto or reliable')
            return (f'they were lost while this subscription was still best effort, before the reliable camera was '
                    f'seen ({cause}); the camera\'s QoS is not the cause')
        if reliable_camera:
            return ('the camera and this subscription are both reliable, so the publisher itself skipped them '
                    '(its queue overflowed or it publishes faster than it delivers) or they were sent before '
                    'this subscription matched')
        if not publishers:
            return 'the camera is gone (no publisher now), so what it last sent cannot be told apart'
        return ('the camera publishes best effort, so its frames can be dropped in transport: make its publisher '
                'reliable, or load config/fastdds.xml in its process too (docs/NODE.md, "Transport")')

    def describe(self) -> str:
        return ', '.join(f'{name}: {rel}' for (_, name), (_, rel) in self.subs.items())

    def close(self):
        self._closed = True
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._timer = None
        if self._soon is not None:
            self._node.destroy_guard_condition(self._soon)
            self._soon = None
        with self._adapt_lock:      # an adapt under way finishes first
            for sub in [s for s, _ in self.subs.values()] + [s for s, _, _ in self._retired] + \
                    list(self._standby.values()):
                self._node.destroy_subscription(sub)
            self.subs, self._retired, self._standby = {}, [], {}
