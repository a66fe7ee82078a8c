"""An executor's spin that survives rclpy's entity-destruction race.

rclpy 9 (Kilted) lists a node's waitables (the event handlers of its publishers and subscriptions)
before it builds the wait set and enters each one only when adding it; a publisher or
subscription destroyed in between, by another thread (a lifecycle transition: deactivate and
cleanup destroy the node's inputs and outputs while the executor waits), makes the wait raise
`InvalidHandle` out of `executor.spin()`. The thread that spins dies and the node stops serving
callbacks (images, lifecycle and parameter services) while the process lives on. Reproduced here
in seconds by creating and destroying publishers and subscriptions while spinning
(test/test_spinning.py). The next wait no longer lists the destroyed entity, so spinning again is
safe: this module does that, and says so once in the log.
"""
from __future__ import annotations

import time

from rclpy.exceptions import InvalidHandle

#: more than this many InvalidHandle errors within one second is not the race: re-raised
MAX_PER_SECOND = 100


def spin(executor, log=None) -> int:
    """executor.spin() until the executor or its context shuts down, resumed after each
    InvalidHandle (see the module docstring); returns how many it resumed after. log: a callable
    taking one line, told the first time."""
    resumed = 0
    recent: list[float] = []
    while True:
        try:
            executor.spin()
            return resumed
        except InvalidHandle as exc:
            now = time.monotonic()
            recent = [t for t in recent if now - t < 1.0] + [now]
            if len(recent) > MAX_PER_SECOND:
                raise
            if resumed == 0 and log is not None:
                log(f'executor: {exc} (a publisher or subscription was destroyed while the executor built its '
                    f'wait; waiting again; said once)')
            resumed += 1
