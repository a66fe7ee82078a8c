"""launch/perception.launch.py, tested with launch_pytest where it is installed.

launch, launch_ros and launch_pytest are not available on machines without a ROS install
(they have no PyPI wheels), so the launch tests are skipped there; the file is still checked to
be valid Python that declares the documented arguments. Where they exist (every ROS install),
the tests start the real launch file with a user parameters file, a remapped camera and odometry,
and check the node comes up active, with the user's values, turns frames into depth and listens
to the odometry where it was remapped.
"""
import os
import time
from pathlib import Path

import pytest
import yaml

LAUNCH_FILE = Path(__file__).resolve().parent.parent / 'launch' / 'perception.launch.py'
NAMESPACE = '/launch_test'
CAMERA = '/launch_test_camera/image_raw'
ODOM = '/launch_test_robot/odom'


launch_pytest = pytest.importorskip('launch_pytest', reason='launch_pytest is not installed (no ROS install here)')

import launch  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402


@pytest.fixture(scope='module')
def user_params(tmp_path_factory):
    """A user's parameters file: a non-default score threshold proves it reached the node."""
    path = tmp_path_factory.mktemp('launch') / 'my.yaml'
    path.write_text(yaml.safe_dump({'/**/hydranet': {'ros__parameters': {
        'device': 'cpu', 'always_run': True, 'detection': {'score_threshold': 0.55}}}}))
    return path


@launch_pytest.fixture(scope='module')
def launch_description(user_params):
    return launch.LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(str(LAUNCH_FILE)), launch_arguments={
            'autostart': 'true', 'namespace': NAMESPACE, 'params_file': str(user_params),
            'image': CAMERA, 'odom': ODOM}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.fixture(scope='module')
def probe():
    """A node of its own context, spun by its own executor (probe.executor_for_test)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('launch_test_probe', context=context)
    node.executor_for_test = SingleThreadedExecutor(context=context)
    node.executor_for_test.add_node(node)
    yield node
    node.executor_for_test.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)


def _call(node, client, request, timeout=10.0):
    future = client.call_async(request)
    node.executor_for_test.spin_until_future_complete(future, timeout_sec=timeout)
    return future.result()


@pytest.mark.launch(fixture=launch_description)
def test_node_reaches_active_with_the_users_parameters_file(probe):
    from lifecycle_msgs.srv import GetState
    from rcl_interfaces.srv import GetParameters
    client = probe.create_client(GetState, f'{NAMESPACE}/hydranet/get_state')
    assert client.wait_for_service(timeout_sec=60)
    state = None
    for _ in range(60):
        state = _call(probe, client, GetState.Request())
        if state and state.current_state.label == 'active':
            break
        time.sleep(0.5)
    assert state.current_state.label == 'active'
    params = probe.create_client(GetParameters, f'{NAMESPACE}/hydranet/get_parameters')
    assert params.wait_for_service(timeout_sec=10)
    values = _call(probe, params, GetParameters.Request(names=['detection.score_threshold', 'device'])).values
    assert values[0].double_value == 0.55 and values[1].string_value == 'cpu'


@pytest.mark.launch(fixture=launch_description)
def test_frames_on_the_remapped_camera_give_depth_with_its_camera_info(probe):
    import numpy as np
    from sensor_msgs.msg import CameraInfo, Image
    depth, info = [], []
    probe.create_subscription(Image, f'{NAMESPACE}/depth', depth.append, 10)
    probe.create_subscription(CameraInfo, f'{NAMESPACE}/camera_info', info.append, 10)
    image_pub = probe.create_publisher(Image, CAMERA, 10)
    info_pub = probe.create_publisher(CameraInfo, os.path.dirname(CAMERA) + '/camera_info', 10)
    frame = Image(height=96, width=160, encoding='rgb8', step=480,
                  data=np.random.default_rng(0).integers(0, 256, 96 * 480, dtype=np.uint8).tobytes())
    frame.header.frame_id = 'launch_test_optical'
    camera = CameraInfo(width=160, height=96, k=[100.0, 0, 80, 0, 100, 48, 0, 0, 1])
    deadline = time.monotonic() + 60
    while not (depth and info) and time.monotonic() < deadline:
        info_pub.publish(camera)
        image_pub.publish(frame)
        probe.executor_for_test.spin_once(timeout_sec=0.3)
    assert depth and depth[0].encoding == '32FC1' and depth[0].header.frame_id == 'launch_test_optical'
    assert info and (info[0].width, info[0].height) == (depth[0].width, depth[0].height)


@pytest.mark.launch(fixture=launch_description)
def test_the_node_listens_to_the_remapped_odometry(probe):
    deadline, nodes = time.monotonic() + 30, []
    while time.monotonic() < deadline and 'hydranet' not in nodes:
        nodes = [i.node_name for i in probe.get_subscriptions_info_by_topic(ODOM)]
        time.sleep(0.2)
    assert 'hydranet' in nodes, f'subscribers of {ODOM}: {nodes}'
