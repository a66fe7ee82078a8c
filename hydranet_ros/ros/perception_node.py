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

from rcl_interfaces.msg import SetParametersResult
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage

from hydranet_ros import EXTRA_OUTPUTS, topics
from hydranet_ros.inference.predictor import OutOfMemory, Predictor
from hydranet_ros.inference.results import FlowStatus
from hydranet_ros.pipeline.latest_frames import LatestFrames, run_worker
from hydranet_ros.ros import messages
from hydranet_ros.ros.camera_info_relay import CameraInfoRelay
from hydranet_ros.ros.node_health import NodeHealth
from hydranet_ros.image_codec import (ImageConversionError, check_compressed_message, check_image_message,
                                      compressed_to_rgb, image_to_rgb)
from hydranet_ros.ros.node_params import NodeParams
from hydranet_ros.ros.input_subscriptions import InputSubscriptions
from hydranet_ros.ros.node_model import depth_camera_text, load_predictor
from hydranet_ros.ros.odometry_input import OdometryInput
from hydranet_ros.ros.node_parameters import check_update, declare_all, read_all, table_values
from hydranet_ros.ros.output_publishers import OutputPublishers
from hydranet_ros.ros.parameters import NODE_NAME, validate_all

class PerceptionNode(LifecycleNode):
    """The `hydranet` lifecycle node (see the module docstring and docs/NODE.md)."""
    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        # A start-up value outside its range or of the wrong type must not crash the process: it
        # keeps its default and configure fails with the problem until a valid value is set.
        self._startup_problems = declare_all(self)
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._lock = threading.RLock()
        self._reset_runtime()

    # ------------------------------------------------------------------ state
    def _reset_runtime(self):
        self._params: NodeParams | None = None     # set at configure
        self._predictor = None
        self._outputs: OutputPublishers | None = None
        self._pubs = {}            # (camera, topic) -> publisher: the outputs' (DerivedOutputs, tests)
        self._inputs: InputSubscriptions | None = None
        self._odom: OdometryInput | None = None
        self._flow_source = {}     # camera -> how its last flow was made (diagnostics)
        self._camera_infos = CameraInfoRelay()
        self._k_only_said: set[str] = set()
        self._debug = None
        self._derived = None
        self._depth_scales = {}    # camera -> last depth focal scaling (None: no camera_info)
        self._health = NodeHealth()
        self._frames = None
        self._worker = None
        self._timer = None

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

    # ------------------------------------------------------------------ transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            raw = read_all(self)
            problems = list(self._startup_problems.values()) + validate_all(raw)
            if problems:
                raise ValueError('invalid parameters: ' + '; '.join(problems))
            params = NodeParams.from_dict(raw)
            predictor = load_predictor(params, self.get_logger().info, self.get_logger().warning)
        except Exception as exc:  # any problem: report, undo, stay unconfigured
            self.get_logger().error(f'configure failed: {exc}')
            self._reset_runtime()
            self._health.last_error = str(exc)   # kept for callers (tests, the demo) after the reset
            return TransitionCallbackReturn.FAILURE
        self._params = params
        self._predictor = predictor
        self._cameras = list(params.cameras) or ['']
        self._outputs = OutputPublishers(self, self._cameras, params)
        self._pubs = self._outputs.pubs
        self._debug, self._derived = self._outputs.debug_and_derived(predictor.metadata.segmentation_classes,
                                                                     predictor.class_names)
        self.get_logger().info(
            f'configured: model {predictor.model_id}, {predictor.backend_description} ({predictor.precision}), '
            f'input {predictor.input_size[1]}x{predictor.input_size[0]}, '
            + (f'cameras {", ".join(self._cameras)}' if self._cameras != [''] else 'one camera (no prefix)'))
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)   # enables the lifecycle publishers
        if ret != TransitionCallbackReturn.SUCCESS:
            return ret
        p = self._params
        self._frames = LatestFrames()
        self._inputs = InputSubscriptions(self, lambda: self._params, self._on_image, self._on_camera_info)
        self._inputs.start(self._cameras)
        self._odom = OdometryInput(self, lambda: self._params, self._reject)
        self._publish_label_infos()
        self._worker = threading.Thread(target=self._work, name='hydranet_worker', daemon=True)
        self._worker.start()
        self._health.start_window()
        self._timer = self.create_timer(p.diagnostics_period_s, self._publish_diagnostics)
        self.get_logger().info('active: processing ' + ', '.join(
            f'{self.resolve_topic_name(self._image_topic(c))} ({self._inputs.reliability(c)})'
            for c in self._cameras))
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------ inputs
    def _image_topic(self, cam: str) -> str:
        return topics.input_image_topic(cam, self._params.input_transport)

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
            if missing is None:
                return     # already delivered by the subscription this one replaces
            if missing:
                self.get_logger().warning(
                    f'{self.resolve_topic_name(self._image_topic(cam))}: {missing} frame(s) lost before reaching '
                    f'the node (their sequence numbers are missing): {self._inputs.loss_advice(cam)}',
                    throttle_duration_sec=10.0)
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
            self._reject('camera_info_rejected', topics.topic(cam, topics.INPUT_CAMERA_INFO), problem)
        elif cam in self._camera_infos.k_only and cam not in self._k_only_said:
            self._k_only_said.add(cam)
            self.get_logger().warning(
                f'{topics.topic(cam, topics.INPUT_CAMERA_INFO)}: P is all zeros, so K stands in for the rectified '
                'intrinsics (depth scale, points, detections_3d); publish P for a rectified image_rect')

    def _stop_processing(self):
        if self._timer is not None:
            self.destroy_timer(self._timer)
        self._timer = None
        if self._inputs is not None:
            self._inputs.close()
        if self._odom is not None:
            self._odom.close()
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
        if self._outputs is not None:
            self._outputs.destroy()
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
    def _check_parameters(self, params) -> SetParametersResult:
        """On-set: validate only (the nav2 way); nothing changes here."""
        return check_update(table_values(params), self._params, self._predictor, self.state_label)

    def _apply_parameters(self, params) -> None:
        """Post-set: the values passed the check and are set; the running node takes them."""
        updates = table_values(params)
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
    def _work(self):
        def rate():
            with self._lock:
                return self._params.max_rate_hz

        def failed(exc):
            self._health.count('errors', error=f'{type(exc).__name__}: {exc}')
            self.get_logger().error(f'processing failed: {exc}\n{traceback.format_exc()}', throttle_duration_sec=5.0)
        run_worker(self._frames, rate, self._process, failed)

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
        ego_motion = params.flow_mode == 'ego_motion' and self._odom is not None and self._odom.present
        tasks = self._outputs.needed_tasks(params, [t for t in self._predictor.tasks if t in EXTRA_OUTPUTS],
                                           ego_motion)
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
            self._reject('camera_info_rejected', topics.topic(cam, topics.INPUT_CAMERA_INFO), problem)
        if params.flow_mode == 'ego_motion' and result.flow is not None:
            self._ego_motion_flow(cam, result, info, header.frame_id, params)
        detections, ids = self._outputs.task_outputs(cam, header, result, params,
                                                     self._derived.track(cam, result, params))
        wanted = self._derived.wanted(cam)
        if wanted:
            camera_pose = self._odom.camera_pose if self._odom is not None else None
            skipped = self._derived.publish(cam, header, result, rgb, info, detections, ids, params, wanted,
                                            camera_pose)
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

    def _ego_motion_flow(self, cam, result, info, frame_id, params):
        """flow.mode ego_motion: result.flow becomes the rigid flow of depth and odometry on the
        static scene where both are there; the reason it stays the network's is kept otherwise."""
        names = self._predictor.segmentation_names
        movers = [names.index(n) for n in params.flow_movers if n in names]
        flow, why = self._odom.ego_motion_flow(result, info, frame_id, movers) if self._odom else (None, 'inactive')
        if flow is not None:
            result.flow = flow
            self._health.count('flow_ego_motion')
        self._flow_source[cam] = 'ego_motion' if flow is not None else f'network ({why})'

    def _publish_label_infos(self):
        self._outputs.label_infos(self._predictor.segmentation_names,
                                  self._predictor.class_names, self._params.detection_score_threshold)

    def _publish_diagnostics(self):
        frames = self._frames
        level, message, values = self._health.report(frames.dropped if frames is not None else None)
        values.update({'input_reliability': self._inputs.describe() if self._inputs else '',
                       'device': self._predictor.device, 'precision': self._predictor.precision,
                       'backend': self._predictor.backend_description,
                       'depth_camera': depth_camera_text(self._predictor, self._depth_scales),
                       'model': self._predictor.model_id,
                       'odometry': self._odom.describe() if self._odom else '',
                       'flow_source': ', '.join(f'{c or "camera"}: {s}' for c, s in self._flow_source.items())
                       or f'{self._params.flow_mode} (no flow yet)'})
        self._outputs.diagnostics.publish(messages.diagnostics(self.get_clock().now().to_msg(), self.get_name(), level,
                                                    message, values))

