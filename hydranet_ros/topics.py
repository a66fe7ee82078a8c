"""The node's topic names as one table: the node, the launch file, replay, evaluate, the demo
and the docs test all read it.

Names are relative to the node's namespace (and, with several cameras, to each camera's
sub-namespace). The inputs live in their own `input/` namespace so that the dense outputs
pair with their camera_info the image_transport way: a consumer of `/hydranet/depth` looks
for `/hydranet/camera_info`, which the node publishes with the intrinsics of its outputs.
ROS-free: plain strings.
"""
from __future__ import annotations

#: Default node namespace (the launch file's and the entry point's default).
NODE_NAMESPACE = 'hydranet'

# --- inputs -------------------------------------------------------------------------------------
INPUT_IMAGE = 'input/image'
INPUT_COMPRESSED = 'input/image/compressed'
INPUT_CAMERA_INFO = 'input/camera_info'
#: the robot's odometry (optional; one for all cameras, under the node namespace): the camera's
#: motion for `flow.mode: ego_motion` and the velocities over the ground of detections_3d/motion
INPUT_ODOM = 'input/odom'

# --- outputs --------------------------------------------------------------------------------
#: One output per task, keyed by the canonical task key.
TASK_TOPICS = {'segmentation': 'segmentation', 'depth': 'depth', 'flow': 'flow', 'detection': 'detections'}
#: Extra outputs' topics (hydranet_ros.EXTRA_OUTPUTS), published when the model has the head: the
#: depth error's Laplace scale, with the depth image's header and size (its camera_info is
#: `camera_info`, the depth image's), and the mono16 instance ids aligned with `segmentation`.
EXTRA_TOPICS = {'depth_uncertainty': 'depth/uncertainty', 'instances': 'instances'}
#: Colour images for people, per task (published with `debug_images`).
DEBUG_TOPICS = {task: f'debug/{name}' for task, name in TASK_TOPICS.items()}
#: Intrinsics of the dense outputs (segmentation, depth, flow all share one size): the sibling
#: camera_info of `segmentation` and `depth` in image_transport's sense.
CAMERA_INFO = 'camera_info'
LABEL_INFO = {'segmentation': 'segmentation/label_info', 'detection': 'detections/label_info'}
STATS = 'stats'
DIAGNOSTICS = '/diagnostics'

#: Outputs derived from the heads' outputs, each computed only while it has subscribers, with
#: the heads it needs: the semantic point cloud, 3D detections and their RViz markers, and
#: compressed copies of the dense outputs for links with little bandwidth.
POINTS = 'points'
DETECTIONS_3D = 'detections_3d'
MARKERS_3D = 'detections_3d/markers'
#: each tracked 3D detection's velocity relative to the camera and time to contact (by track id)
MOTION = 'detections_3d/motion'
#: for a planner (nav2's obstacle and voxel layers): blocking pixels as a marking source, ground
#: pixels as a clearing source, and a free-space grid on the ground plane
POINTS_OBSTACLES = 'points/obstacles'
POINTS_GROUND = 'points/ground'
FREE_SPACE = 'free_space'
SEGMENTATION_COMPRESSED = 'segmentation/compressed'
DEPTH_COMPRESSED = 'depth/compressedDepth'
DERIVED_NEEDS = {
    POINTS: ('segmentation', 'depth'),
    POINTS_OBSTACLES: ('segmentation', 'depth'),
    POINTS_GROUND: ('segmentation', 'depth'),
    FREE_SPACE: ('segmentation', 'depth'),
    DETECTIONS_3D: ('segmentation', 'depth', 'detection'),
    MARKERS_3D: ('segmentation', 'depth', 'detection'),
    MOTION: ('segmentation', 'depth', 'detection'),
    SEGMENTATION_COMPRESSED: ('segmentation',),
    DEPTH_COMPRESSED: ('depth',),
}

#: What `record:=true` and the replay keep of the node's outputs (debug images and the
#: compressed copies excluded).
RECORDED_OUTPUTS = (*TASK_TOPICS.values(), *EXTRA_TOPICS.values(), CAMERA_INFO, *LABEL_INFO.values(), STATS,
                    POINTS, POINTS_OBSTACLES, POINTS_GROUND, FREE_SPACE, DETECTIONS_3D, MARKERS_3D, MOTION)


def topic(camera: str, name: str) -> str:
    """A name under a camera's sub-namespace ('' = the node namespace itself)."""
    return f'{camera}/{name}' if camera else name


def input_image_topic(camera: str, transport: str) -> str:
    """A camera's input image topic for the `input_transport` parameter (raw or compressed)."""
    return topic(camera, INPUT_COMPRESSED if transport == 'compressed' else INPUT_IMAGE)


def sibling_camera_info(image_topic: str) -> str:
    """The camera_info topic image_transport pairs with an image topic: `camera_info` in the
    image topic's namespace (`/a/b/depth` -> `/a/b/camera_info`, `depth` -> `camera_info`)."""
    head, _, _ = image_topic.rpartition('/')
    return f'{head}/camera_info' if head or image_topic.startswith('/') else 'camera_info'


def absolute(namespace: str, name: str) -> str:
    """`name` resolved in `namespace` the way rcl does for a relative name: valid whether the
    namespace is given with or without a leading slash, or empty; absolute names stay."""
    if name.startswith('/'):
        return name
    ns = '/'.join(part for part in namespace.split('/') if part)
    return f'/{ns}/{name}' if ns else f'/{name}'
