"""`play`: publish a bag's messages with their original timing, serialized bytes straight from the bag.

Options as `ros2 bag play` has them: --rate, --loop, --start-offset, --topics filter,
--remap FROM:=TO, --clock (publish /clock for use_sim_time). Each topic keeps the QoS it was
recorded with (latched topics stay latched); --qos-reliability overrides reliability.
"""
from __future__ import annotations

import argparse
import sys
import time

import rclpy
from rclpy.duration import Duration

from hydranet_ros.bag.storage import BagError, open_reader, read_messages
from hydranet_ros.ros.bag_common import ignore_late_interrupts, message_class, start_node, to_rclpy_qos


def parse_args(argv):
    """The `play` command line, parsed."""
    parser = argparse.ArgumentParser(prog='play', description=__doc__.split('\n\n')[0])
    parser.add_argument('bag', help='rosbag2 bag directory')
    parser.add_argument('-r', '--rate', type=float, default=1.0, help='playback rate factor (default 1.0)')
    parser.add_argument('-l', '--loop', action='store_true', help='play again from the start when done (Ctrl-C ends)')
    parser.add_argument('--start-offset', type=float, default=0.0, help='seconds into the bag to start at')
    parser.add_argument('--topics', nargs='+', help='only these topics (default: all)')
    parser.add_argument('--remap', nargs='+', default=[], metavar='FROM:=TO', help='publish topic FROM as TO')
    parser.add_argument('--clock', type=float, nargs='?', const=40.0, default=0.0, metavar='HZ',
                        help='publish /clock (rosgraph_msgs/Clock) at HZ (default 40 when given) for use_sim_time')
    parser.add_argument('--qos-reliability', choices=('reliable', 'best_effort'),
                        help='override the recorded reliability of every topic')
    parser.add_argument('--wait-for-subscribers', type=float, default=0.0, metavar='SECONDS',
                        help='before playing, wait up to SECONDS for every topic to have a subscriber')
    parser.add_argument('--delay', type=float, default=0.0, help='seconds to sleep before playing')
    own, rest = parser.parse_known_args(argv)
    if own.rate <= 0:
        parser.error('--rate must be > 0')
    if own.start_offset < 0 or own.delay < 0 or own.wait_for_subscribers < 0 or own.clock < 0:
        parser.error('--start-offset, --delay, --wait-for-subscribers and --clock must be >= 0')
    remaps = {}
    for item in own.remap:
        src, sep, dst = item.partition(':=')
        if not sep or not src.startswith('/') or not dst.startswith('/'):
            parser.error(f"--remap takes /FROM:=/TO with absolute topic names, got '{item}'")
        remaps[src] = dst
    own.remap = remaps
    return own, rest


class Player:
    """Publishes a bag's messages with their recorded QoS and timing (rate, loop, offset, remaps, /clock)."""
    def __init__(self, node, reader, topics=None, remap=None, reliable=None, clock_hz: float = 0.0):
        self.node, self.reader = node, reader
        remap = remap or {}
        available = {c.topic for c in reader.connections}
        if topics:
            missing = sorted(set(topics) - available)
            if missing:
                raise BagError(f"topics not in the bag: {', '.join(missing)} (it has: {', '.join(sorted(available))})")
        self.topics = set(topics) if topics else available
        self.publishers, self.skipped = {}, []
        for conn in reader.connections:
            if conn.topic not in self.topics or conn.topic in self.publishers:
                continue
            try:
                cls = message_class(conn.msgtype)
            except LookupError as exc:
                if topics:      # asked for by name: an error, not a silent gap
                    raise BagError(f'cannot play {conn.topic}: {exc}') from None
                # as ros2 bag play does: a topic whose type is not installed is skipped, with a warning
                node.get_logger().warning(f'skipping {conn.topic}: {exc}')
                self.skipped.append(conn.topic)
                continue
            offered = conn.ext.offered_qos_profiles[0] if getattr(conn.ext, 'offered_qos_profiles', None) else None
            self.publishers[conn.topic] = node.create_publisher(
                cls, remap.get(conn.topic, conn.topic), to_rclpy_qos(offered, reliable))
        self.clock_pub = None
        self.clock_period = 1.0 / clock_hz if clock_hz > 0 else None
        if clock_hz > 0:
            from rosgraph_msgs.msg import Clock
            self.clock_pub = node.create_publisher(Clock, '/clock', 10)
        self.published = {t: 0 for t in self.publishers}

    def wait_for_subscribers(self, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() > 0 for p in self.publishers.values()):
                return True
            time.sleep(0.05)
        return False

    def _clock(self, bag_ns: int):
        from rosgraph_msgs.msg import Clock
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
        self.clock_pub.publish(msg)

    def play_once(self, rate: float = 1.0, start_offset: float = 0.0, stop=lambda: False):
        begin = self.reader.start_time + int(start_offset * 1e9)
        wall0 = None
        last_clock = 0.0
        for conn, ns, raw in read_messages(self.reader, self.topics - set(self.skipped)):
            if ns < begin:
                continue
            if wall0 is None:
                wall0 = time.monotonic()
            target = wall0 + (ns - begin) / 1e9 / rate
            while True:
                if stop():
                    return False
                now = time.monotonic()
                if self.clock_pub is not None and now - last_clock >= self.clock_period:
                    self._clock(begin + int((now - wall0) * rate * 1e9))
                    last_clock = now
                if now >= target:
                    break
                time.sleep(min(target - now, self.clock_period or 0.05, 0.05))
            if self.clock_pub is not None:
                self._clock(ns)
            self.publishers[conn.topic].publish(raw)
            self.published[conn.topic] += 1
        return True

    def wait_for_acks(self, timeout: float = 5.0):
        for pub in self.publishers.values():
            try:
                pub.wait_for_all_acked(Duration(seconds=timeout))
            except Exception:   # best-effort publishers have nothing to wait for
                pass


def main(argv=None) -> int:
    """The `play` command line."""
    own, ros_args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        reader = open_reader(own.bag)
    except BagError as exc:
        print(f'play: error: {exc}', file=sys.stderr)
        return 2
    node, stop = start_node('play', 'hydranet_player', ros_args)
    code = 0
    player = None
    try:
        reliable = None if own.qos_reliability is None else own.qos_reliability == 'reliable'
        player = Player(node, reader, own.topics, own.remap, reliable, own.clock)
        if own.wait_for_subscribers and not player.wait_for_subscribers(own.wait_for_subscribers):
            idle = sorted(t for t, p in player.publishers.items() if p.get_subscription_count() == 0)
            print(f"play: no subscriber after {own.wait_for_subscribers:g} s on: {', '.join(idle)}; playing anyway",
                  flush=True)
        if own.delay:
            time.sleep(own.delay)
        while not stop:
            if not player.play_once(own.rate, own.start_offset, stop=lambda: bool(stop)) or not own.loop:
                break
        player.wait_for_acks()
    except BagError as exc:
        print(f'play: error: {exc}', file=sys.stderr)
        code = 2
    finally:
        reader.close()
        node.destroy_node()
        rclpy.try_shutdown()
        ignore_late_interrupts()
    if player is not None:
        print(f'play: published {sum(player.published.values())} messages from {own.bag}'
              + (' (interrupted)' if stop else ''))
    return code


if __name__ == '__main__':
    sys.exit(main())
