"""The node's output publishers (one set per camera, lifecycle publishers) and the task outputs,
label infos and diagnostics they carry; messages are built in hydranet_ros.ros.messages."""
from __future__ import annotations

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from vision_msgs.msg import Detection2DArray, Detection3DArray, LabelInfo
from visualization_msgs.msg import MarkerArray

from hydranet_ros import EXTRA_OUTPUTS, TASKS, topics
from hydranet_ros.msg import InferenceStats, ObjectMotionArray, OpticalFlow
from hydranet_ros.ros import messages
from hydranet_ros.ros.debug_images import DebugImages
from hydranet_ros.ros.derived_outputs import DerivedOutputs
from hydranet_ros.ros.input_subscriptions import RELIABILITY
from hydranet_ros.spatial.tracking import track_instance_ids

#: message type of every per-camera output topic but the latched label infos
OUTPUT_TYPES = {topics.TASK_TOPICS['segmentation']: Image, topics.TASK_TOPICS['depth']: Image,
                topics.TASK_TOPICS['flow']: OpticalFlow, topics.TASK_TOPICS['detection']: Detection2DArray,
                **{name: Image for name in topics.EXTRA_TOPICS.values()},
                topics.CAMERA_INFO: CameraInfo, topics.STATS: InferenceStats,
                topics.POINTS: PointCloud2, topics.POINTS_OBSTACLES: PointCloud2, topics.POINTS_GROUND: PointCloud2,
                topics.FREE_SPACE: OccupancyGrid, topics.DETECTIONS_3D: Detection3DArray,
                topics.MARKERS_3D: MarkerArray,
                topics.MOTION: ObjectMotionArray,
                topics.SEGMENTATION_COMPRESSED: CompressedImage, topics.DEPTH_COMPRESSED: CompressedImage,
                **{name: Image for name in topics.DEBUG_TOPICS.values()}}


