"""ros2 launch hydranet_ros perception.launch.py [namespace:=hydranet] [params_file:=...]
   [image:=/camera/image_raw] [camera_info:=/camera/camera_info] [use_sim_time:=false]
   [autostart:=true] [log_level:=info] [record:=false]

Starts the hydranet lifecycle node and, with autostart, drives it through configure and
activate from outside (the node never activates itself). record:=true also records the
node's outputs (with the camera image and any /ground_truth/* topics) to an MCAP bag with
`ros2 bag record`; `ros2 run hydranet_ros evaluate hydranet_outputs` scores it.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, ExecuteProcess, RegisterEventHandler
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

OUTPUTS = ['segmentation', 'segmentation/label_info', 'depth', 'flow', 'detections',
           'detections/label_info', 'depth/camera_info', 'stats']


def generate_launch_description():
    share = get_package_share_directory('hydranet_ros')
    namespace = LaunchConfiguration('namespace')
    autostart = LaunchConfiguration('autostart')

    args = [
        DeclareLaunchArgument('namespace', default_value='hydranet', description='node namespace'),
        DeclareLaunchArgument('params_file', default_value=os.path.join(share, 'config', 'perception.yaml'),
                              description='ROS 2 parameters file for the node'),
        DeclareLaunchArgument('image', default_value='image', description='input image topic (remap)'),
        DeclareLaunchArgument('camera_info', default_value='camera_info', description='input camera_info topic (remap)'),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='use /clock (bag replay)'),
        DeclareLaunchArgument('autostart', default_value='true', description='configure and activate at start'),
        DeclareLaunchArgument('log_level', default_value='info', description='node log level'),
        DeclareLaunchArgument('record', default_value='false', description='record outputs to MCAP'),
    ]

    node = LifecycleNode(
        package='hydranet_ros', executable='perception_node', name='hydranet', namespace=namespace,
        output='screen',
        parameters=[LaunchConfiguration('params_file'), {'use_sim_time': LaunchConfiguration('use_sim_time')}],
        remappings=[('image', LaunchConfiguration('image')),
                    ('image/compressed', [LaunchConfiguration('image'), '/compressed']),
                    ('camera_info', LaunchConfiguration('camera_info'))],
        arguments=['--ros-args', '--log-level', LaunchConfiguration('log_level')],
    )

    configure = EmitEvent(
        event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=Transition.TRANSITION_CONFIGURE),
        condition=IfCondition(autostart))
    activate_when_configured = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=node, start_state='configuring', goal_state='inactive',
            entities=[EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                                  transition_id=Transition.TRANSITION_ACTIVATE))]),
        condition=IfCondition(autostart))

    # The node's outputs, plus the camera and any ground truth being played (make-bag's
    # /ground_truth/* topics), so `ros2 run hydranet_ros evaluate hydranet_outputs` can score them.
    # The input image as the recorder (in the root namespace) must name it: a relative remap
    # target resolves inside the node's namespace.
    image = LaunchConfiguration('image')
    image_topic = PythonExpression(["'", image, "' if '", image, "'.startswith('/') else '/",
                                    namespace, "/", image, "'"])
    record = ExecuteProcess(
        cmd=['ros2', 'bag', 'record', '--storage', 'mcap', '--output',
             PathJoinSubstitution(['hydranet_outputs']),
             *[['/', namespace, '/', topic] for topic in OUTPUTS],
             image_topic, '--regex', '^/ground_truth/'],
        output='screen', condition=IfCondition(LaunchConfiguration('record')))

    return LaunchDescription([*args, node, activate_when_configured, configure, record])
