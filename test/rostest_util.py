"""Small helpers for tests that talk real DDS (no mocks of ROS anywhere)."""
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

TEST_DIR = Path(__file__).resolve().parent


def message_class(type_name):
    """'pkg/msg/Type' -> the generated class (imported on use, so ROS-free tests can use this module)."""
    from hydranet_ros.ros.bag_common import message_class as lookup
    return lookup(type_name)


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


def assert_one_line_error(returncode: int, stderr: str, words):
    """A tool refused bad input the way users should see it: non-zero exit, no traceback, one
    line on stderr holding all the words."""
    assert returncode != 0
    assert 'Traceback' not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and all(w in lines[0] for w in words), stderr


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny, valid-looking png whose header claims width x height (a decompression bomb)."""
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)

    def chunk(kind, body):
        return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body))
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b'')
