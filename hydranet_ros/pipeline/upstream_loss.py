"""Frames lost before they reached the node, estimated from what arrives.

Best-effort transport loses large samples silently (fragments dropped by the network stack),
and the node's own counters never see them. Two signals tell:
- the publisher's sequence number, where the middleware exposes it (Fast DDS does): every
  number skipped by one publisher is a sample that publisher sent and this reader never got;
- otherwise gaps in a camera's header stamps at a steady rate: an interval of k periods
  means k - 1 frames missing (the period is the median of recent intervals); an interval of
  more than ten periods is taken as a paused stream, not as loss.
ROS-free: it takes integers.
"""
from __future__ import annotations

import collections
import statistics

_PERIODS = 16          # intervals kept to estimate a camera's period
_MIN_PERIODS = 5       # before this many, no stamp-gap estimate
_GAP_FACTOR = 1.5      # an interval above this many periods holds missing frames
_PAUSE_PERIODS = 10    # an interval above this many periods is a paused stream, not a loss


class UpstreamLoss:
    """Counts frames missing upstream of one input topic."""

    def __init__(self):
        self.lost = 0
        self._last_seq: dict = {}                       # publisher id -> last sequence number
        self._last_stamp_ns: int | None = None
        self._intervals = collections.deque(maxlen=_PERIODS)

    def observe(self, stamp_ns: int, publisher=None, sequence: int | None = None) -> int | None:
        """Record one received message; returns how many were newly found missing before it, or None
        when this publisher's sample was already seen (a second subscription delivering it while the
        input is resubscribed, or a best-effort sample overtaken by a newer one): nothing new."""
        missing = 0
        if publisher is not None and sequence:
            last = self._last_seq.get(publisher)
            if last is not None and sequence <= last:
                return None
            if last is not None and sequence > last + 1:
                missing = sequence - last - 1
            self._last_seq[publisher] = sequence
        else:
            missing = self._from_stamps(stamp_ns)
        self.lost += missing
        return missing

    def _from_stamps(self, stamp_ns: int) -> int:
        last, self._last_stamp_ns = self._last_stamp_ns, stamp_ns
        if last is None or stamp_ns <= last:
            if last is not None:            # a loop or a time jump: start over
                self._intervals.clear()
            return 0
        interval = stamp_ns - last
        if len(self._intervals) >= _MIN_PERIODS:
            period = statistics.median(self._intervals)
            if interval > _PAUSE_PERIODS * period:
                return 0                 # the camera paused (or was restarted): nothing to count
            if interval > _GAP_FACTOR * period:
                return max(int(round(interval / period)) - 1, 0)   # a gap is not a period: not kept
        self._intervals.append(interval)
        return 0
