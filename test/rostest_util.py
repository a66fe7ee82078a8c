"""Small helpers for tests that talk real DDS (no mocks of ROS anywhere)."""
import subprocess
import sys
import time
from pathlib import Path

from hydranet_ros.ros.bag_common import message_class  # noqa: F401  ('pkg/msg/Type' -> class, for tests)

TEST_DIR = Path(__file__).resolve().parent


def spin_until(node, predicate, timeout_s, step_s=0.05):
    """Spin the node's executor until predicate() is true; return whether it became true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        node.executor_for_test.spin_once(timeout_sec=step_s)
    return predicate()


def start_python(script, *args):
    """Start a helper script from test/ in a new Python process of the same environment."""
    return subprocess.Popen(
        [sys.executable, str(TEST_DIR / script), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_process(proc, timeout_s=5.0):
    """Stop a helper process (SIGINT first, as ros2 launch would) and return its output."""
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stdout.read() if proc.stdout else ''
