"""The node's model: the Predictor its parameters describe, loaded, checked against those
parameters, prepared and warmed up (configure), and how its depth is made metric (diagnostics)."""
from __future__ import annotations

from hydranet_ros.inference.backends import OnnxOptions
from hydranet_ros.inference.predictor import Predictor
from hydranet_ros.model import registry


def load_predictor(params, log, warn) -> Predictor:
    """The Predictor for a NodeParams, ready to run; ValueError (or the loader's error) naming
    what is wrong. log/warn: the node logger's info and warning."""
    model_path, pin = registry.resolve(params.model_path, params.model_sha256 or None)
    size = None
    if params.input_height or params.input_width:
        if not (params.input_height and params.input_width):
            raise ValueError('set both input_height and input_width, or neither')
        size = (params.input_height, params.input_width)
    onnx = OnnxOptions(providers=tuple(params.onnx_providers), cache_dir=params.onnx_cache_dir,
                       threads=params.onnx_threads, tensorrt_workspace_mb=params.onnx_tensorrt_workspace_mb,
                       tensorrt_engine_cache=params.onnx_tensorrt_engine_cache)
    predictor = Predictor(
        str(model_path), device=params.device, precision=params.precision, input_size=size,
        score_threshold=params.detection_score_threshold, max_detections=params.detection_max_detections,
        flow_max_gap_s=params.flow_max_gap_s, expected_sha256=pin, backend=params.backend, onnx=onnx, log=log)
    problems = model_problems(params.to_dict(), predictor)
    if problems:
        raise ValueError('; '.join(problems))
    seg_names = predictor.segmentation_names
    unknown = sorted(set(params.points_drop_classes) - set(seg_names))
    if unknown:     # the default names `sky`, which not every model has: a warning here
        warn(f'points.drop_classes: model {predictor.model_id} has no class {unknown}; ignored (it has {seg_names})')
    predictor.prepare()
    predictor.warmup(params.warmup_iterations)
    return predictor


def depth_camera_text(predictor, depth_scales: dict) -> str:
    """How depth is made metric for each camera: the focal ratio from its camera_info, or why not."""
    if predictor.training_focal_px is None:
        return 'the model does not record its training focal length: depth as trained, unscaled'
    if not depth_scales:
        return 'no depth computed yet'
    return '; '.join(
        f'{cam or "camera"}: ' + (f'scaled x{scale:.3f} by its camera_info focal length' if scale is not None
                                  else 'no camera_info: depth as for the training camera, unscaled')
        for cam, scale in sorted(depth_scales.items()))


def model_problems(values: dict, predictor, drop_classes: bool = False) -> list[str]:
    """Parameter values that name classes the loaded model does not have (points.drop_classes
    too with drop_classes: runtime changes; at configure its default may name a missing class)."""
    problems = []
    unknown = sorted(set(values['detection.classes']) - set(predictor.class_names))
    if unknown:
        problems.append(f'detection.classes names classes the model does not have: {unknown}; '
                        f'it has {predictor.class_names}')
    seg_names = predictor.segmentation_names
    unknown = sorted(set(values['points.drop_classes']) - set(seg_names))
    if unknown and drop_classes:
        problems.append(f'points.drop_classes names segmentation classes the model does not have: {unknown}; '
                        f'it has {seg_names}')
    return problems
