"""The node's parameters as one table.

The table is the single source of the ParameterDescriptors, the validation of every value
(at configure and at runtime), config/perception.yaml and the parameter table in
docs/NODE.md; tests check that the YAML and the docs agree with it. This module itself imports
no ROS (descriptors are built on demand), so tools and docs generation run anywhere.
"""
from __future__ import annotations

from dataclasses import dataclass

from hydranet_ros import DEFAULT_BACKEND, DEFAULT_SCORE_THRESHOLD, TASKS

NODE_NAME = 'hydranet'


@dataclass(frozen=True)
class ParamSpec:
    """One row of the parameter table: name, type, default, description, range or choices, dynamic."""
    name: str
    type: str                      # bool, int, double, string, string_array
    default: object
    description: str
    choices: tuple = ()            # allowed values (strings)
    min: float | None = None
    max: float | None = None
    dynamic: bool = False          # changeable at runtime without reconfiguring

    def range_text(self) -> str:
        if self.choices:
            return ', '.join(f'`{c}`' for c in self.choices)
        if self.min is not None or self.max is not None:
            lo = '' if self.min is None else f'{self.min:g}'
            hi = '' if self.max is None else f'{self.max:g}'
            return f'[{lo}, {hi}]'
        return ''

    def validate(self, value) -> str | None:
        """None if value is acceptable, else the reason it is not."""
        checks = {'bool': lambda v: isinstance(v, bool),
                  'int': lambda v: isinstance(v, int) and not isinstance(v, bool),
                  'double': lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
                  'string': lambda v: isinstance(v, str),
                  'string_array': lambda v: isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v)}
        if not checks[self.type](value):
            return f'{self.name} must be of type {self.type}, got {value!r}'
        if self.choices and value not in self.choices:
            return f'{self.name} must be one of {list(self.choices)}, got {value!r}'
        if self.min is not None and value < self.min:
            return f'{self.name} must be >= {self.min:g}, got {value!r}'
        if self.max is not None and value > self.max:
            return f'{self.name} must be <= {self.max:g}, got {value!r}'
        return None


_TASK_ENABLE = tuple(
    ParamSpec(f'{task}.enabled', 'bool', True, f'Run the {task} head (when its outputs have subscribers).',
              dynamic=True) for task in TASKS)

PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec('model_path', 'string', '',
              'Checkpoint file, or the name of known weights (`hydranet_default`: the bundled model, loaded '
              'against its sha256). Empty: `hydranet_default`.'),
    ParamSpec('model_sha256', 'string', '', 'If set, the checkpoint must have this sha256 (hex) or configure fails.'),
    ParamSpec('device', 'string', 'auto', "Compute device: `auto` (CUDA when present), `cpu`, `cuda` or `cuda:N`."),
    ParamSpec('precision', 'string', 'fp32',
              'Inference precision. torch: autocast for fp16/bf16. onnxruntime: fp16 needs a GPU provider '
              '(TensorRT builds fp16 engines, CUDA runs an fp16 graph); bf16 is torch only.',
              choices=('fp32', 'fp16', 'bf16')),
    ParamSpec('backend', 'string', DEFAULT_BACKEND,
              '`onnxruntime`: the exported deployment graph (one per set of heads, cached on disk), 2-3x '
              'faster than torch on CPU; `torch`: the network as trained.', choices=('onnxruntime', 'torch')),
    ParamSpec('onnx.providers', 'string_array', ['auto'],
              'onnxruntime execution providers in order of preference, full names or `cpu`, `cuda`, '
              '`tensorrt`; `auto`: CUDA when onnxruntime has it and `device` allows, else CPU (TensorRT only '
              'when named: its first engine build takes minutes). A named provider that is missing fails '
              'configure.'),
    ParamSpec('onnx.cache_dir', 'string', '',
              'Where exported graphs (and TensorRT engines, under tensorrt/) are kept, keyed by checkpoint '
              'sha256, input size and heads; empty: ~/.cache/hydranet_ros/onnx.'),
    ParamSpec('onnx.threads', 'int', 0,
              'onnxruntime intra-op threads; 0: one per physical core.', min=0, max=256),
    ParamSpec('onnx.tensorrt_workspace_mb', 'int', 2048,
              'TensorRT builder workspace in MiB.', min=64, max=262144),
    ParamSpec('onnx.tensorrt_engine_cache', 'bool', True,
              'Keep built TensorRT engines (and the timing cache) in the cache directory.'),
    ParamSpec('input_height', 'int', 0, 'Network input height in pixels, a multiple of 32; 0: the checkpoint\'s.',
              min=0, max=4096),
    ParamSpec('input_width', 'int', 0, 'Network input width in pixels, a multiple of 32; 0: the checkpoint\'s.',
              min=0, max=4096),
    ParamSpec('output_resolution', 'string', 'input',
              'Dense outputs at the `input` image size, or at the `model` resolution (the image as scaled '
              'into the network input; camera_info is scaled to match).', choices=('input', 'model')),
    *_TASK_ENABLE,
    ParamSpec('always_run', 'bool', False,
              'Run every enabled head on every frame even without subscribers (e.g. while recording).',
              dynamic=True),
    ParamSpec('detection.score_threshold', 'double', DEFAULT_SCORE_THRESHOLD, 'Minimum detection score published.',
              min=0.0, max=1.0, dynamic=True),
    ParamSpec('detection.max_detections', 'int', 100, 'Most detections per image.', min=1, max=1000,
              dynamic=True),
    ParamSpec('detection.classes', 'string_array', [],
              'Publish only these detection class names; empty: all.', dynamic=True),
    ParamSpec('depth.min_m', 'double', 0.0,
              'Depths closer than this are published as -Inf (REP 118); 0: no limit.', min=0.0, dynamic=True),
    ParamSpec('depth.max_m', 'double', 0.0,
              'Depths farther than this are published as +Inf (REP 118); 0: no limit.', min=0.0, dynamic=True),
    ParamSpec('flow.max_gap_s', 'double', 0.5,
              'Longest time between two frames of a camera for flow to be computed between them.',
              min=0.001, max=60.0, dynamic=True),
    ParamSpec('flow.mode', 'string', 'network',
              '`network`: the flow head. `ego_motion`: where odometry (`input/odom`) covers both frames and '
              'camera_info is known, the rigid flow of the predicted depth and the camera\'s motion on static '
              'pixels, the flow head on `flow.movers` pixels (runs depth and segmentation with the flow); the '
              'flow head otherwise. Needs a correct `mount.*` (or tf).', choices=('network', 'ego_motion'),
              dynamic=True),
    ParamSpec('flow.movers', 'string_array', ['car', 'pedestrian'],
              '`flow.mode: ego_motion`: segmentation classes that may move; their pixels keep the flow head.',
              dynamic=True),
    ParamSpec('odom.tolerance_s', 'double', 0.05,
              '`input/odom`: an image up to this long before the first or after the last odometry message '
              'takes the nearest pose (images between two messages are interpolated).',
              min=0.0, max=1.0, dynamic=True),
    ParamSpec('mount.from_tf', 'bool', True,
              'Look the camera\'s mount up in tf (the odometry\'s child_frame_id -> the image\'s frame_id) '
              'where tf2_ros is installed; `mount.*` stands in where it is not or the lookup fails.'),
    *(ParamSpec(f'mount.{axis}', 'double', 0.0,
                f'The camera body\'s {what} on the odometry\'s child frame (REP 103 axes, as a URDF '
                f'camera_link; the optical frame is its fixed rotation): {unit}.', min=lo, max=hi, dynamic=True)
      for axis, what, unit, lo, hi in (('x', 'position x (forward)', 'm', -100.0, 100.0),
                                       ('y', 'position y (left)', 'm', -100.0, 100.0),
                                       ('z', 'position z (up)', 'm', -100.0, 100.0),
                                       ('roll', 'roll', 'rad', -6.3, 6.3),
                                       ('pitch', 'pitch (positive: looking down)', 'rad', -6.3, 6.3),
                                       ('yaw', 'yaw (positive: looking left)', 'rad', -6.3, 6.3))),
    ParamSpec('points.stride', 'int', 2,
              '`points`, `points/ground`, `points/obstacles`: one point per stride x stride pixels of the dense '
              'outputs.', min=1, max=64, dynamic=True),
    ParamSpec('points.min_m', 'double', 0.0, '`points`: leave out points closer than this; 0: no limit.',
              min=0.0, dynamic=True),
    ParamSpec('points.max_m', 'double', 0.0, '`points`: leave out points farther than this; 0: no limit.',
              min=0.0, dynamic=True),
    ParamSpec('points.drop_classes', 'string_array', ['sky'],
              '`points`: segmentation class names whose pixels get no point.', dynamic=True),
    ParamSpec('points.max_sigma', 'double', 0.0,
              '`points` and `points/*`: leave out points whose depth uncertainty (Laplace scale, m) is above this; '
              '0: no limit. Needs a model with the depth uncertainty head (the clouds then carry a `sigma` field).',
              min=0.0, dynamic=True),
    ParamSpec('points.instances', 'bool', False,
              '`points`: carry each point\'s instance id (a uint16 `instance` field, the ids of `instances`, 0: '
              'none); the instance head then runs while `points` has a subscriber. Needs a model with the instance '
              'head.', dynamic=True),
    ParamSpec('detections_3d.min_points', 'int', 10,
              '`detections_3d`: a detection is lifted to 3D only with at least this many pixels of its class '
              'with a depth.', min=1, max=100000, dynamic=True),
    ParamSpec('ground.classes', 'string_array', ['road', 'lane_marking', 'sidewalk', 'terrain'],
              'Segmentation classes that are drivable ground: `points/ground` (clearing), free cells of '
              '`free_space`, the points the ground plane is fitted to.', dynamic=True),
    ParamSpec('ground.plane', 'string', 'fit',
              'The ground plane under the camera: `fit` per frame to the ground points (RANSAC; the mount '
              'below as prior and fallback), `fixed`: the mount.', choices=('fit', 'fixed'), dynamic=True),
    ParamSpec('ground.camera_height_m', 'double', 1.65, 'Camera height over flat ground (m): the mount.',
              min=0.05, max=100.0, dynamic=True),
    ParamSpec('ground.camera_pitch_deg', 'double', 0.0,
              'Camera pitch against flat ground (degrees, REP 103: positive looks down): the mount.',
              min=-60.0, max=60.0, dynamic=True),
    ParamSpec('ground.stride', 'int', 4,
              'The ground plane\'s fit and the `free_space` grid use one pixel per stride x stride of the dense '
              'outputs (`points.stride` sets the published clouds\'). 4 scores as well as 2 in the free-space '
              'evaluation (docs/MODEL.md) from a quarter of the pixels.', min=1, max=64, dynamic=True),
    ParamSpec('ground.max_tilt_deg', 'double', 15.0,
              'A fitted plane whose normal is farther than this from the mount\'s is refused (the mount is used).',
              min=0.0, max=60.0, dynamic=True),
    ParamSpec('obstacles.classes', 'string_array', ['building', 'vegetation', 'pole', 'car', 'pedestrian'],
              'Segmentation classes that block: `points/obstacles` (marking), occupied cells of `free_space`.',
              dynamic=True),
    ParamSpec('obstacles.min_height_m', 'double', 0.0,
              '`points/obstacles`: only points at least this high over the ground plane; 0 with '
              '`obstacles.max_height_m` 0: all obstacle points.', min=0.0, max=100.0, dynamic=True),
    ParamSpec('obstacles.max_height_m', 'double', 0.0,
              '`points/obstacles`: only points at most this high over the ground plane; 0: no limit.',
              min=0.0, max=100.0, dynamic=True),
    ParamSpec('free_space.resolution_m', 'double', 0.2, '`free_space`: cell size (m).', min=0.01, max=10.0,
              dynamic=True),
    ParamSpec('free_space.range_m', 'double', 30.0, '`free_space`: how far ahead the grid reaches from the camera\'s '
              'foot (m).', min=0.1, max=500.0, dynamic=True),
    ParamSpec('free_space.width_m', 'double', 20.0, '`free_space`: grid width across, centred on the optical axis (m).',
              min=0.1, max=500.0, dynamic=True),
    ParamSpec('free_space.min_obstacle_height_m', 'double', 0.2,
              '`free_space`: an obstacle point occupies its cell only this high over the ground plane or more (m).',
              min=0.0, max=100.0, dynamic=True),
    ParamSpec('free_space.max_obstacle_height_m', 'double', 2.5,
              '`free_space`: obstacle points higher than this over the ground plane (canopies, bridges) occupy '
              'nothing (m).', min=0.0, max=100.0, dynamic=True),
    ParamSpec('motion.window_s', 'double', 0.6,
              '`detections_3d/motion`: a track\'s velocity is the least-squares slope of its positions over this '
              'many seconds.', min=0.05, max=10.0, dynamic=True),
    ParamSpec('motion.min_samples', 'int', 3,
              '`detections_3d/motion`: positions a track needs in the window before its velocity counts.',
              min=2, max=100, dynamic=True),
    ParamSpec('tracking.mode', 'string', 'flow',
              'Detection ids (`Detection2D.id`, `Detection3D.id`): `flow` associates boxes by where the flow '
              'head says their pixels came from (runs the flow head whenever detections have subscribers), '
              '`iou` by box overlap alone, `off`: no ids.', choices=('flow', 'iou', 'off'), dynamic=True),
    ParamSpec('tracking.max_age_s', 'double', 1.0, 'A track not matched for this long ends; its id is not reused.',
              min=0.01, max=60.0, dynamic=True),
    ParamSpec('tracking.iou_threshold', 'double', 0.3,
              'Smallest overlap of a (flow-moved) box with a track\'s last box for the two to match.',
              min=0.01, max=1.0, dynamic=True),
    ParamSpec('compressed.depth_max_m', 'double', 80.0,
              '`depth/compressedDepth`: depths at or beyond this are sent as invalid (the compressed_depth '
              'plugin\'s depth_max).', min=0.1, max=1000.0, dynamic=True),
    ParamSpec('compressed.depth_quantization', 'double', 100.0,
              '`depth/compressedDepth`: the plugin\'s depth_quantization (resolution is z^2 / (q (q + 1)) '
              'metres).', min=1.0, max=1000.0, dynamic=True),
    ParamSpec('compressed.png_level', 'int', 1, 'PNG compression level of the compressed outputs (0-9).',
              min=0, max=9, dynamic=True),
    ParamSpec('max_rate_hz', 'double', 0.0, 'Process at most this many frames per second; 0: as fast as possible.',
              min=0.0, max=1000.0, dynamic=True),
    ParamSpec('input_transport', 'string', 'raw',
              'Subscribe to `input/image` (sensor_msgs/Image) or `input/image/compressed` (jpeg/png '
              'CompressedImage).',
              choices=('raw', 'compressed')),
    ParamSpec('cameras', 'string_array', [],
              'Input namespaces, one per camera, batched into one forward pass (e.g. [front, left]); '
              'empty: one camera, topics directly under the node namespace.'),
    ParamSpec('max_input_side', 'int', 8192,
              'Images wider or taller than this many pixels are rejected (protects memory).', min=32, max=16384),
    ParamSpec('input_reliability', 'string', 'auto',
              'Reliability of the input subscriptions. `auto`: reliable while every publisher of the topic is '
              'reliable (nothing lost in transport), best effort otherwise (adapted as soon as a publisher is '
              'matched, and re-checked every second, as `ros2 bag record` adapts); `best_effort` or `reliable` '
              'force one.',
              choices=('auto', 'best_effort', 'reliable')),
    ParamSpec('input_discovery_wait_s', 'double', 3.0,
              'With `input_reliability: auto`, how long activation waits for the cameras already running to be '
              'discovered (it ends as soon as every input has a publisher), so that the first subscription '
              'already has their reliability; a camera found later is adapted to as soon as it is matched.',
              min=0.0, max=60.0),
    ParamSpec('output_reliability', 'string', 'reliable', 'Reliability of the output publishers.',
              choices=('best_effort', 'reliable')),
    ParamSpec('qos_depth', 'int', 5, 'History depth of inputs and outputs.', min=1, max=1000),
    ParamSpec('debug_images', 'bool', False,
              'Publish colour images for people: debug/segmentation, debug/depth, debug/flow, debug/detections.',
              dynamic=True),
    ParamSpec('frame_id', 'string', '', "Override the outputs' header frame_id; empty: the input image's."),
    ParamSpec('warmup_iterations', 'int', 1, 'Forward passes on a blank image during configure.', min=0, max=100),
    ParamSpec('diagnostics_period_s', 'double', 1.0, 'Period of /diagnostics messages.', min=0.1, max=60.0),
)

