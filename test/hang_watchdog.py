"""Hang watchdog for the test suite (a pytest plugin; test/conftest.py registers its hooks).

pytest-timeout fails a test that runs past its limit by raising in the main thread from a signal
handler. A main thread blocked inside the middleware's C code (a lock in DDS participant set-up or
teardown: one CI run hung that way for the whole 90 minutes) never returns to Python, so that
handler never runs. faulthandler's watchdog is a C thread: WATCHDOG_GRACE_S after the test's
pytest-timeout limit it prints every thread's stack to the real stderr and ends the process.

Under `make test` (pytest-xdist with one worker, pytest-rerunfailures) the controller then reports
the test as crashed and reruns it once in a fresh worker, and the suite goes on; ordinary failures
are never rerun (see the Makefile). Without xdist the run ends at that test, with the stacks.
"""
import faulthandler
import os
import sys

import pytest

#: Seconds past a test's pytest-timeout limit after which the process is ended.
WATCHDOG_GRACE_S = float(os.environ.get('HYDRANET_TEST_WATCHDOG_GRACE_S', '60'))
_stderr_fd = None


def pytest_configure(config):
    """Keep a copy of the real stderr (output capture is off while plugins configure)."""
    global _stderr_fd
    _stderr_fd = os.dup(sys.stderr.fileno())


def timeout_s(item) -> float:
    """The test's pytest-timeout limit: its `timeout` marker, else the ini value (0: none)."""
    marker = item.get_closest_marker('timeout')
    if marker is not None and marker.args:
        return float(marker.args[0])
    return float(item.config.getini('timeout') or 0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Arm the watchdog over the test's set-up, call and teardown (module fixtures' teardown too)."""
    limit = timeout_s(item)
    armed = limit > 0 and _stderr_fd is not None
    if armed:
        faulthandler.dump_traceback_later(limit + WATCHDOG_GRACE_S, exit=True, file=_stderr_fd)
    try:
        yield
    finally:
        if armed:
            faulthandler.cancel_dump_traceback_later()
