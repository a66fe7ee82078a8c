"""Latest-frame slots: callbacks drop frames in, the worker takes the newest of each camera.

A frame that is replaced before the worker takes it is dropped and counted; callbacks never
wait on inference.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class PendingFrame:
    """A received message waiting for the worker, with its camera and arrival time."""
    camera: str
    message: object
    received: float   # time.monotonic() at receipt


class LatestFrames:
    """The newest frame per camera for the worker; a frame replaced before it was taken is counted as dropped."""
    def __init__(self):
        self._cond = threading.Condition()
        self._pending: dict[str, PendingFrame] = {}
        self._closed = False
        self.dropped = 0
        self.received = 0

    def put(self, camera: str, message) -> None:
        with self._cond:
            if camera in self._pending:
                self.dropped += 1
            self._pending[camera] = PendingFrame(camera, message, time.monotonic())
            self.received += 1
            self._cond.notify()

    def take(self, timeout: float | None = None) -> list[PendingFrame]:
        """Newest pending frame of every camera (possibly none after timeout or close)."""
        with self._cond:
            if not self._pending and not self._closed:
                self._cond.wait(timeout)
            frames = list(self._pending.values())
            self._pending.clear()
            return frames

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


def run_worker(frames: LatestFrames, max_rate_hz, process, on_error) -> None:
    """The worker loop: take the newest frames of each camera and process them until frames is
    closed, at most max_rate_hz() batches a second (0: as fast as they come). An exception from
    process goes to on_error(exc) and the loop goes on: one bad frame never stops the worker."""
    next_time = 0.0
    while not frames.closed:
        rate = max_rate_hz()
        if rate > 0:
            wait = next_time - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, 0.1))
                continue
        batch = frames.take(timeout=0.1)
        if not batch or frames.closed:
            continue
        if rate > 0:
            next_time = time.monotonic() + 1.0 / rate
        try:
            process(batch)
        except Exception as exc:  # never let one frame kill the worker
            on_error(exc)