BY_NAME = {p.name: p for p in PARAMETERS}
#: the largest free_space grid (cells) the parameters may ask for (4 MB a message)
MAX_GRID_CELLS = 4_000_000


def attribute(name: str) -> str:
    """The NodeParams attribute of a parameter: dots become underscores (detection.score_threshold ->
    detection_score_threshold)."""
    return name.replace('.', '_')


def defaults() -> dict:
    """{parameter name: default}, fresh lists."""
    return {p.name: (list(p.default) if isinstance(p.default, list) else p.default) for p in PARAMETERS}


def validate_all(values: dict) -> list[str]:
    """Reasons the values are unacceptable, per parameter and across parameters."""
    problems = []
    for name, value in values.items():
        spec = BY_NAME.get(name)
        if spec is None:
            problems.append(f'unknown parameter {name}')
            continue
        reason = spec.validate(value)
        if reason:
            problems.append(reason)
    if problems:
        return problems
    for key in ('input_height', 'input_width'):
        if values.get(key, 0) % 32:
            problems.append(f'{key} must be a multiple of 32 (or 0), got {values[key]}')
    lo, hi = values.get('depth.min_m', 0.0), values.get('depth.max_m', 0.0)
    if lo and hi and lo >= hi:
        problems.append(f'depth.min_m ({lo}) must be below depth.max_m ({hi})')
    lo, hi = values.get('obstacles.min_height_m', 0.0), values.get('obstacles.max_height_m', 0.0)
    if hi and lo >= hi:
        problems.append(f'obstacles.min_height_m ({lo}) must be below obstacles.max_height_m ({hi})')
    lo = values.get('free_space.min_obstacle_height_m', 0.2)
    hi = values.get('free_space.max_obstacle_height_m', 2.5)
    if lo >= hi:
        problems.append(f'free_space.min_obstacle_height_m ({lo}) must be below '
                        f'free_space.max_obstacle_height_m ({hi})')
    res = values.get('free_space.resolution_m', 0.2)
    reach, width = values.get('free_space.range_m', 30.0), values.get('free_space.width_m', 20.0)
    if res > min(reach, width):
        problems.append(f'free_space.resolution_m ({res}) must not exceed free_space.range_m and free_space.width_m')
    elif (reach / res) * (width / res) > MAX_GRID_CELLS:
        problems.append(f'free_space: {reach} x {width} m at {res} m is {reach * width / res ** 2:.0f} cells, '
                        f'more than {MAX_GRID_CELLS}')
    cams = values.get('cameras', [])
    if len(set(cams)) != len(cams):
        problems.append(f'cameras must be distinct, got {cams}')
    if any(c.startswith('/') for c in cams):
        problems.append(f'cameras are namespaces relative to the node, without a leading /: {cams}')
    return problems


