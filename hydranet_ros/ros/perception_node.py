"""The `hydranet` lifecycle node: camera images in; segmentation, depth, flow, detections out.

Lifecycle the navigation2 way: configure validates parameters, loads and warms up the model
and creates the publishers (FAILURE with the reason, and nothing left behind, on any
problem); activate subscribes and starts the worker; deactivate stops it; cleanup releases
the model. The node never changes its own state. Inference runs on a worker thread that
takes the newest frame of each camera, so executor callbacks never wait on the network.
"""
from __future__ import annotations

import threading
import time
import traceback

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from vision_msgs.msg import Detection2DArray, Detection3DArray, LabelInfo
from visualization_msgs.msg import MarkerArray

from hydranet_ros import TASKS, topics
from hydranet_ros.inference.backends import OnnxOptions
from hydranet_ros.inference.predictor import OutOfMemory, Predictor
from hydranet_ros.inference.results import FlowStatus
from hydranet_ros.msg import InferenceStats, OpticalFlow
from hydranet_ros.model import registry
from hydranet_ros.pipeline.latest_frames import LatestFrames
from hydranet_ros.ros import messages
from hydranet_ros.ros.camera_info_relay import CameraInfoRelay
from hydranet_ros.ros.debug_images import DebugImages
from hydranet_ros.ros.derived_outputs import DerivedOutputs
from hydranet_ros.ros.node_health import NodeHealth
from hydranet_ros.image_codec import (ImageConversionError, check_compressed_message, check_image_message,
                                      compressed_to_rgb, image_to_rgb)
from hydranet_ros.ros.parameters import BY_NAME, NODE_NAME, PARAMETERS, NodeParams, descriptor, validate_all

_RELIABILITY = {'reliable': ReliabilityPolicy.RELIABLE, 'best_effort': ReliabilityPolicy.BEST_EFFORT}
_QOS_CHECK_PERIOD_S = 1.0


def adapted_reliability(setting: str, publishers, current: str = 'best_effort') -> str:
    """The input subscription's reliability: `reliable` or `best_effort` as set, or with `auto`
    adapted to the publishers present, as `ros2 bag record` does: reliable when all of them are
    reliable (a reliable subscription then loses nothing in transport), best effort when any is
    not (the only one that matches a best-effort publisher). With no publisher there is nothing
    to adapt to: `current` stays."""
    if setting != 'auto':
        return setting
    if not publishers:
        return current
    if all(info.qos_profile.reliability == ReliabilityPolicy.RELIABLE for info in publishers):
        return 'reliable'
    return 'best_effort'


_topic = topics.topic


