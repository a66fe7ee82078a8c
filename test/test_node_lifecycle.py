"""Lifecycle of the perception node over real DDS: every transition and its failure paths."""
import time

import pytest

from hydranet_ros.model.registry import weights
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from node_harness import NodeHarness, rgb_image

OK, FAIL = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


@pytest.fixture
def harness(tiny_checkpoint):
    h = NodeHarness(tiny_checkpoint)
    yield h
    h.close()


def _topics(h):
    return {name for name, _ in h.peer.get_topic_names_and_types()}


def test_full_cycle_and_the_node_never_activates_itself(harness):
    node = harness.node
    assert node.state_label == 'unconfigured'
    assert node.trigger_configure() == OK
    assert node.state_label == 'inactive'          # configured, not started
    assert harness.wait_for(lambda: '/hydranet/depth' in _topics(harness))
    assert node.trigger_activate() == OK and node.state_label == 'active'
    assert node.trigger_deactivate() == OK and node.state_label == 'inactive'
    assert node.trigger_activate() == OK and node.state_label == 'active'   # restartable
    assert node.trigger_deactivate() == OK
    assert node.trigger_cleanup() == OK and node.state_label == 'unconfigured'
    assert node._predictor is None and not node._pubs      # model and publishers released
    assert node.trigger_configure() == OK                  # and configurable again


@pytest.mark.parametrize('from_state', ['unconfigured', 'inactive', 'active'])
def test_shutdown_from_any_state(harness, from_state):
    node = harness.node
    if from_state in ('inactive', 'active'):
        assert node.trigger_configure() == OK
    if from_state == 'active':
        assert node.trigger_activate() == OK
    assert node.trigger_shutdown() == OK
    assert node.state_label == 'finalized'
    assert node._worker is None and node._predictor is None


@pytest.mark.parametrize('param,value,reason', [
    ('model_path', '/nonexistent/model.pt', 'checkpoint not found'),
    ('precision', 'fp8', 'precision must be one of'),
    ('device', 'cuda:7', 'cuda'),
    ('input_height', 100, 'multiple of 32'),
    ('detection.classes', ['car', 'unicorn'], 'unicorn'),
    ('model_sha256', '0' * 64, 'does not match the pinned'),
    ('depth.min_m', 10.0, 'must be below depth.max_m'),
    ('onnx.providers', ['CUDAExecutionProvider'], "provider(s) ['CUDAExecutionProvider'] are not available here"),
    ('precision', 'bf16', "'bf16' is not available with the onnxruntime backend"),
    ('backend', 'tensorrt', 'backend must be one of'),
])
def test_configure_failure_reports_the_reason_and_leaves_nothing(tiny_checkpoint, param, value, reason, caplog):
    extra = {'depth__max_m': 5.0} if param == 'depth.min_m' else {}
    if param == 'input_height':
        extra['input_width'] = 160
    h = NodeHarness(tiny_checkpoint, **{param.replace('.', '__'): value}, **extra)
    try:
        assert h.node.trigger_configure() == FAIL
        assert h.node.state_label == 'unconfigured'
        assert reason in h.node.last_error
        assert h.node._predictor is None and not h.node._pubs
        # Fix the parameter: the same node configures fine.
        good = {'model_path': str(tiny_checkpoint), 'precision': 'fp32', 'device': 'cpu', 'input_height': 0,
                'detection.classes': ['car'], 'model_sha256': '', 'depth.min_m': 0.0,
                'onnx.providers': ['cpu'], 'backend': 'onnxruntime'}[param]
        fixes = [Parameter(param, value=good)]
        if param == 'input_height':
            fixes.append(Parameter('input_width', value=0))
        assert all(r.successful for r in h.node.set_parameters(fixes))
        assert h.node.trigger_configure() == OK
    finally:
        h.close()


def test_junk_checkpoint_fails_configure(tmp_path, tiny_checkpoint):
    junk = tmp_path / 'junk.pt'
    junk.write_bytes(b'\x00not a model' * 100)
    h = NodeHarness(junk)
    try:
        assert h.node.trigger_configure() == FAIL
        assert 'not a hydranet_ros checkpoint' in h.node.last_error
    finally:
        h.close()


def test_inactive_node_does_not_process(harness):
    """Inactive before activate and after deactivate: not subscribed, nothing processed. The
    active phase in between is the control that frames from this publisher do get processed."""
    node = harness.node
    assert node.trigger_configure() == OK
    pub = harness.publisher(Image, '/hydranet/input/image')
    harness.subscribe(Image, '/hydranet/depth')
    assert not harness.wait_for(lambda: pub.get_subscription_count() > 0, timeout=1.5)
    for i in range(5):
        pub.publish(rgb_image(64, 64, stamp=(1, i)))
    time.sleep(0.5)
    assert node.counters['processed'] == 0
    assert node.trigger_activate() == OK
    assert harness.wait_matched(pub)
    assert harness.wait_for(lambda: (pub.publish(rgb_image(64, 64, stamp=(2, 0))) or True)
                            and node.counters['processed'] > 0, timeout=20)
    assert node.trigger_deactivate() == OK
    processed = node.counters['processed']
    assert harness.wait_for(lambda: pub.get_subscription_count() == 0, timeout=10)
    for i in range(5):
        pub.publish(rgb_image(64, 64, stamp=(3, i)))
    time.sleep(1.5)
    assert node.counters['processed'] == processed


def test_known_weights_by_name_load_with_their_pin():
    h = NodeHarness('hydranet_default')
    try:
        assert h.node.trigger_configure() == OK
        assert h.node._predictor.model_id == f'hydranet_default@{weights().sha256[:12]}'
    finally:
        h.close()
