"""The perception node's counters, latency and loss bookkeeping, and its /diagnostics summary.

One thread-safe place for what the node counts (processed, dropped, rejected, errors, ...),
the frames it saw lost upstream, its recent latencies and rate; `report()` turns them into the
level, message and key-values of a DiagnosticStatus. No ROS import: the node builds messages.
"""
from __future__ import annotations

import collections
import threading
import time

import numpy as np

from hydranet_ros.pipeline.upstream_loss import UpstreamLoss

OK, WARN, ERROR = 0, 1, 2      # DiagnosticStatus levels
_LATENCY_WINDOW = 200


class NodeHealth:
    """The node's counters, latency window, upstream losses and last error, thread-safe."""
    def __init__(self):
        self._lock = threading.Lock()
        self._counters = {'processed': 0, 'dropped': 0, 'rejected': 0, 'errors': 0, 'camera_info_rejected': 0,
                          'flow_resets': 0, 'oom': 0, 'odom_rejected': 0, 'flow_ego_motion': 0}
        self._upstream: dict[str, UpstreamLoss] = {}
        self._latency_ms = collections.deque(maxlen=_LATENCY_WINDOW)
        self._window_processed = 0
        self._window_start = time.monotonic()
        self._lost_reported = 0
        self.last_error = ''
        self.last_tasks = ()

    # --- counting -----------------------------------------------------------------------------
    def count(self, counter: str, n: int = 1, error: str | None = None):
        with self._lock:
            self._counters[counter] += n
            if error is not None:
                self.last_error = error

    def processed(self, n: int, tasks):
        with self._lock:
            self._counters['processed'] += n
            self._window_processed += n
            self.last_tasks = tuple(tasks)

    def set_dropped(self, dropped: int):
        with self._lock:
            self._counters['dropped'] = dropped

    def latency(self, total_ms: float):
        with self._lock:
            self._latency_ms.append(total_ms)

    def input_seen(self, camera: str, stamp_ns: int, publisher=None, sequence=None) -> int | None:
        """An input message arrived; returns how many frames were newly found lost before it (None:
        this sample was already seen, see UpstreamLoss.observe)."""
        with self._lock:
            loss = self._upstream.setdefault(camera, UpstreamLoss())
        return loss.observe(stamp_ns, publisher, sequence)

    def counters(self, dropped: int | None = None) -> dict:
        """A copy of the counters; `dropped` from the live frame queue when given."""
        with self._lock:
            counts = dict(self._counters)
            counts['lost_upstream'] = sum(loss.lost for loss in self._upstream.values())
        if dropped is not None:
            counts['dropped'] = dropped
        return counts

    def start_window(self):
        with self._lock:
            self._window_start, self._window_processed = time.monotonic(), 0

    # --- the diagnostics summary ----------------------------------------------------------------
    def report(self, dropped: int | None = None) -> tuple[int, str, dict]:
        """(level, message, values) since the last report: rate over the window, latency
        percentiles, every counter, the last error. Warns while frames are lost upstream."""
        now = time.monotonic()
        with self._lock:
            lat = np.array(self._latency_ms) if self._latency_ms else None
            processed, period = self._window_processed, now - self._window_start
            self._window_processed, self._window_start = 0, now
            last_error = self.last_error
        counts = self.counters(dropped)
        new_losses, self._lost_reported = counts['lost_upstream'] - self._lost_reported, counts['lost_upstream']
        values = {'rate_hz': f'{processed / period:.2f}' if period > 0 else '0',
                  'latency_p50_ms': f'{np.percentile(lat, 50):.1f}' if lat is not None else 'n/a',
                  'latency_p95_ms': f'{np.percentile(lat, 95):.1f}' if lat is not None else 'n/a',
                  'frames_processed': counts['processed'], 'frames_dropped': counts['dropped'],
                  'frames_rejected': counts['rejected'], 'processing_errors': counts['errors'],
                  'camera_info_rejected': counts['camera_info_rejected'], 'flow_resets': counts['flow_resets'],
                  'out_of_memory': counts['oom'], 'frames_lost_upstream': counts['lost_upstream'],
                  'odom_rejected': counts['odom_rejected'], 'flow_frames_ego_motion': counts['flow_ego_motion'],
                  'tasks_last_run': ','.join(self.last_tasks), 'last_error': last_error}
        if counts['errors'] or counts['oom']:
            return ERROR, f'processing errors: {last_error}', values
        if counts['rejected'] or counts['camera_info_rejected'] or counts['odom_rejected']:
            return WARN, f'rejected inputs: {last_error}', values
        if new_losses:
            return WARN, (f'{new_losses} input frame(s) lost upstream of the node since the last report '
                          f'(sequence or stamp gaps; large images over best-effort DDS, see docs/NODE.md)'), values
        return OK, 'running', values
