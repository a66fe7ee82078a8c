"""The parameter table is the single source: YAML, docs and the node's declarations agree."""
from pathlib import Path

import pytest
import yaml

from hydranet_ros.ros.parameters import BY_NAME, PARAMETERS, defaults, render_markdown_table, render_yaml, validate_all

ROOT = Path(__file__).resolve().parent.parent


def _flatten(d, prefix=''):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out


def test_config_yaml_is_the_table():
    text = (ROOT / 'config' / 'perception.yaml').read_text()
    assert text == render_yaml(), 'config/perception.yaml is stale: python -m hydranet_ros.ros.parameters --yaml'
    values = _flatten(yaml.safe_load(text)['/**/hydranet']['ros__parameters'])
    for name, default in defaults().items():
        if default == []:
            assert f'# {name.rpartition(".")[2]}: []' in text      # documented, left out (no type)
        else:
            assert values[name] == default, name
    assert set(values) <= set(BY_NAME)


def test_docs_table_is_the_table():
    docs = (ROOT / 'docs' / 'NODE.md').read_text()
    assert render_markdown_table() in docs, 'docs/NODE.md parameter table is stale'


def test_node_declares_exactly_the_table(tiny_checkpoint):
    import rclpy
    from hydranet_ros.ros.perception_node import PerceptionNode
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    try:
        node = PerceptionNode(context=ctx)
        declared = {name for name in node._parameters if name not in ('use_sim_time', 'start_type_description_service')}
        assert declared == set(BY_NAME)
        for spec in PARAMETERS:
            if spec.default != []:
                assert node.get_parameter(spec.name).value == spec.default, spec.name
            desc = node.describe_parameter(spec.name)
            assert spec.description in desc.description
        node.destroy_node()
    finally:
        rclpy.shutdown(context=ctx)


@pytest.mark.parametrize('values,problem', [
    ({'precision': 'fp64'}, 'precision must be one of'),
    ({'qos_depth': 0}, 'qos_depth must be >= 1'),
    ({'detection.score_threshold': 2.0}, 'must be <= 1'),
    ({'cameras': ['front', 'front']}, 'distinct'),
    ({'cameras': ['/front']}, 'leading /'),
    ({'input_width': 100}, 'multiple of 32'),
    ({'always_run': 'yes'}, 'type bool'),
    ({'no_such_param': 1}, 'unknown parameter'),
    ({'free_space.resolution_m': 5.0, 'free_space.range_m': 2.0}, 'must not exceed'),
    ({'free_space.resolution_m': 0.01, 'free_space.range_m': 200.0}, 'cells, more than'),
    ({'free_space.min_obstacle_height_m': 3.0}, 'must be below free_space.max_obstacle_height_m'),
    ({'obstacles.min_height_m': 1.0, 'obstacles.max_height_m': 0.5}, 'must be below obstacles.max_height_m'),
    ({'ground.plane': 'auto'}, 'ground.plane must be one of'),
])
def test_validation_reasons(values, problem):
    merged = {**defaults(), **values}
    assert any(problem in p for p in validate_all(merged)), validate_all(merged)


def test_defaults_are_valid():
    assert validate_all(defaults()) == []


def test_every_parameter_is_listed_and_read_through_the_parameter_services(tiny_checkpoint):
    """What `ros2 param dump` does: ListParameters, then GetParameters of every name in one call.
    rclpy answers nothing at all if one requested parameter has no value, so an empty list
    parameter must still be set (to [])."""
    from rcl_interfaces.msg import ParameterType
    from rcl_interfaces.srv import GetParameters, ListParameters
    from node_harness import NodeHarness
    h = NodeHarness(tiny_checkpoint, namespace='paramdump')
    try:
        node = '/paramdump/hydranet'
        lister = h.peer.create_client(ListParameters, f'{node}/list_parameters')
        getter = h.peer.create_client(GetParameters, f'{node}/get_parameters')
        assert lister.wait_for_service(timeout_sec=10) and getter.wait_for_service(timeout_sec=10)
        names = lister.call(ListParameters.Request(), timeout_sec=10).result.names
        assert set(BY_NAME) <= set(names)
        values = getter.call(GetParameters.Request(names=list(names)), timeout_sec=10).values
        assert len(values) == len(names), 'GetParameters answered nothing: a parameter has no value'
        types = {'bool': ParameterType.PARAMETER_BOOL, 'int': ParameterType.PARAMETER_INTEGER,
                 'double': ParameterType.PARAMETER_DOUBLE, 'string': ParameterType.PARAMETER_STRING,
                 'string_array': ParameterType.PARAMETER_STRING_ARRAY}
        got = dict(zip(names, values))
        for spec in PARAMETERS:
            assert got[spec.name].type == types[spec.type], spec.name
        assert list(got['cameras'].string_array_value) == [] and list(got['detection.classes'].string_array_value) == []
    finally:
        h.close()


def test_typed_view_has_every_parameter_as_an_attribute_and_is_frozen():
    import dataclasses
    from hydranet_ros.ros.node_params import NodeParams
    from hydranet_ros.ros.parameters import attribute
    params = NodeParams()                                   # the table's defaults
    assert params.to_dict() == defaults()
    assert params.detection_score_threshold == BY_NAME['detection.score_threshold'].default
    assert params.enabled('flow') is True and params.cameras == ()
    changed = params.with_values({'detection.score_threshold': 0.7, 'cameras': ['front']})
    assert changed.detection_score_threshold == 0.7 and changed.cameras == ('front',)
    assert params.detection_score_threshold == 0.3          # the original is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.detection_score_threshold = 0.9
    # the written fields are the table's parameters, in its order, with its types
    types = {'bool': 'bool', 'int': 'int', 'double': 'float', 'string': 'str', 'string_array': 'tuple[str, ...]'}
    assert [(f.name, f.type) for f in dataclasses.fields(NodeParams)] == \
        [(attribute(p.name), types[p.type]) for p in PARAMETERS]


def test_predictor_runtime_options_are_checked_before_anything_changes(tiny_checkpoint):
    from hydranet_ros.inference import Predictor
    predictor = Predictor(str(tiny_checkpoint), device='cpu', backend='torch')
    predictor.set_options(score_threshold=0.6, flow_max_gap_s=2.0)
    assert (predictor.score_threshold, predictor.max_detections, predictor.cache.max_gap_s) == (0.6, 100, 2.0)
    with pytest.raises(ValueError, match='max_detections'):
        predictor.set_options(score_threshold=0.1, max_detections=0)
    assert predictor.score_threshold == 0.6                 # nothing changed
