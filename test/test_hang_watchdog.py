"""The suite's hang watchdog (hang_watchdog.py) with the Makefile's xdist and rerun options.

A test blocked in C code where pytest-timeout's signal cannot reach it (a second lock of a plain
pthread mutex: not interruptible by signals) must end its worker with every thread's stack, be
rerun once in a fresh worker and let the run go on; an ordinary failure must not be rerun.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

TEST_DIR = Path(__file__).resolve().parent

STUCK = '''
import ctypes, os

def test_stuck_in_c_once(tmp_path_factory):
    flag = os.path.join(os.environ['HANG_FLAG_DIR'], 'hung')
    if not os.path.exists(flag):
        open(flag, 'w').close()
        libc = ctypes.CDLL(None)
        mutex = ctypes.create_string_buffer(64)
        libc.pthread_mutex_init(mutex, None)
        libc.pthread_mutex_lock(mutex)
        libc.pthread_mutex_lock(mutex)      # deadlock: EINTR does not exist for a mutex

def test_after_the_hang():
    assert True

def test_ordinary_failure():
    assert 1 == 2
'''


def test_a_test_stuck_in_c_is_ended_with_stacks_and_rerun_once_ordinary_failures_are_not(tmp_path):
    (tmp_path / 'test_stuck.py').write_text(textwrap.dedent(STUCK))
    (tmp_path / 'pytest.ini').write_text('[pytest]\ntimeout = 1\n')
    env = dict(os.environ, HANG_FLAG_DIR=str(tmp_path), HYDRANET_TEST_WATCHDOG_GRACE_S='1',
               PYTHONPATH=os.pathsep.join([str(TEST_DIR), os.environ.get('PYTHONPATH', '')]))
    cmd = [sys.executable, '-m', 'pytest', '-p', 'hang_watchdog', '-v', '-n', '1', '--reruns', '1',
           '--only-rerun', '(?!)', '-p', 'no:cacheprovider', str(tmp_path)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out                      # the ordinary failure, and only it
    assert 'Timeout (0:00:02)!' in out, out               # faulthandler's dump: limit 1 s + grace 1 s
    assert 'test_stuck_in_c_once' in out.split('Timeout (0:00:02)!')[1], out   # the stuck frame
    assert 'RERUN test_stuck.py::test_stuck_in_c_once' in out, out
    assert 'PASSED test_stuck.py::test_stuck_in_c_once' in out, out
    assert 'PASSED test_stuck.py::test_after_the_hang' in out, out
    assert 'RERUN test_stuck.py::test_ordinary_failure' not in out, out
    assert '1 failed, 2 passed, 1 rerun' in out, out