# --- generated text: YAML defaults and the docs table ------------------------------------------
def _yaml_value(value) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return '[' + ', '.join(_yaml_value(v) for v in value) + ']'
    if isinstance(value, float):
        return repr(value)
    return str(value)


def render_yaml(node_name: str = NODE_NAME) -> str:
    """The defaults as a ROS 2 parameters file; dotted names become nested keys."""
    lines = ['# Parameters of the hydranet perception node, with their defaults.',
             '# Generated from hydranet_ros/ros/parameters.py (python -m hydranet_ros.ros.parameters --yaml);',
             '# a test checks the two agree. Copy and edit for your robot; pass with params_file:=...',
             '# The key matches a node of this name in any namespace.',
             f'/**/{node_name}:', '  ros__parameters:']
    groups: dict[str, list] = {}
    for p in PARAMETERS:   # top-level names first, then each group together (no repeated keys)
        groups.setdefault(p.name.rpartition('.')[0], []).append(p)
    ordered = [('', p) for p in groups.pop('', [])] + [(g, p) for g, ps in groups.items() for p in ps]
    open_group = None
    for group, p in ordered:
        leaf = p.name.rpartition('.')[2]
        if group != open_group:
            if group:
                lines.append(f'    {group}:')
            open_group = group
        indent = '      ' if group else '    '
        extra = f' Range: {p.range_text()}.' if p.range_text() else ''
        dyn = ' Dynamic.' if p.dynamic else ''
        lines.append(f'{indent}# {p.description}{extra}{dyn}')
        if isinstance(p.default, list) and not p.default:
            # ROS parameter files cannot carry an empty list (its type is unknown): leave it out.
            lines.append(f'{indent}# {leaf}: []   (default; set a list of strings to change it)')
        else:
            lines.append(f'{indent}{leaf}: {_yaml_value(p.default)}')
    return '\n'.join(lines) + '\n'


