"""The node's bookkeeping and its diagnostics summary (ROS-free)."""
from hydranet_ros.ros.node_health import ERROR, OK, WARN, NodeHealth


def test_counts_and_levels_follow_what_happened():
    health = NodeHealth()
    health.processed(3, ('depth',))
    health.latency(10.0)
    health.latency(30.0)
    level, message, values = health.report(dropped=2)
    assert (level, message) == (OK, 'running')
    assert values['frames_processed'] == 3 and values['frames_dropped'] == 2
    assert values['latency_p50_ms'] == '20.0' and values['tasks_last_run'] == 'depth'
    health.input_seen('', 0, b'pub', 1)
    health.input_seen('', 0, b'pub', 4)                 # two lost upstream
    level, message, values = health.report()
    assert level == WARN and '2 input frame(s) lost upstream' in message and values['frames_lost_upstream'] == 2
    assert health.report()[0] == OK                     # warns while the count grows, not forever
    health.count('rejected', error='rejected input on input/image: empty image 0x0')
    level, message, _ = health.report()
    assert level == WARN and 'empty image' in message
    health.count('oom', error='out of memory during inference')
    assert health.report()[0] == ERROR
    assert health.counters()['oom'] == 1 and health.last_error == 'out of memory during inference'
