"""`record`: subscribe to topics as serialized messages and write a rosbag2 bag (MCAP or sqlite3).

Topics are given by name, by --regex, or --all; topics that appear later are picked up as
they are discovered. Messages are written as received (serialized bytes, no decode), with
their type's definition embedded; the receive time is the log time. SIGINT or SIGTERM ends
the recording and closes the bag properly; per-topic counts are printed at the end.
"""
from __future__ import annotations

import argparse
import re
import sys
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from hydranet_ros.bag.storage import STORAGES, BagError, BagWriter, format_counts, qos_profile, reindex
from hydranet_ros.bag.types import UnknownTypeError
from hydranet_ros.ros.bag_common import ignore_late_interrupts, message_class, start_node

_HIDDEN = ('/rosout', '/parameter_events')


class Recorder:
    """A node that records matching topics into a BagWriter."""

    def __init__(self, node, writer: BagWriter, topics=(), pattern: str | None = None, record_all: bool = False,
                 reliable: bool = True, depth: int = 1000, log=print):
        self.node, self.writer, self.log = node, writer, log
        self.topics = set(topics)
        self.pattern = re.compile(pattern) if pattern else None
        self.record_all = record_all
        self.reliable, self.depth = reliable, depth
        self.subscriptions = {}
        self.skipped = set()
        self.received = {}
        self.discover()
        self.timer = node.create_timer(0.25, self.discover)
        # Once a second what arrived goes to disk: a recorder killed without warning (SIGKILL,
        # power loss) loses at most about a second, and `record --reindex` makes the bag readable.
        self.flush_timer = node.create_timer(1.0, writer.flush)

    def wanted(self, topic: str) -> bool:
        if topic in self.topics:
            return True
        if self.pattern is not None and self.pattern.search(topic):
            return True
        return self.record_all and topic not in _HIDDEN

    def discover(self):
        for topic, types in self.node.get_topic_names_and_types():
            if topic in self.subscriptions or topic in self.skipped or not self.wanted(topic):
                continue
            msgtype = types[0]
            if len(types) > 1:
                self.log(f'record: {topic} is published with several types {types}; recording {msgtype}')
            try:
                cls = message_class(msgtype)
                infos = self.node.get_publishers_info_by_topic(topic)
                latched = bool(infos) and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                                              for i in infos)
                self.writer.add_topic(topic, msgtype, qos_profile(reliable=True, transient_local=latched,
                                                                  depth=1 if latched else 10))
            except (LookupError, UnknownTypeError, BagError) as exc:
                self.log(f'record: not recording {topic}: {exc}')
                self.skipped.add(topic)
                continue
            qos = QoSProfile(depth=1 if latched else self.depth,
                             reliability=ReliabilityPolicy.RELIABLE if self.reliable else ReliabilityPolicy.BEST_EFFORT,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
            self.received[topic] = 0
            self.subscriptions[topic] = self.node.create_subscription(
                cls, topic, self._callback(topic), qos, raw=True)
            self.log(f'record: recording {topic} ({msgtype})')

    def _callback(self, topic):
        def write(data: bytes):
            self.received[topic] += 1
            self.writer.write_raw(topic, self.node.get_clock().now().nanoseconds, data)
        return write


def parse_args(argv):
    """The `record` command line, parsed."""
    parser = argparse.ArgumentParser(prog='record', description=__doc__.split('\n\n')[0])
    parser.add_argument('output', help='bag directory to create (must not exist)')
    parser.add_argument('topics', nargs='*', help='topic names to record')
    parser.add_argument('-e', '--regex', help='also record topics matching this regular expression')
    parser.add_argument('-a', '--all', action='store_true',
                        help='record every topic (except /rosout, /parameter_events)')
    parser.add_argument('-s', '--storage', default='mcap', help=f"storage id: {', '.join(STORAGES)} (default mcap)")
    parser.add_argument('--qos', choices=('reliable', 'sensor'), default='reliable',
                        help='subscription reliability: reliable (default, loses nothing a reliable publisher '
                             'sends) or sensor (best effort)')
    parser.add_argument('--depth', type=int, default=1000, help='subscription queue depth (default 1000)')
    parser.add_argument('-d', '--duration', type=float, default=0.0,
                        help='stop after this many seconds (0: until Ctrl-C)')
    parser.add_argument('--reindex', action='store_true',
                        help='instead of recording, rebuild OUTPUT, a bag whose recorder was killed (no metadata.yaml)')
    own, rest = parser.parse_known_args(argv)
    if own.reindex:
        return own, rest
    if not (own.topics or own.regex or own.all):
        parser.error('give topics, --regex or --all')
    if own.regex:
        try:
            re.compile(own.regex)
        except re.error as exc:
            parser.error(f'--regex: {exc}')
    if own.depth < 1:
        parser.error('--depth must be >= 1')
    return own, rest


def main(argv=None) -> int:
    """The `record` command line."""
    own, ros_args = parse_args(sys.argv[1:] if argv is None else argv)
    if own.reindex:
        try:
            counts = reindex(own.output)
        except BagError as exc:
            print(f'record: error: {exc}', file=sys.stderr)
            return 2
        print(f'record: rebuilt {own.output} ({sum(counts.values())} messages; the original files are in '
              f'{own.output.rstrip("/")}.broken)')
        print(format_counts(dict(sorted(counts.items()))))
        return 0
    try:
        writer = BagWriter(own.output, own.storage)
    except BagError as exc:
        print(f'record: error: {exc}', file=sys.stderr)
        return 2
    node, stop = start_node('record', 'hydranet_recorder', ros_args)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    code = 0
    try:
        recorder = Recorder(node, writer, own.topics, own.regex, own.all, own.qos == 'reliable', own.depth,
                            log=lambda m: print(m, flush=True))
        deadline = time.monotonic() + own.duration if own.duration > 0 else None
        while not stop and rclpy.ok() and (deadline is None or time.monotonic() < deadline):
            executor.spin_once(timeout_sec=0.1)
        # Whatever already arrived in the middleware queues is written too.
        for _ in range(100):
            before = sum(recorder.received.values())
            executor.spin_once(timeout_sec=0.01)
            if sum(recorder.received.values()) == before:
                break
    except Exception as exc:   # a disk error while writing: keep what is written
        print(f'record: error: {type(exc).__name__}: {exc}', file=sys.stderr)
        code = 1
    finally:
        writer.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
        ignore_late_interrupts()
    print(f'record: wrote {own.output}')
    print(format_counts(dict(sorted(writer.counts.items())), '(no matching topics were seen)'))
    return code


if __name__ == '__main__':
    sys.exit(main())
