"""`ros2 run hydranet_ros perception_node --autostart --params-file ...` as a separate process."""
import os
import signal
import subprocess
import time

import pytest
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
    for line in ('deactivated: inputs unsubscribed', 'shut down from unconfigured'):   # one line each
        assert out.count(line) == 1, out


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


# --- the command line as `ros2 launch` writes it --------------------------------------------------
def _yaml(path, params, key='/**/hydranet'):
    path.write_text(yaml.safe_dump({key: {'ros__parameters': params}}))
    return path


def _launch_argv(user_file, sim_time_file, namespace='/hydranet'):
    """The exact shape launch_ros gives a LifecycleNode's executable."""
    return ['--ros-args', '-r', '__node:=hydranet', '-r', f'__ns:={namespace}',
            '--params-file', str(user_file), '--params-file', str(sim_time_file),
            '-r', 'input/image:=/cam/image_raw', '-r', 'input/image/compressed:=/cam/image_raw/compressed',
            '-r', 'input/camera_info:=/cam/camera_info', '--log-level', 'info']


def _node_from_args(rcl_args):
    import rclpy
    from hydranet_ros.ros.perception_node import PerceptionNode
    context = rclpy.Context()
    rclpy.init(args=rcl_args, context=context)
    return context, PerceptionNode(context=context)


def test_ros_arguments_reach_rcl_untouched_and_every_params_file_applies(tmp_path):
    import rclpy
    from hydranet_ros.ros.perception_main import parse_args
    user = _yaml(tmp_path / 'user.yaml', {'detection': {'score_threshold': 0.55}, 'device': 'cpu'})
    sim = _yaml(tmp_path / 'sim.yaml', {'use_sim_time': True}, key='/**')
    own, rcl_args = parse_args(_launch_argv(user, sim))
    assert not own.autostart and own.params_file == []
    context, node = _node_from_args(rcl_args)
    try:
        assert node.get_fully_qualified_name() == '/hydranet/hydranet'
        assert node.get_parameter('detection.score_threshold').value == 0.55     # the user's file
        assert node.get_parameter('device').value == 'cpu'
        assert node.get_parameter('use_sim_time').value is True                  # the second file
        assert node.resolve_topic_name('input/image') == '/cam/image_raw'
        assert node.resolve_topic_name('input/camera_info') == '/cam/camera_info'
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_own_params_files_merge_like_rcl_later_keys_win(tmp_path):
    import rclpy
    from hydranet_ros.ros.perception_main import parse_args
    first = _yaml(tmp_path / 'a.yaml', {'detection': {'score_threshold': 0.4, 'max_detections': 7}})
    second = _yaml(tmp_path / 'b.yaml', {'detection': {'score_threshold': 0.6}})
    third = _yaml(tmp_path / 'c.yaml', {'qos_depth': 9})
    own, rcl_args = parse_args(['--autostart', '--params-file', str(first), '--params-file', str(second),
                                '--ros-args', '--params-file', str(third)])
    assert own.autostart and own.params_file == [str(first), str(second)]
    context, node = _node_from_args(rcl_args)
    try:
        assert node.get_parameter('detection.score_threshold').value == 0.6   # later file wins
        assert node.get_parameter('detection.max_detections').value == 7      # merged key by key
        assert node.get_parameter('qos_depth').value == 9                      # --ros-args file too
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


@pytest.mark.parametrize('argv,words', [
    (['--params-file', '/no/such.yaml'], '--params-file /no/such.yaml: no such file'),
    (['--ros-args', '--params-file', '/no/such.yaml'], 'invalid ROS arguments'),
    (['--frobnicate'], 'unrecognized arguments: --frobnicate'),
])
def test_bad_command_lines_fail_in_one_line(argv, words):
    proc = subprocess.run([str(_executable()), *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert words in proc.stderr and 'Traceback' not in proc.stderr, proc.stderr


def test_launch_style_command_line_applies_the_users_params_file_in_the_process(ros_node, tmp_path, tiny_checkpoint):
    """Regression: the entry point took --params-file for itself, so with launch's two files only
    the last (use_sim_time) applied and the user's file was dropped."""
    from rcl_interfaces.srv import GetParameters
    user = _yaml(tmp_path / 'user.yaml', {'model_path': str(tiny_checkpoint), 'device': 'cpu', 'warmup_iterations': 0,
                                          'always_run': True, 'detection': {'score_threshold': 0.55}})
    sim = _yaml(tmp_path / 'sim.yaml', {'use_sim_time': False}, key='/**')
    proc = subprocess.Popen([str(_executable()), '--autostart', *_launch_argv(user, sim, '/launchstyle')],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = ros_node.create_client(GetParameters, '/launchstyle/hydranet/get_parameters')
        assert client.wait_for_service(timeout_sec=30)
        future = client.call_async(GetParameters.Request(names=['detection.score_threshold', 'model_path']))
        assert spin_until(ros_node, future.done, timeout_s=10)
        values = future.result().values
        assert values[0].double_value == 0.55 and values[1].string_value == str(tiny_checkpoint)
        got = []
        ros_node.create_subscription(Image, '/launchstyle/depth', got.append, 10)
        pub = ros_node.create_publisher(Image, '/cam/image_raw', 10)     # the remapped input
        deadline = time.monotonic() + 60
        while not got and time.monotonic() < deadline and proc.poll() is None:
            pub.publish(rgb_image(72, 100))
            spin_until(ros_node, lambda: bool(got), timeout_s=0.3)
        assert got, 'no depth for frames on the remapped input'
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out


def test_a_second_node_of_the_same_name_says_so_in_one_line(tmp_path, tiny_checkpoint):
    params = _params_file(tmp_path, model_path=str(tiny_checkpoint))
    argv = [str(_executable()), '--params-file', str(params), '--namespace', 'clash']
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(2.0)
        second = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(6.0)
        second.send_signal(signal.SIGINT)
        out, _ = second.communicate(timeout=30)
    finally:
        first.send_signal(signal.SIGINT)
        first_out, _ = first.communicate(timeout=30)
    clash = [line for line in out.splitlines() if 'another node named /clash/hydranet is on the graph' in line]
    assert len(clash) == 1, out
    assert first.returncode == 0 and second.returncode == 0, first_out + out


def test_ctrl_c_under_launch_twice_in_a_row_still_exits_cleanly(ros_node, tmp_path, tiny_checkpoint):
    """Under `ros2 launch`, Ctrl-C reaches the node from the terminal and again from launch; the
    second SIGINT came while the process was exiting and killed it (launch: exit code -2)."""
    from lifecycle_msgs.srv import GetState
    proc = subprocess.Popen([str(_executable()), '--autostart', '--namespace', 'sigtwice', '--params-file',
                             str(_params_file(tmp_path, model_path=str(tiny_checkpoint)))],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = ros_node.create_client(GetState, '/sigtwice/hydranet/get_state')
        assert client.wait_for_service(timeout_sec=30)
    finally:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert 'shut down from unconfigured' in out
