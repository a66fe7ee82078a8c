"""The node's parameters on the ROS side: declared from the table (a bad start-up value never
crashes the process), read back in the table's types, and runtime changes checked before they
are applied (the nav2 way: the on-set callback validates, the post-set callback applies)."""
from __future__ import annotations

from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.parameter import Parameter

from hydranet_ros.ros.node_model import model_problems
from hydranet_ros.ros.parameters import BY_NAME, PARAMETERS, descriptor, validate_all


def declare_all(node) -> dict[str, str]:
    """Declare every parameter of the table on node; {name: problem} of start-up values (a
    parameters file, -p) outside their range or of the wrong type: those keep their default and
    configure fails with the problem until a valid value is set."""
    problems = {}
    for spec in PARAMETERS:
        # An empty list has no inferable type (rclpy would take [] for a byte array): declare
        # the type, and give it its empty value below, so every parameter has a value.
        empty_list = isinstance(spec.default, list) and not spec.default
        value = Parameter.Type.STRING_ARRAY if empty_list else spec.default
        try:
            declared = node.declare_parameter(spec.name, value, descriptor(spec))
        except (InvalidParameterValueException, InvalidParameterTypeException) as exc:
            declared = node.declare_parameter(spec.name, value, descriptor(spec), ignore_override=True)
            reason = ' '.join(str(exc).split())
            problems[spec.name] = f'{spec.name}: start-up value refused ({reason})'
            node.get_logger().error(problems[spec.name])
        if declared.type_ == Parameter.Type.NOT_SET:
            # Unset parameters are invisible to GetParameters (`ros2 param dump` prints {}).
            node.set_parameters([Parameter(spec.name, Parameter.Type.STRING_ARRAY, [])])
    return problems


def read_all(node) -> dict:
    """{name: value} of every table parameter as the node holds it (lists for string arrays)."""
    values = {}
    for spec in PARAMETERS:
        value = node.get_parameter(spec.name).value
        values[spec.name] = list(value) if spec.type == 'string_array' else value
    return values


def table_values(params) -> dict:
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


def check_update(updates: dict, current, predictor, state_label: str) -> SetParametersResult:
    """Whether {name: value} may be set now: each value valid, structural parameters only while
    no model is loaded, and together with the values in force (current, a NodeParams) consistent
    with the loaded model."""
    for name, value in updates.items():
        spec = BY_NAME[name]
        reason = spec.validate(value)
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        if not spec.dynamic and predictor is not None:
            return SetParametersResult(
                successful=False,
                reason=f'{spec.name} takes effect at configure; clean up the node first (it is {state_label})')
    if updates and predictor is not None:
        merged = {**current.to_dict(), **updates}
        problems = validate_all(merged)
        problems += model_problems(merged, predictor, 'points.drop_classes' in updates)
        if problems:
            return SetParametersResult(successful=False, reason='; '.join(problems))
    return SetParametersResult(successful=True)