class PerceptionNode(LifecycleNode):
    """The `hydranet` lifecycle node (see the module docstring and docs/NODE.md)."""
    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        # A start-up value (parameters file, -p) outside its range or of the wrong type must not
        # crash the process: the parameter keeps its default, the problem is remembered, and
        # configure fails with it until a valid value is set.
        self._startup_problems = {}
        for spec in PARAMETERS:
            # An empty list has no inferable type (rclpy would take [] for a byte array): declare
            # the type, and give it its empty value below, so every parameter has a value.
            empty_list = isinstance(spec.default, list) and not spec.default
            value = Parameter.Type.STRING_ARRAY if empty_list else spec.default
            try:
                declared = self.declare_parameter(spec.name, value, descriptor(spec))
            except (InvalidParameterValueException, InvalidParameterTypeException) as exc:
                declared = self.declare_parameter(spec.name, value, descriptor(spec), ignore_override=True)
                reason = ' '.join(str(exc).split())
                self._startup_problems[spec.name] = f'{spec.name}: start-up value refused ({reason})'
                self.get_logger().error(self._startup_problems[spec.name])
            if declared.type_ == Parameter.Type.NOT_SET:
                # Unset parameters are invisible to GetParameters (`ros2 param dump` prints {}).
                self.set_parameters([Parameter(spec.name, Parameter.Type.STRING_ARRAY, [])])
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._lock = threading.RLock()
        self._reset_runtime()

    # ------------------------------------------------------------------ state
    def _reset_runtime(self):
        self._params: NodeParams | None = None     # set at configure
        self._predictor = None
        self._pubs = {}
        self._diag_pub = None
        self._input_subs = {}      # (camera, topic) -> (subscription, reliability)
        self._camera_infos = CameraInfoRelay()
        self._k_only_said: set[str] = set()
        self._debug = None
        self._derived = None
        self._depth_scales = {}    # camera -> last depth focal scaling (None: no camera_info)
        self._health = NodeHealth()
        self._frames = None
        self._worker = None
        self._timer = None
        self._qos_timer = None

    @property
    def state_label(self) -> str:
        return self._state_machine.current_state[1]

    @property
    def counters(self) -> dict:
        frames = self._frames
        return self._health.counters(frames.dropped if frames is not None else None)

    @property
    def last_error(self) -> str:
        """The last problem the node met (also after a failed configure), for callers and tests."""
        return self._health.last_error

    def _read_params(self) -> dict:
        values = {}
        for spec in PARAMETERS:
            value = self.get_parameter(spec.name).value
            values[spec.name] = list(value) if spec.type == 'string_array' else value
        return values

    # ------------------------------------------------------------------ transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            raw = self._read_params()
            problems = list(self._startup_problems.values()) + validate_all(raw)
            if problems:
                raise ValueError('invalid parameters: ' + '; '.join(problems))
            params = NodeParams.from_dict(raw)
            model_path, pin = registry.resolve(params.model_path, params.model_sha256 or None)
            size = None
            if params.input_height or params.input_width:
                if not (params.input_height and params.input_width):
                    raise ValueError('set both input_height and input_width, or neither')
                size = (params.input_height, params.input_width)
            onnx = OnnxOptions(providers=tuple(params.onnx_providers), cache_dir=params.onnx_cache_dir,
                               threads=params.onnx_threads,
                               tensorrt_workspace_mb=params.onnx_tensorrt_workspace_mb,
                               tensorrt_engine_cache=params.onnx_tensorrt_engine_cache)
            predictor = Predictor(
                str(model_path), device=params.device, precision=params.precision, input_size=size,
                score_threshold=params.detection_score_threshold, max_detections=params.detection_max_detections,
                flow_max_gap_s=params.flow_max_gap_s, expected_sha256=pin, backend=params.backend, onnx=onnx,
                log=self.get_logger().info)
            problems = _model_problems(params.to_dict(), predictor)
            if problems:
                raise ValueError('; '.join(problems))
            seg_names = [c['name'] for c in predictor.metadata.segmentation_classes]
            unknown = sorted(set(params.points_drop_classes) - set(seg_names))
            if unknown:     # the default names `sky`, which not every model has: a warning here
                self.get_logger().warning(f'points.drop_classes: model {predictor.model_id} has no class '
                                          f'{unknown}; ignored (it has {seg_names})')
            predictor.prepare()
            predictor.warmup(params.warmup_iterations)
        except Exception as exc:  # any problem: report, undo, stay unconfigured
            self.get_logger().error(f'configure failed: {exc}')
            self._reset_runtime()
            self._health.last_error = str(exc)   # kept for callers (tests, the demo) after the reset
            return TransitionCallbackReturn.FAILURE
        self._params = params
        self._predictor = predictor
        self._cameras = list(params.cameras) or ['']
        self._create_publishers()
        self._debug = DebugImages({(cam, task): self._pubs[(cam, name)] for cam in self._cameras
                                   for task, name in topics.DEBUG_TOPICS.items()},
                                  [c['color'] for c in predictor.metadata.segmentation_classes])
        seg_classes = predictor.metadata.segmentation_classes
        seg_colors = {c['name']: c['color'] for c in seg_classes}
        self._derived = DerivedOutputs(self._pubs, self._cameras, [c['name'] for c in seg_classes],
                                       predictor.class_names,
                                       [seg_colors.get(n, (255, 64, 0)) for n in predictor.class_names])
        self.get_logger().info(
            f'configured: model {predictor.model_id}, {predictor.backend_description} ({predictor.precision}), '
            f'input {predictor.input_size[1]}x{predictor.input_size[0]}, cameras {self._cameras}')
        return TransitionCallbackReturn.SUCCESS

    def _create_publishers(self):
        p = self._params
        out_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=p.qos_depth,
                             reliability=_RELIABILITY[p.output_reliability])
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        types = {topics.TASK_TOPICS['segmentation']: Image, topics.TASK_TOPICS['depth']: Image,
                 topics.TASK_TOPICS['flow']: OpticalFlow, topics.TASK_TOPICS['detection']: Detection2DArray,
                 topics.CAMERA_INFO: CameraInfo, topics.STATS: InferenceStats,
                 topics.POINTS: PointCloud2, topics.DETECTIONS_3D: Detection3DArray, topics.MARKERS_3D: MarkerArray,
                 topics.SEGMENTATION_COMPRESSED: CompressedImage, topics.DEPTH_COMPRESSED: CompressedImage,
                 **{name: Image for name in topics.DEBUG_TOPICS.values()}}
        for cam in self._cameras:
            for name, msg_type in types.items():
                self._pubs[(cam, name)] = self.create_lifecycle_publisher(msg_type, _topic(cam, name), out_qos)
            for name in topics.LABEL_INFO.values():
                self._pubs[(cam, name)] = self.create_lifecycle_publisher(LabelInfo, _topic(cam, name), latched)
        self._diag_pub = self.create_lifecycle_publisher(DiagnosticArray, topics.DIAGNOSTICS, out_qos)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)   # enables the lifecycle publishers
        if ret != TransitionCallbackReturn.SUCCESS:
            return ret
        p = self._params
        self._frames = LatestFrames()
        for cam in self._cameras:
            self._subscribe_input(cam, self._image_topic(cam))
            self._subscribe_input(cam, _topic(cam, topics.INPUT_CAMERA_INFO))
        if p.input_reliability == 'auto':
            self._qos_timer = self.create_timer(_QOS_CHECK_PERIOD_S, self._adapt_input_qos)
        self._publish_label_infos()
        self._worker = threading.Thread(target=self._work, name='hydranet_worker', daemon=True)
        self._worker.start()
        self._health.start_window()
        self._timer = self.create_timer(p.diagnostics_period_s, self._publish_diagnostics)
        self.get_logger().info('active: processing ' + ', '.join(
            f'{self.resolve_topic_name(self._image_topic(c))} ({self._input_subs[(c, self._image_topic(c))][1]})'
            for c in self._cameras))
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------ inputs and their QoS
    def _image_topic(self, cam: str) -> str:
        compressed = self._params.input_transport == 'compressed'
        return _topic(cam, topics.INPUT_COMPRESSED if compressed else topics.INPUT_IMAGE)

    def _publishers_of(self, name: str):
        return self.get_publishers_info_by_topic(self.resolve_topic_name(name))

    def _subscribe_input(self, cam: str, name: str, reliability: str | None = None):
        """(Re)create one input subscription with the reliability its publishers call for."""
        reliability = reliability or adapted_reliability(self._params.input_reliability, self._publishers_of(name))
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self._params.qos_depth,
                         reliability=_RELIABILITY[reliability])
        # A publisher this subscription cannot match: adapt now (auto), or say why nothing arrives.
        events = SubscriptionEventCallbacks(incompatible_qos=lambda event: self._on_incompatible_qos(name))
        if name.endswith(topics.INPUT_CAMERA_INFO):
            sub = self.create_subscription(CameraInfo, name, lambda msg: self._on_camera_info(cam, msg), qos,
                                           event_callbacks=events)
        else:
            msg_type = CompressedImage if name.endswith(topics.INPUT_COMPRESSED) else Image
            sub = self.create_subscription(msg_type, name, lambda msg, info: self._on_image(cam, msg, info), qos,
                                           event_callbacks=events)
        old = self._input_subs.get((cam, name))
        self._input_subs[(cam, name)] = (sub, reliability)
        if old is not None:
            self.destroy_subscription(old[0])

    def _on_incompatible_qos(self, name: str):
        if self._params.input_reliability == 'auto':
            self._adapt_input_qos()
        else:
            self.get_logger().warning(
                f'{self.resolve_topic_name(name)}: a publisher\'s QoS does not match this subscription '
                f'(input_reliability {self._params.input_reliability}); its messages cannot arrive. '
                f'Use input_reliability auto or best_effort', throttle_duration_sec=10.0)

    def _adapt_input_qos(self):
        """With input_reliability `auto`: follow the publishers as they come and go."""
        for (cam, name), (_, current) in list(self._input_subs.items()):
            wanted = adapted_reliability(self._params.input_reliability, self._publishers_of(name), current)
            if wanted != current and self._frames is not None:
                self.get_logger().info(f'{self.resolve_topic_name(name)}: publishers now call for a {wanted} '
                                       f'subscription (was {current}); resubscribing')
                self._subscribe_input(cam, name, wanted)

    def _reject(self, counter: str, topic: str, problem) -> None:
        """Count a refused input and warn (throttled); the message is dropped, nothing else changes."""
        self._health.count(counter, error=f'rejected input on {topic}: {problem}')
        self.get_logger().warning(f'rejected input on {topic}: {problem}', throttle_duration_sec=5.0)

    def _on_image(self, cam, msg, info=None):
        """Structural checks at receipt, so every malformed message is counted exactly once
        (a queued frame may be replaced by a newer one before the worker sees it)."""
        frames = self._frames
        if frames is None:
            return     # deactivating
        if info is not None:
            gid = info.get('publisher_gid')
            stamp = msg.header.stamp
            missing = self._health.input_seen(cam, messages.stamp_to_ns(stamp),
                                              publisher=bytes(gid['data']) if gid else None,
                                              sequence=info.get('publication_sequence_number'))
            if missing:
                self.get_logger().warning(
                    f'{self.resolve_topic_name(self._image_topic(cam))}: {missing} frame(s) lost before reaching '
                    f'the node; with a best-effort camera, make its publisher reliable or load '
                    f'config/fastdds.xml in its process too (docs/NODE.md, "Transport")', throttle_duration_sec=10.0)
        try:
            if isinstance(msg, CompressedImage):
                check_compressed_message(msg, self._params.max_input_side)
            else:
                check_image_message(msg, self._params.max_input_side)
        except ImageConversionError as exc:
            self._reject('rejected', self._image_topic(cam), exc)
            return
        frames.put(cam, msg)

    def _on_camera_info(self, cam, msg):
        problem = self._camera_infos.take(cam, msg)
        if problem is not None:
            self._reject('camera_info_rejected', _topic(cam, topics.INPUT_CAMERA_INFO), problem)
        elif cam in self._camera_infos.k_only and cam not in self._k_only_said:
            self._k_only_said.add(cam)
            self.get_logger().warning(
                f'{_topic(cam, topics.INPUT_CAMERA_INFO)}: P is all zeros, so K stands in for the rectified '
                'intrinsics (depth scale, points, detections_3d); publish P for a rectified image_rect')

    def _stop_processing(self):
        for timer in (self._timer, self._qos_timer):
            if timer is not None:
                self.destroy_timer(timer)
        self._timer = self._qos_timer = None
        for sub, _ in self._input_subs.values():
            self.destroy_subscription(sub)
        self._input_subs = {}
        if self._frames is not None:
            self._frames.close()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
            self._worker = None
        if self._frames is not None:
            self._health.set_dropped(self._frames.dropped)
            self._frames = None

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self.get_logger().info(f'deactivated: inputs unsubscribed, {self.counters["processed"]} frames processed')
        return super().on_deactivate(state)

    def _release(self):
        for pub in list(self._pubs.values()) + ([self._diag_pub] if self._diag_pub else []):
            self.destroy_lifecycle_publisher(pub)
        predictor = self._predictor
        self._reset_runtime()
        if predictor is not None and predictor.device.type == 'cuda':
            import torch
            del predictor
            torch.cuda.empty_cache()

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info('cleaned up: model released')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        self._release()
        self.get_logger().info(f'shut down from {state.label}')
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f'error during a transition from {state.label}; releasing everything')
        self._stop_processing()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------ parameters at runtime
    @staticmethod
    def _table_values(params) -> dict:
        """{name: value} of the table's parameters among rclpy Parameters, in the table's types."""
        values = {}
        for param in params:
            spec = BY_NAME.get(param.name)
            if spec is None:
                continue  # use_sim_time and other node-level parameters
            value = param.value
            if spec.type == 'string_array':
                value = [] if value is None else list(value)
            if spec.type == 'double' and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            values[spec.name] = value
        return values

    def _check_parameters(self, params) -> SetParametersResult:
        """On-set: validate only (the nav2 way); nothing changes here."""
        updates = self._table_values(params)
        for name, value in updates.items():
            spec = BY_NAME[name]
            reason = spec.validate(value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            if not spec.dynamic and self._predictor is not None:
                return SetParametersResult(
                    successful=False,
                    reason=f'{spec.name} takes effect at configure; clean up the node first (it is {self.state_label})')
        if updates and self._predictor is not None:
            merged = {**self._params.to_dict(), **updates}
            problems = validate_all(merged)
            problems += _model_problems(merged, self._predictor, 'points.drop_classes' in updates)
            if problems:
                return SetParametersResult(successful=False, reason='; '.join(problems))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params) -> None:
        """Post-set: the values passed the check and are set; the running node takes them."""
        updates = self._table_values(params)
        for name in updates:
            self._startup_problems.pop(name, None)   # a valid value replaces a refused start-up value
        if updates and self._predictor is not None:
            with self._lock:
                self._params = self._params.with_values(updates)
                self._predictor.set_options(score_threshold=self._params.detection_score_threshold,
                                            max_detections=self._params.detection_max_detections,
                                            flow_max_gap_s=self._params.flow_max_gap_s)
            if 'detection.score_threshold' in updates and self._frames is not None:
                self._publish_label_infos()     # the latched LabelInfo states the threshold in force

    # ------------------------------------------------------------------ worker
    def _needed_tasks(self, params) -> tuple:
        tasks = []
        for task in TASKS:
            if not params.enabled(task):
                continue
            if params.always_run:
                tasks.append(task)
                continue
            outputs = [topics.TASK_TOPICS[task], *((topics.DEBUG_TOPICS[task],) if params.debug_images else ())]
            outputs += [name for name, needs in topics.DERIVED_NEEDS.items() if task in needs]
            if task == 'flow' and params.tracking_mode == 'flow' and params.enabled('detection'):
                outputs += [topics.TASK_TOPICS['detection'], topics.DETECTIONS_3D, topics.MARKERS_3D]
            if any(self._pubs[(cam, name)].get_subscription_count() > 0
                   for cam in self._cameras for name in outputs):
                tasks.append(task)
        return tuple(tasks)

    def _work(self):
        frames = self._frames
        next_time = 0.0
        while not frames.closed:
            with self._lock:
                rate = self._params.max_rate_hz
            if rate > 0:
                wait = next_time - time.monotonic()
                if wait > 0:
                    time.sleep(min(wait, 0.1))
                    continue
            batch = frames.take(timeout=0.1)
            if not batch or frames.closed:
                continue
            if rate > 0:
                next_time = time.monotonic() + 1.0 / rate
            try:
                self._process(batch)
            except Exception as exc:  # never let one frame kill the worker
                self._health.count('errors', error=f'{type(exc).__name__}: {exc}')
                self.get_logger().error(f'processing failed: {exc}\n{traceback.format_exc()}',
                                        throttle_duration_sec=5.0)

    def _decode(self, frame):
        msg = frame.message
        try:
            if isinstance(msg, CompressedImage):
                rgb = compressed_to_rgb(msg, self._params.max_input_side)
            else:
                rgb = image_to_rgb(msg)
            Predictor.check_image(rgb)
        except (ImageConversionError, ValueError, TypeError) as exc:
            self._reject('rejected', self._image_topic(frame.camera), exc)
            return None
        return rgb

    def _process(self, batch):
        start = time.monotonic()
        with self._lock:
            params = self._params          # immutable: a change replaces the whole object
        tasks = self._needed_tasks(params)
        if not tasks:
            return
        decoded = [(f, self._decode(f)) for f in batch]
        decoded = [(f, rgb) for f, rgb in decoded if rgb is not None]
        if not decoded:
            return
        # Header stamps as integer nanoseconds, exact end to end (an unset stamp: now).
        stamps = [messages.stamp_to_ns(f.message.header.stamp) or time.time_ns() for f, _ in decoded]
        try:
            results = self._predictor.predict([rgb for _, rgb in decoded], tasks=tasks,
                                              streams=[f.camera for f, _ in decoded], stamps_ns=stamps,
                                              dense_output=params.output_resolution,
                                              focal_px=[self._camera_infos.focal_px(f.camera, rgb.shape[:2])
                                                        for f, rgb in decoded])
        except OutOfMemory as exc:
            # Drop these frames, free what the allocator holds, keep running.
            self._predictor.reset()
            if self._predictor.device.type == 'cuda':
                import torch
                torch.cuda.empty_cache()
            error = f'out of memory during inference, {len(decoded)} frame(s) dropped: {exc}'
            self._health.count('oom', error=error)
            self.get_logger().error(error, throttle_duration_sec=5.0)
            return
        self._health.processed(len(results), tasks)
        if 'depth' in tasks:
            self._depth_scales.update({f.camera: r.depth_scale for (f, _), r in zip(decoded, results)})
        for (frame, rgb), result in zip(decoded, results):
            if result.flow_status is FlowStatus.TIME_WENT_BACKWARDS:
                self._health.count('flow_resets')
                self.get_logger().info(f'{self._image_topic(frame.camera)}: flow restarts, {result.flow_status_detail}',
                                       throttle_duration_sec=5.0)
            self._publish(frame, rgb, result, tasks, params, start)

    def _publish(self, frame, rgb, result, tasks, params, start):
        """One frame's outputs, derived outputs, debug images, output camera_info and stats, in that order."""
        cam = frame.camera
        header = frame.message.header
        if params.frame_id:
            header = type(header)(stamp=header.stamp, frame_id=params.frame_id)
        dense = next((a.shape[:2] for a in (result.segmentation, result.depth, result.flow) if a is not None), None)
        info, problem = self._camera_infos.for_outputs(cam, header, rgb.shape[:2], dense)
        if problem is not None:
            self._reject('camera_info_rejected', _topic(cam, topics.INPUT_CAMERA_INFO), problem)
        detections, ids = self._publish_outputs(cam, header, result, params, self._derived.track(cam, result, params))
        wanted = self._derived.wanted(cam)
        if wanted:
            skipped = self._derived.publish(cam, header, result, rgb, info, detections, ids, params, wanted)
            if skipped:
                self.get_logger().warning(f'{self._image_topic(cam)}: {skipped}', throttle_duration_sec=10.0)
        if params.debug_images:
            self._debug.publish(cam, header, rgb, result, detections, ids)
        if info is not None:
            self._pubs[(cam, topics.CAMERA_INFO)].publish(info)
        timings = dict(result.timings_ms)
        timings['queue_ms'] = (start - frame.received) * 1e3
        timings['total_ms'] = (time.monotonic() - frame.received) * 1e3
        self._health.latency(timings['total_ms'])
        self._pubs[(cam, topics.STATS)].publish(messages.inference_stats(
            header, self._predictor.model_id, self._predictor.device, tasks, timings, self.counters))

    def _publish_outputs(self, cam, header, result, params, ids=None):
        """The task outputs present in result; returns the detections published (class filter
        applied) and their track ids, or None for either. ids: track ids of result.detections,
        published as Detection2D.id."""
        def out(task):
            return self._pubs[(cam, topics.TASK_TOPICS[task])]
        if result.segmentation is not None:
            out('segmentation').publish(messages.segmentation_image(header, result.segmentation))
        if result.depth is not None:
            out('depth').publish(messages.depth_image(header, result.depth, params.depth_min_m, params.depth_max_m))
        if result.flow is not None:
            out('flow').publish(messages.optical_flow(header, result.flow_previous_stamp_ns, result.flow,
                                                      result.image_size))
        if result.detections is None:
            return None, None
        wanted = set(params.detection_classes)
        keep = [i for i, d in enumerate(result.detections) if not wanted or d.class_name in wanted]
        detections = [result.detections[i] for i in keep]
        ids = None if ids is None else [ids[i] for i in keep]
        out('detection').publish(messages.detections(header, detections, ids))
        return detections, ids

    def _publish_label_infos(self):
        header = type(Image().header)()
        header.stamp = self.get_clock().now().to_msg()
        seg_names = [c['name'] for c in self._predictor.metadata.segmentation_classes]
        for cam in self._cameras:
            self._pubs[(cam, topics.LABEL_INFO['segmentation'])].publish(messages.label_info(header, seg_names))
            self._pubs[(cam, topics.LABEL_INFO['detection'])].publish(
                messages.label_info(header, self._predictor.class_names, self._params.detection_score_threshold))

    def _depth_camera_text(self) -> str:
        """How depth is made metric for each camera: the focal ratio from its camera_info, or why not."""
        if self._predictor.training_focal_px is None:
            return 'the model does not record its training focal length: depth as trained, unscaled'
        if not self._depth_scales:
            return 'no depth computed yet'
        return '; '.join(
            f'{cam or "camera"}: ' + (f'scaled x{scale:.3f} by its camera_info focal length' if scale is not None
                                      else 'no camera_info: depth as for the training camera, unscaled')
            for cam, scale in sorted(self._depth_scales.items()))

    def _publish_diagnostics(self):
        frames = self._frames
        level, message, values = self._health.report(frames.dropped if frames is not None else None)
        values.update({'input_reliability': ', '.join(f'{name}: {rel}'
                                                      for (_, name), (_, rel) in self._input_subs.items()),
                       'device': self._predictor.device, 'precision': self._predictor.precision,
                       'backend': self._predictor.backend_description,
                       'depth_camera': self._depth_camera_text(),
                       'model': self._predictor.model_id})
        self._diag_pub.publish(messages.diagnostics(self.get_clock().now().to_msg(), self.get_name(), level,
                                                    message, values))


def _model_problems(values: dict, predictor, drop_classes: bool = False) -> list[str]:
    """Parameter values that name classes the loaded model does not have (points.drop_classes
    too with drop_classes: runtime changes; at configure its default may name a missing class)."""
    problems = []
    unknown = sorted(set(values['detection.classes']) - set(predictor.class_names))
    if unknown:
        problems.append(f'detection.classes names classes the model does not have: {unknown}; '
                        f'it has {predictor.class_names}')
    seg_names = [c['name'] for c in predictor.metadata.segmentation_classes]
    unknown = sorted(set(values['points.drop_classes']) - set(seg_names))
    if unknown and drop_classes:
        problems.append(f'points.drop_classes names segmentation classes the model does not have: {unknown}; '
                        f'it has {seg_names}')
    return problems