def render_markdown_table() -> str:
    """The parameter table of docs/NODE.md (a test keeps the docs equal to it)."""
    rows = ['| name | type | default | range / choices | dynamic | description |',
            '|---|---|---|---|---|---|']
    for p in PARAMETERS:
        default = _yaml_value(p.default)
        rows.append(f'| `{p.name}` | {p.type} | `{default}` | {p.range_text()} | '
                    f'{"yes" if p.dynamic else "no"} | {p.description} |')
    return '\n'.join(rows) + '\n'


# --- ROS side, imported lazily ----------------------------------------------------------------
def descriptor(spec: ParamSpec):
    """The rcl ParameterDescriptor of a table row: type, description, ranges."""
    from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                    ParameterType)
    types = {'bool': ParameterType.PARAMETER_BOOL, 'int': ParameterType.PARAMETER_INTEGER,
             'double': ParameterType.PARAMETER_DOUBLE, 'string': ParameterType.PARAMETER_STRING,
             'string_array': ParameterType.PARAMETER_STRING_ARRAY}
    extra = f' Choices: {", ".join(spec.choices)}.' if spec.choices else ''
    desc = ParameterDescriptor(name=spec.name, type=types[spec.type], description=spec.description + extra,
                               # Not read_only: a static parameter may change while the node is
                               # unconfigured (it applies at the next configure); the node's
                               # on-set callback refuses it once configured, with the reason.
                               additional_constraints='' if spec.dynamic else 'applied at configure')
    if spec.type == 'int' and (spec.min is not None or spec.max is not None):
        desc.integer_range = [IntegerRange(from_value=int(spec.min if spec.min is not None else -2**31),
                                           to_value=int(spec.max if spec.max is not None else 2**31 - 1), step=1)]
    if spec.type == 'double' and (spec.min is not None or spec.max is not None):
        desc.floating_point_range = [FloatingPointRange(
            from_value=float(spec.min if spec.min is not None else -1e300),
            to_value=float(spec.max if spec.max is not None else 1e300), step=0.0)]
    return desc


def main(argv=None):
    """Print the table as YAML (config/perception.yaml) or markdown (docs/NODE.md)."""
    import argparse
    parser = argparse.ArgumentParser(description='Print the parameter table as YAML or markdown.')
    parser.add_argument('--yaml', action='store_true')
    parser.add_argument('--markdown', action='store_true')
    args = parser.parse_args(argv)
    print(render_markdown_table() if args.markdown else render_yaml(), end='')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
