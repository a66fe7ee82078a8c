"""The node's parameter values as one typed, frozen object, read by attribute:
`params.detection_score_threshold` is the parameter `detection.score_threshold`.

Written out field by field so a reader (or an IDE) can follow a name to its field; every default
is the parameter table's (hydranet_ros.ros.parameters.PARAMETERS, the one place defaults live),
and a test keeps the fields, their types and the table equal. A change makes a new object
(with_values).
"""
from __future__ import annotations

from dataclasses import dataclass

from hydranet_ros.ros.parameters import BY_NAME, PARAMETERS, attribute


def _default(name: str):
    value = BY_NAME[name].default
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class NodeParams:
    """Every parameter of the node (PARAMETERS), dots as underscores."""
    # top level
    model_path: str = _default('model_path')
    model_sha256: str = _default('model_sha256')
    device: str = _default('device')
    precision: str = _default('precision')
    backend: str = _default('backend')
    # onnx.*
    onnx_providers: tuple[str, ...] = _default('onnx.providers')
    onnx_cache_dir: str = _default('onnx.cache_dir')
    onnx_threads: int = _default('onnx.threads')
    onnx_tensorrt_workspace_mb: int = _default('onnx.tensorrt_workspace_mb')
    onnx_tensorrt_engine_cache: bool = _default('onnx.tensorrt_engine_cache')
    # top level
    input_height: int = _default('input_height')
    input_width: int = _default('input_width')
    output_resolution: str = _default('output_resolution')
    # segmentation.*
    segmentation_enabled: bool = _default('segmentation.enabled')
    # depth.*
    depth_enabled: bool = _default('depth.enabled')
    # flow.*
    flow_enabled: bool = _default('flow.enabled')
    # detection.*
    detection_enabled: bool = _default('detection.enabled')
    # top level
    always_run: bool = _default('always_run')
    # detection.*
    detection_score_threshold: float = _default('detection.score_threshold')
    detection_max_detections: int = _default('detection.max_detections')
    detection_classes: tuple[str, ...] = _default('detection.classes')
    # depth.*
    depth_min_m: float = _default('depth.min_m')
    depth_max_m: float = _default('depth.max_m')
    # flow.*
    flow_max_gap_s: float = _default('flow.max_gap_s')
    flow_mode: str = _default('flow.mode')
    flow_movers: tuple[str, ...] = _default('flow.movers')
    # odom.*
    odom_tolerance_s: float = _default('odom.tolerance_s')
    # mount.*
    mount_from_tf: bool = _default('mount.from_tf')
    mount_x: float = _default('mount.x')
    mount_y: float = _default('mount.y')
    mount_z: float = _default('mount.z')
    mount_roll: float = _default('mount.roll')
    mount_pitch: float = _default('mount.pitch')
    mount_yaw: float = _default('mount.yaw')
    # points.*
    points_stride: int = _default('points.stride')
    points_min_m: float = _default('points.min_m')
    points_max_m: float = _default('points.max_m')
    points_drop_classes: tuple[str, ...] = _default('points.drop_classes')
    points_max_sigma: float = _default('points.max_sigma')
    points_instances: bool = _default('points.instances')
    # detections_3d.*
    detections_3d_min_points: int = _default('detections_3d.min_points')
    # ground.*
    ground_classes: tuple[str, ...] = _default('ground.classes')
    ground_plane: str = _default('ground.plane')
    ground_camera_height_m: float = _default('ground.camera_height_m')
    ground_camera_pitch_deg: float = _default('ground.camera_pitch_deg')
    ground_stride: int = _default('ground.stride')
    ground_max_tilt_deg: float = _default('ground.max_tilt_deg')
    # obstacles.*
    obstacles_classes: tuple[str, ...] = _default('obstacles.classes')
    obstacles_min_height_m: float = _default('obstacles.min_height_m')
    obstacles_max_height_m: float = _default('obstacles.max_height_m')
    # free_space.*
    free_space_resolution_m: float = _default('free_space.resolution_m')
    free_space_range_m: float = _default('free_space.range_m')
    free_space_width_m: float = _default('free_space.width_m')
    free_space_min_obstacle_height_m: float = _default('free_space.min_obstacle_height_m')
    free_space_max_obstacle_height_m: float = _default('free_space.max_obstacle_height_m')
    # motion.*
    motion_window_s: float = _default('motion.window_s')
    motion_min_samples: int = _default('motion.min_samples')
    # tracking.*
    tracking_mode: str = _default('tracking.mode')
    tracking_max_age_s: float = _default('tracking.max_age_s')
    tracking_iou_threshold: float = _default('tracking.iou_threshold')
    # compressed.*
    compressed_depth_max_m: float = _default('compressed.depth_max_m')
    compressed_depth_quantization: float = _default('compressed.depth_quantization')
    compressed_png_level: int = _default('compressed.png_level')
    # top level
    max_rate_hz: float = _default('max_rate_hz')
    input_transport: str = _default('input_transport')
    cameras: tuple[str, ...] = _default('cameras')
    max_input_side: int = _default('max_input_side')
    input_reliability: str = _default('input_reliability')
    input_discovery_wait_s: float = _default('input_discovery_wait_s')
    output_reliability: str = _default('output_reliability')
    qos_depth: int = _default('qos_depth')
    debug_images: bool = _default('debug_images')
    frame_id: str = _default('frame_id')
    warmup_iterations: int = _default('warmup_iterations')
    diagnostics_period_s: float = _default('diagnostics_period_s')

    @classmethod
    def from_dict(cls, values: dict) -> NodeParams:
        """From {parameter name: value}; lists become tuples (the view is immutable)."""
        return cls(**{attribute(k): tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def to_dict(self) -> dict:
        return {p.name: list(v) if isinstance(v := getattr(self, attribute(p.name)), tuple) else v
                for p in PARAMETERS}

    def with_values(self, updates: dict) -> NodeParams:
        """A copy with {parameter name: value} applied."""
        return type(self).from_dict({**self.to_dict(), **updates})

    def enabled(self, task: str) -> bool:
        return getattr(self, attribute(f'{task}.enabled'))
