"""`ros2 run hydranet_ros perception_node --autostart --params-file ...` as a separate process."""
import os
import signal
import subprocess
import time

import yaml
from sensor_msgs.msg import Image

from hydranet_ros.paths import share_dir
from node_harness import rgb_image
from rostest_util import spin_until


def _executable():
    share = share_dir()
    assert share is not None, 'hydranet_ros is not installed (colcon build): install/setup.bash not sourced'
    exe = share.parent.parent / 'lib' / 'hydranet_ros' / 'perception_node'
    assert os.access(exe, os.X_OK), f'{exe} missing: ros2 run would not find it'
    return exe


def _params_file(tmp_path, **overrides):
    params = {'device': 'cpu', 'warmup_iterations': 0, 'always_run': True, **overrides}
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump({'/**/hydranet': {'ros__parameters': params}}))
    return path


def test_autostart_processes_frames_and_stops_cleanly_on_sigint(ros_node, tmp_path, tiny_checkpoint):
    proc = subprocess.Popen([str(_executable()), '--autostart', '--params-file',
                             str(_params_file(tmp_path, model_path=str(tiny_checkpoint)))],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        got = []
        ros_node.create_subscription(Image, '/hydranet/depth', got.append, 10)
        pub = ros_node.create_publisher(Image, '/hydranet/input/image', 10)
        deadline = time.monotonic() + 60
        while not got and time.monotonic() < deadline and proc.poll() is None:
            pub.publish(rgb_image(72, 100, frame_id='from_test'))
            spin_until(ros_node, lambda: bool(got), timeout_s=0.3)
        assert got, 'no depth from the node process'
        assert got[0].header.frame_id == 'from_test' and got[0].encoding == '32FC1'
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert 'configured: model tiny@' in out and 'cleaned up' in out


def test_autostart_with_a_bad_model_exits_non_zero_with_the_reason(tmp_path):
    proc = subprocess.run([str(_executable()), '--autostart', '--params-file',
                           str(_params_file(tmp_path, model_path='/no/such/model.pt'))],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert 'checkpoint not found: /no/such/model.pt' in proc.stdout + proc.stderr


def test_bag_tools_are_installed_where_ros2_run_finds_them():
    lib = _executable().parent
    for tool in ('record', 'play', 'make-bag', 'evaluate'):
        exe = lib / tool
        assert os.access(exe, os.X_OK), f'{exe} missing'
        out = subprocess.run([str(exe), '--help'], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and 'usage:' in out.stdout, out.stderr
