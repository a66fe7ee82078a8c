"""ros2 launch hydranet_ros perception.launch.py [namespace:=hydranet] [params_file:=...]
   [image:=/camera/image_raw] [camera_info:=...] [odom:=/odom] [use_sim_time:=false]
   [autostart:=true] [log_level:=info] [record:=false]

Starts the hydranet lifecycle node and, with autostart, drives it through configure and
activate from outside (the node never activates itself). `image` and `camera_info` remap the
node's inputs (`input/image`, `input/camera_info`); `camera_info` defaults to the image
topic's sibling, the way image_transport pairs them (`/camera/image_raw` ->
`/camera/camera_info`). `odom` remaps the optional odometry input (`input/odom`). record:=true
also records the node's outputs (with the input camera, odometry and any /ground_truth/* topics)
to an MCAP bag with `ros2 bag record`; `ros2 run hydranet_ros evaluate <bag>` scores it. Unless
Fast DDS is configured by the user, every process started here loads the package's transport
profile (config/fastdds.xml; set HYDRANET_DDS_PROFILE=0 to keep the middleware's defaults).
"""
import os
import shutil
import time

from ament_index_python.packages import PackageNotFoundError, get_package_prefix, get_package_share_directory
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, ExecuteProcess, LogInfo, OpaqueFunction,
                            RegisterEventHandler, SetEnvironmentVariable)
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from hydranet_ros import topics
from hydranet_ros.ros import transport
from hydranet_ros.ros.parameters import NODE_NAME

_TRUE = ('true', '1', 'yes', 'on')


def _installed(package):
    try:
        get_package_prefix(package)
        return True
    except PackageNotFoundError:
        return False


def _record(namespace, image, camera_info, odom):
    """`ros2 bag record` of the outputs, or a clear line saying why there is none."""
    missing = [what for what, ok in (('the ros2 command', shutil.which('ros2') is not None),
                                     ('ros2bag', _installed('ros2bag')),
                                     ('rosbag2_storage_mcap', _installed('rosbag2_storage_mcap'))) if not ok]
    if missing:
        return [LogInfo(msg=f'record:=true ignored: {", ".join(missing)} not installed (install '
                            f'ros-$ROS_DISTRO-rosbag2 and ros-$ROS_DISTRO-rosbag2-storage-mcap); '
                            f'the node runs without recording')]
    output = 'hydranet_outputs'
    if os.path.exists(output):   # ros2 bag record refuses an existing folder
        output = time.strftime('hydranet_outputs_%Y%m%d_%H%M%S')
    recorded = [topics.absolute(namespace, name) for name in topics.RECORDED_OUTPUTS]
    # The inputs as the recorder (in the root namespace) must name them: a relative remap
    # target resolves inside the node's namespace.
    recorded += [topics.absolute(namespace, name) for name in (image, camera_info, odom)]
    return [LogInfo(msg=f'recording the outputs to {os.path.abspath(output)}'),
            ExecuteProcess(cmd=['ros2', 'bag', 'record', '--storage', 'mcap', '--output', output,
                                '--topics', *recorded, '--regex', '^/ground_truth/'], output='screen')]


def node_logger(namespace: str) -> str:
    """The node's logger name: its namespace and name joined by dots (/hydranet -> hydranet.hydranet)."""
    parts = [p for p in namespace.strip('/').split('/') if p]
    return '.'.join([*parts, NODE_NAME])


def _setup(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    namespace, image = arg('namespace'), arg('image')
    camera_info = arg('camera_info') or topics.sibling_camera_info(image)
    params_file = arg('params_file')
    if params_file and not os.path.isfile(params_file):
        # launch_ros would only warn and start the node on its defaults: not what was asked for
        raise RuntimeError(f'params_file:={params_file}: no such file')
    actions = []
    profile, why = transport.profile_decision()
    if profile is not None:
        actions.append(SetEnvironmentVariable(transport.PROFILE_VARIABLE, str(profile)))
    actions.append(LogInfo(msg=f'DDS transport profile: {profile}' if profile else
                           f'DDS transport profile not loaded ({why})'))
    node = LifecycleNode(
        package='hydranet_ros', executable='perception_node', name=NODE_NAME, namespace=namespace,
        output='screen',
        parameters=[*([params_file] if params_file else []), {'use_sim_time': arg('use_sim_time').lower() in _TRUE}],
        remappings=[(topics.INPUT_IMAGE, image), (topics.INPUT_COMPRESSED, f'{image}/compressed'),
                    (topics.INPUT_CAMERA_INFO, camera_info), (topics.INPUT_ODOM, arg('odom'))],
        # the node's own logger only: a global level of debug floods the screen with rcl's wait-set lines
        ros_arguments=['--log-level', f'{node_logger(namespace)}:={arg("log_level")}'],
    )
    actions.append(node)
    if arg('autostart').lower() in _TRUE:
        actions.append(RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=node, start_state='configuring', goal_state='inactive',
            entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                  transition_id=Transition.TRANSITION_ACTIVATE))])))
        actions.append(EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                   transition_id=Transition.TRANSITION_CONFIGURE)))
    if arg('record').lower() in _TRUE:
        actions += _record(namespace, image, camera_info, arg('odom'))
    return actions


def generate_launch_description():
    share = get_package_share_directory('hydranet_ros')
    return LaunchDescription([
        DeclareLaunchArgument('namespace', default_value=topics.NODE_NAMESPACE, description='node namespace'),
        DeclareLaunchArgument('params_file', default_value=os.path.join(share, 'config', 'perception.yaml'),
                              description='ROS 2 parameters file for the node'),
        DeclareLaunchArgument('image', default_value=topics.INPUT_IMAGE,
                              description='input image topic (remap; also the base of image/compressed)'),
        DeclareLaunchArgument('camera_info', default_value='',
                              description="input camera_info topic (remap); empty: the image topic's sibling"),
        DeclareLaunchArgument('odom', default_value=topics.INPUT_ODOM,
                              description='input odometry topic (remap; optional: ego-motion flow, '
                                          'velocities over the ground)'),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='use /clock (bag replay)'),
        DeclareLaunchArgument('autostart', default_value='true', description='configure and activate at start'),
        DeclareLaunchArgument('log_level', default_value='info', description='node log level'),
        DeclareLaunchArgument('record', default_value='false', description='record outputs to MCAP'),
        OpaqueFunction(function=_setup),
    ])
