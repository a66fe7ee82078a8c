"""The node's derived outputs: the semantic point cloud, the obstacle and ground clouds and the
free-space grid for a planner, 3D detections with RViz markers, track ids, and compressed copies of
segmentation and depth; each built only while subscribed.

The arithmetic lives in hydranet_ros.spatial and hydranet_ros.image_codec (no ROS); this part
decides what is wanted, keeps one tracker per camera and publishes.
"""
from __future__ import annotations

import numpy as np

from hydranet_ros import topics
from hydranet_ros.inference.results import FrameResult
from hydranet_ros.ros import messages
from hydranet_ros.spatial import FlowTracker, Intrinsics, lift_detections, semantic_cloud
from hydranet_ros.spatial.ground import GridSpec
from hydranet_ros.spatial.motion import MotionEstimator, flow_velocity, near_face_centre
from hydranet_ros.spatial.objects3d import class_label_map
from hydranet_ros.spatial.obstacles import GroundSettings, ground_scene

_GROUND_OUTPUTS = {topics.POINTS_OBSTACLES, topics.POINTS_GROUND, topics.FREE_SPACE}


class DerivedOutputs:
    """Per frame: track ids for the detections, then whichever derived outputs have subscribers."""

    def __init__(self, pubs: dict, cameras, segmentation_names, detection_names, colors):
        self._pubs = pubs
        self._seg_names = [str(n) for n in segmentation_names]
        self._class_labels = class_label_map(detection_names, self._seg_names)
        self._colors = colors
        self._trackers = {cam: None for cam in cameras}
        self._motion = {cam: MotionEstimator() for cam in cameras}

    def wanted(self, cam: str) -> set:
        """The derived topic names of this camera that have subscribers."""
        return {name for name in topics.DERIVED_NEEDS if self._pubs[(cam, name)].get_subscription_count() > 0}

    def track(self, cam: str, result: FrameResult, params) -> list[int] | None:
        """Ids for result.detections (None with tracking off or no detections)."""
        if params.tracking_mode == 'off' or result.detections is None:
            self._trackers[cam] = None
            return None
        tracker = self._trackers.get(cam)
        if tracker is None:
            tracker = self._trackers[cam] = FlowTracker(params.tracking_max_age_s, params.tracking_iou_threshold)
        tracker.max_age_s, tracker.iou_threshold = params.tracking_max_age_s, params.tracking_iou_threshold
        boxes = np.array([[d.x1, d.y1, d.x2, d.y2] for d in result.detections]).reshape(-1, 4)
        flow = result.flow if params.tracking_mode == 'flow' else None
        return tracker.update(boxes, [d.class_id for d in result.detections], result.stamp_ns, flow,
                              result.image_size)

    def publish(self, cam: str, header, result: FrameResult, rgb: np.ndarray, info, detections, ids, params,
                wanted: set, camera_pose=None) -> str | None:
        """Publish what is wanted; detections and ids are those published (class filter applied).
        camera_pose(stamp_ns, frame_id): the optical frame's pose from odometry, or None (velocities
        over the ground need it).
        Returns why 3D outputs were skipped (no camera_info), or None."""
        pub = {name: self._pubs[(cam, name)] for name in wanted}
        if topics.SEGMENTATION_COMPRESSED in pub and result.segmentation is not None:
            pub[topics.SEGMENTATION_COMPRESSED].publish(
                messages.compressed_segmentation(header, result.segmentation, params.compressed_png_level))
        if topics.DEPTH_COMPRESSED in pub and result.depth is not None:
            pub[topics.DEPTH_COMPRESSED].publish(messages.compressed_depth(
                header, result.depth, params.compressed_depth_max_m, params.compressed_depth_quantization))
        spatial = wanted & {topics.POINTS, topics.DETECTIONS_3D, topics.MARKERS_3D, topics.MOTION, *_GROUND_OUTPUTS}
        if not spatial or result.depth is None:
            return None
        if info is None:
            return 'no camera_info for this camera: points and detections_3d need its intrinsics'
        h, w = result.depth.shape
        intrinsics = Intrinsics.from_camera_info(info.k, info.p, h, w)
        labels = result.segmentation
        if topics.POINTS in spatial:
            colors = rgb if rgb.shape[:2] == (h, w) else _resize(rgb, (w, h))
            drop = [self._seg_names.index(n) for n in params.points_drop_classes if n in self._seg_names]
            cloud = semantic_cloud(result.depth, intrinsics, colors, labels, params.points_stride,
                                   params.points_min_m, params.points_max_m or float('inf'), drop,
                                   sigma=result.depth_uncertainty, max_sigma=params.points_max_sigma or float('inf'),
                                   instances=self._cloud_instances(result, params, (h, w)))
            pub[topics.POINTS].publish(messages.point_cloud(header, cloud))
        if spatial & _GROUND_OUTPUTS and labels is not None:
            self._publish_ground(header, result, labels, intrinsics, rgb, params, pub)
        if spatial & {topics.DETECTIONS_3D, topics.MARKERS_3D, topics.MOTION} and detections is not None:
            ih, iw = result.image_size
            scale = np.array([w / iw, h / ih, w / iw, h / ih])
            boxes = np.array([[d.x1, d.y1, d.x2, d.y2] for d in detections]).reshape(-1, 4) * scale
            objects = lift_detections(boxes, [d.class_id for d in detections], result.depth, intrinsics, labels,
                                      self._class_labels, params.detections_3d_min_points)
            if topics.DETECTIONS_3D in pub:
                pub[topics.DETECTIONS_3D].publish(messages.detections_3d(header, objects, detections, ids))
            if topics.MARKERS_3D in pub:
                pub[topics.MARKERS_3D].publish(messages.markers_3d(header, objects, detections, ids,
                                                                   self._colors))
            if topics.MOTION in pub:
                pose = camera_pose(result.stamp_ns, header.frame_id) if camera_pose is not None else None
                motions = self._object_motion(cam, result, objects, ids, params, pose)
                self._flow_velocities(result, motions, objects, ids, boxes, detections, intrinsics)
                pub[topics.MOTION].publish(messages.object_motion(header, motions))
        return None

    @staticmethod
    def _cloud_instances(result, params, size_hw):
        """The instance ids the cloud carries (points.instances), at the depth's size, or None."""
        ids = result.instances if params.points_instances else None
        if ids is None or ids.shape == size_hw:
            return ids
        import cv2
        return cv2.resize(ids, size_hw[::-1], interpolation=cv2.INTER_NEAREST)

    def _object_motion(self, cam, result, objects, ids, params, camera_pose=None) -> list:
        """Each tracked object's motion (objects without a track id have none to follow)."""
        est = self._motion[cam]
        est.window_s, est.min_samples = params.motion_window_s, params.motion_min_samples
        if ids is None:
            return []
        positions = {str(ids[o.index]): near_face_centre(o.center, o.size) for o in objects}
        return est.update(result.stamp_ns, positions, camera_pose)

    def _flow_velocities(self, result, motions, objects, ids, boxes, detections, intrinsics):
        """Each motion's velocity from this frame pair alone (depth + flow, spatial.motion.flow_velocity);
        closing speed and time to contact then follow from it (measured the more accurate)."""
        if result.flow is None or result.flow_previous_stamp_ns is None or result.flow.shape[:2] != result.depth.shape:
            return
        dt = (result.stamp_ns - result.flow_previous_stamp_ns) * 1e-9
        by_id = {str(ids[o.index]): o.index for o in objects} if ids is not None else {}
        for m in motions:
            i = by_id.get(m.id)
            v = None if i is None else flow_velocity(boxes[i], result.depth, result.flow, intrinsics, dt,
                                                      result.segmentation,
                                                      self._class_labels.get(detections[i].class_id, ()))
            if v is not None:
                m.use_flow_velocity(v)

    def _publish_ground(self, header, result, labels, intrinsics, rgb, params, pub):
        """points/obstacles, points/ground and free_space from one split of the frame, computed as
        far as the subscribed ones need it."""
        depth = result.depth
        h, w = depth.shape
        parts = scene_parts(pub, params)
        colored = parts & {'ground', 'obstacles'}
        colors = None if not colored else rgb if rgb.shape[:2] == (h, w) else _resize(rgb, (w, h))
        settings = GroundSettings.from_names(self._seg_names, params.ground_classes, params.obstacles_classes,
                                             plane=params.ground_plane, camera_height_m=params.ground_camera_height_m,
                                             camera_pitch_deg=params.ground_camera_pitch_deg,
                                             max_tilt_deg=params.ground_max_tilt_deg)
        scene = ground_scene(depth, labels, intrinsics, settings, colors, params.points_stride, params.points_min_m,
                             params.points_max_m or float('inf'), result.depth_uncertainty,
                             params.points_max_sigma or float('inf'), parts=parts, grid_stride=params.ground_stride,
                             obstacle_band=(params.obstacles_min_height_m, params.obstacles_max_height_m))
        if topics.POINTS_GROUND in pub:
            pub[topics.POINTS_GROUND].publish(messages.point_cloud(header, scene.ground))
        if topics.POINTS_OBSTACLES in pub:
            pub[topics.POINTS_OBSTACLES].publish(messages.point_cloud(header, scene.obstacles))
        if topics.FREE_SPACE in pub:
            spec = GridSpec(params.free_space_resolution_m, params.free_space_range_m, params.free_space_width_m)
            grid = scene.grid(spec, params.free_space_min_obstacle_height_m, params.free_space_max_obstacle_height_m)
            pub[topics.FREE_SPACE].publish(messages.occupancy_grid(header, grid))


def scene_parts(pub, params) -> frozenset:
    """What of the frame's split the subscribed planner outputs need (obstacles.SCENE_PARTS)."""
    parts = set()
    if topics.POINTS_GROUND in pub:
        parts.add('ground')
    if topics.POINTS_OBSTACLES in pub:
        parts.add('obstacles')          # with a height band, ground_scene fits the plane for it
    if topics.FREE_SPACE in pub:
        parts.add('grid')
    return frozenset(parts)


def _resize(rgb, size_wh):
    import cv2
    return cv2.resize(rgb, size_wh, interpolation=cv2.INTER_AREA)