class OutputPublishers:
    """pubs[(camera, topic name)] for every output, and /diagnostics."""

    def __init__(self, node, cameras, params):
        self._node, self._cameras = node, list(cameras)
        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=params.qos_depth,
                             reliability=RELIABILITY[params.output_reliability])
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pubs = {}
        for cam in self._cameras:
            for name, msg_type in OUTPUT_TYPES.items():
                self.pubs[(cam, name)] = node.create_lifecycle_publisher(msg_type, topics.topic(cam, name), out_qos)
            for name in topics.LABEL_INFO.values():
                self.pubs[(cam, name)] = node.create_lifecycle_publisher(LabelInfo, topics.topic(cam, name), latched)
        self.diagnostics = node.create_lifecycle_publisher(DiagnosticArray, topics.DIAGNOSTICS, out_qos)

    def debug_and_derived(self, segmentation_classes, detection_names):
        """(DebugImages, DerivedOutputs) over these publishers, for a model of these classes."""
        debug = DebugImages({(cam, task): self.pubs[(cam, name)] for cam in self._cameras
                             for task, name in topics.DEBUG_TOPICS.items()}, [c['color'] for c in segmentation_classes])
        colours = {c['name']: c['color'] for c in segmentation_classes}
        derived = DerivedOutputs(self.pubs, self._cameras, [c['name'] for c in segmentation_classes], detection_names,
                                 [colours.get(n, (255, 64, 0)) for n in detection_names])
        return debug, derived

    def needed_tasks(self, params, extra_outputs=(), ego_motion: bool = False) -> tuple:
        """The enabled tasks whose outputs (task topic, debug image, derived outputs, the flow that
        tracking needs) have a subscriber now; all enabled tasks with always_run. extra_outputs: the
        model's extra heads (EXTRA_OUTPUTS), each run when its task is enabled and its topic or a
        point cloud (which then carries it) has a subscriber. ego_motion: the flow is made from depth
        and segmentation too (flow.mode ego_motion with odometry), so they run with it."""
        tasks = []
        for task in TASKS:
            if not params.enabled(task):
                continue
            if params.always_run:
                tasks.append(task)
                continue
            outputs = [topics.TASK_TOPICS[task], *((topics.DEBUG_TOPICS[task],) if params.debug_images else ())]
            outputs += [name for name, needs in topics.DERIVED_NEEDS.items() if task in needs]
            tracked = [topics.EXTRA_TOPICS['instances']] if params.tracking_mode != 'off' else []   # ids: tracks'
            if task == 'detection':
                outputs += tracked
            if task == 'flow' and params.tracking_mode == 'flow' and params.enabled('detection'):
                outputs += [topics.TASK_TOPICS['detection'], topics.DETECTIONS_3D, topics.MARKERS_3D, topics.MOTION,
                            *tracked]
            if self._subscribed(outputs):
                tasks.append(task)
        if ego_motion and 'flow' in tasks:
            tasks += [t for t in ('segmentation', 'depth') if params.enabled(t) and t not in tasks]
            tasks = [t for t in TASKS if t in tasks]
        for extra in extra_outputs:
            # the clouds carry the depth's uncertainty (their sigma field), `points` the instance ids on request
            clouds = [n for n in topics.DERIVED_NEEDS if n.startswith('points')] if extra == 'depth_uncertainty' else []
            if extra == 'instances' and params.points_instances:
                clouds = [topics.POINTS]
            if params.enabled(EXTRA_OUTPUTS[extra]) and (
                    params.always_run or self._subscribed([topics.EXTRA_TOPICS[extra], *clouds])):
                tasks.append(extra)
        return tuple(tasks)

    def _subscribed(self, names) -> bool:
        return any(self.pubs[(cam, name)].get_subscription_count() > 0 for cam in self._cameras for name in names)

    def task_outputs(self, cam, header, result, params, ids=None):
        """The task outputs present in result; returns the detections published (class filter
        applied) and their track ids, or None for either. ids: track ids of result.detections,
        published as Detection2D.id. result.instances becomes the published ids (the track ids of the
        detections they match), so the point cloud carries the same."""
        def out(task):
            return self.pubs[(cam, topics.TASK_TOPICS[task])]
        if result.segmentation is not None:
            out('segmentation').publish(messages.segmentation_image(header, result.segmentation))
        if result.depth is not None:
            out('depth').publish(messages.depth_image(header, result.depth, params.depth_min_m, params.depth_max_m))
        if result.depth_uncertainty is not None:
            self.pubs[(cam, topics.EXTRA_TOPICS['depth_uncertainty'])].publish(
                messages.depth_uncertainty_image(header, result.depth_uncertainty))
        if result.flow is not None:
            out('flow').publish(messages.optical_flow(header, result.flow_previous_stamp_ns, result.flow,
                                                      result.image_size))
        detections = None
        if result.detections is not None:
            wanted = set(params.detection_classes)
            keep = [i for i, d in enumerate(result.detections) if not wanted or d.class_name in wanted]
            detections = [result.detections[i] for i in keep]
            ids = None if ids is None else [ids[i] for i in keep]
            out('detection').publish(messages.detections(header, detections, ids))
        else:
            ids = None
        if result.instances is not None:
            result.instances = self._tracked_instances(result, detections, ids)
            self.pubs[(cam, topics.EXTRA_TOPICS['instances'])].publish(
                messages.instance_image(header, result.instances))
        return detections, ids

    @staticmethod
    def _tracked_instances(result, detections, ids):
        """The instance ids, as the track ids of the detections they match where there are some."""
        if not detections or ids is None:
            return track_instance_ids(result.instances, np.zeros((0, 4)), [])
        h, w = result.instances.shape
        ih, iw = result.image_size
        boxes = np.array([[d.x1, d.y1, d.x2, d.y2] for d in detections]) * np.array([w / iw, h / ih, w / iw, h / ih])
        return track_instance_ids(result.instances, boxes, ids)

    def label_infos(self, segmentation_names, detection_names, threshold):
        """The latched class maps of segmentation and detection, once per camera."""
        header = type(Image().header)()
        header.stamp = self._node.get_clock().now().to_msg()
        for cam in self._cameras:
            self.pubs[(cam, topics.LABEL_INFO['segmentation'])].publish(
                messages.label_info(header, segmentation_names))
            self.pubs[(cam, topics.LABEL_INFO['detection'])].publish(
                messages.label_info(header, detection_names, threshold))

    def destroy(self):
        for pub in [*self.pubs.values(), self.diagnostics]:
            self._node.destroy_lifecycle_publisher(pub)
        self.pubs, self.diagnostics = {}, None
