"""Camera frames in: the subscription's reliability follows the publishers, frames lost before
the node are counted and reported, and the package's DDS transport profile loads and applies."""
import os
import subprocess
import sys
import textwrap
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from hydranet_ros.msg import InferenceStats
from hydranet_ros.pipeline.upstream_loss import UpstreamLoss
from hydranet_ros.ros import transport
from node_harness import NodeHarness, rgb_image

BEST_EFFORT = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
MS = 1_000_000
STANDBY = [ReliabilityPolicy.BEST_EFFORT, ReliabilityPolicy.RELIABLE]


# --- frames lost upstream, from sequence numbers or stamps (ROS-free) ----------------------------
def test_sequence_gaps_per_publisher_are_lost_frames():
    loss = UpstreamLoss()
    assert [loss.observe(i * 100 * MS, b'a', seq) for i, seq in enumerate([1, 2, 3, 6, 7, 10])] == [0, 0, 0, 2, 0, 2]
    assert loss.observe(0, b'b', 50) == 0          # another publisher has its own numbers
    assert loss.observe(0, b'b', 52) == 1
    assert loss.observe(0, b'a', 9) is None        # late or repeated: nothing new
    assert loss.observe(0, b'a', 10) is None and loss.lost == 5
    assert loss.lost == 5


def test_stamp_gaps_at_a_steady_rate_are_lost_frames():
    loss = UpstreamLoss()
    stamps = [i * 100 for i in range(8)] + [1000, 1100, 1400, 1500]    # 800, 900, 1200, 1300 missing
    found = [loss.observe(s * MS) for s in stamps]
    assert found == [0] * 8 + [2, 0, 2, 0] and loss.lost == 4


def test_stamps_tell_nothing_until_the_rate_is_known_and_not_across_a_pause_or_a_loop():
    loss = UpstreamLoss()
    assert loss.observe(0) == 0 and loss.observe(500 * MS) == 0        # one interval: no period yet
    loss = UpstreamLoss()
    for i in range(10):
        loss.observe(i * 100 * MS)
    assert loss.observe(60_000 * MS) == 0           # a minute's pause is not 599 lost frames
    for i in range(10):
        loss.observe(i * 100 * MS)                  # the bag loops: starts over
    assert loss.lost == 0


# --- the input subscription's reliability over real DDS -----------------------------------------
def _subscription_reliability(h, topic):
    infos = [i for i in h.peer.get_subscriptions_info_by_topic(topic) if i.node_name == 'hydranet']
    return [i.qos_profile.reliability for i in infos]


def _processed_frame_ids(h, topic='/qos/stats'):
    return {s.header.frame_id for s in h.received[topic]}


def test_auto_reliability_follows_the_publishers_and_receives_from_each(tiny_checkpoint):
    h = NodeHarness(tiny_checkpoint, namespace='qos', always_run=True)
    try:
        h.configure_activate()
        h.subscribe(InferenceStats, '/qos/stats')
        topic = '/qos/input/image'
        # no publisher yet: best effort (matches any camera) with a reliable standby beside it
        assert sorted(_subscription_reliability(h, topic)) == sorted(STANDBY)
        reliable = h.publisher(Image, topic, RELIABLE)
        assert h.wait_for(lambda: _subscription_reliability(h, topic) == [ReliabilityPolicy.RELIABLE], timeout=10)
        assert h.wait_for(lambda: (reliable.publish(rgb_image(32, 48, frame_id='reliable')) or True)
                          and 'reliable' in _processed_frame_ids(h), timeout=20)
        best_effort = h.publisher(Image, topic, BEST_EFFORT)
        assert h.wait_for(lambda: _subscription_reliability(h, topic) == [ReliabilityPolicy.BEST_EFFORT], timeout=10)
        assert h.wait_for(lambda: (best_effort.publish(rgb_image(32, 48, frame_id='best_effort')) or True)
                          and 'best_effort' in _processed_frame_ids(h), timeout=20)
        assert h.wait_for(lambda: best_effort.get_subscription_count() == 1 == reliable.get_subscription_count())
    finally:
        h.close()


def test_a_camera_in_another_process_is_subscribed_reliably_from_the_start(tiny_checkpoint):
    """A reliable camera started with the node (another process, as under one launch): activation
    waits briefly for it to be discovered, so the first subscription is already reliable and its
    first frames are not lost to a best-effort start that adapts a second later."""
    from rclpy.lifecycle import TransitionCallbackReturn
    from rostest_util import start_python, stop_process
    h = NodeHarness(tiny_checkpoint, namespace='qosearly', always_run=True, input_discovery_wait_s=20.0)
    camera = None
    try:
        topic = '/qosearly/input/image'
        h.subscribe(InferenceStats, '/qosearly/stats')
        assert h.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        # the camera: a reliable publisher on the node's input, in its own process
        camera = start_python('dds_echo_peer.py', 'sensor_msgs/msg/Image', '/qosearly/camera_feed', topic)
        assert camera.stdout.readline().strip() == 'peer ready'
        assert h.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert _subscription_reliability(h, topic) == [ReliabilityPolicy.RELIABLE]     # no adapting later
        feed = h.publisher(Image, '/qosearly/camera_feed', RELIABLE)
        assert h.wait_matched(feed)
        for k in range(3):
            feed.publish(rgb_image(32, 48, frame_id=f'early{k}', stamp=(1, k * 100_000_000)))
            assert h.wait_for(lambda k=k: f'early{k}' in {s.header.frame_id for s in h.received['/qosearly/stats']},
                              timeout=20)
    finally:
        if camera is not None:
            stop_process(camera)
        h.close()


def _node_warnings(h, words):
    return [m.msg for m in h.received['/rosout'] if m.name.endswith('hydranet') and words in m.msg]


def test_a_reliable_camera_started_after_activation_loses_at_most_the_frames_in_flight(tiny_checkpoint):
    """A reliable camera that comes up after the node is active (a driver restarted, a bag played
    later), in its own process, sending 640x480 frames at 30 Hz once it has matched the node: the
    best-effort subscription `auto` starts with has a reliable standby that receives the camera from
    its first frame and takes over as soon as the camera is matched, not at the next once-a-second
    check (which lost 6-20 frames here), so nothing is lost; and a loss would be explained as the
    subscription's late switch, never blamed on the camera's (reliable) QoS."""
    from rcl_interfaces.msg import Log
    from rostest_util import start_python, stop_process
    h = NodeHarness(tiny_checkpoint, namespace='latecam', always_run=True)
    camera = None
    try:
        h.subscribe(Log, '/rosout', QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        h.subscribe(InferenceStats, '/latecam/stats')
        h.configure_activate()
        topic = '/latecam/input/image'
        # the camera starts sending once it has matched every subscription the node has on the topic
        readers = len(_subscription_reliability(h, topic))
        camera = start_python('camera_peer.py', topic, '60', '30', '640', '480', 'reliable', str(readers))
        assert camera.stdout.readline().strip() == 'published 60'
        assert h.wait_for(lambda: _subscription_reliability(h, topic) == [ReliabilityPolicy.RELIABLE], timeout=10)
        assert h.wait_for(lambda: 'frame59' in _processed_frame_ids(h, '/latecam/stats'), timeout=20)
        counters = h.node.counters
        delivered = counters['processed'] + counters['dropped']      # dropped: replaced by a newer frame
        assert delivered == 60, f'{60 - delivered} frames of a reliable camera lost to the late switch'
        time.sleep(0.5)                                                    # /rosout is a topic too
        assert not _node_warnings(h, 'camera publishes best effort'), 'the reliable camera was blamed'
        said = _node_warnings(h, 'lost before reaching the node')
        assert all('still best effort' in m for m in said), said
    finally:
        if camera is not None:
            stop_process(camera)
        h.close()


def test_a_best_effort_camera_is_still_named_as_the_cause_of_lost_frames(tiny_checkpoint):
    """The advice the other way round: with a best-effort camera, frames lost upstream are the
    camera's QoS and the warning says so."""
    from rcl_interfaces.msg import Log
    h = NodeHarness(tiny_checkpoint, namespace='becam')
    try:
        h.subscribe(Log, '/rosout', QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        h.configure_activate()
        camera = h.publisher(Image, '/becam/input/image', BEST_EFFORT)
        assert h.wait_matched(camera)
        gid = {'implementation_identifier': 'rmw_fastrtps_cpp', 'data': list(range(16))}
        for seq in (1, 2, 5):
            h.node._on_image('', rgb_image(32, 48, stamp=(1, seq * 1000)),
                             {'publication_sequence_number': seq, 'publisher_gid': gid})
        assert h.wait_for(lambda: _node_warnings(h, 'lost before reaching the node'), timeout=10)
        said = _node_warnings(h, 'lost before reaching the node')
        assert 'camera publishes best effort' in said[0] and 'still best effort' not in said[0], said
    finally:
        h.close()


def test_a_gap_right_after_the_switch_to_a_reliable_camera_is_explained_as_the_switch(tiny_checkpoint):
    """Frames that went missing while `auto` was still best effort, found by the first frame after
    the switch, are said to be the switch's gap, not the (reliable) camera's QoS."""
    from rcl_interfaces.msg import Log
    h = NodeHarness(tiny_checkpoint, namespace='gapcam')
    try:
        h.subscribe(Log, '/rosout', QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        h.configure_activate()
        topic = '/gapcam/input/image'
        camera = h.publisher(Image, topic, RELIABLE)
        assert h.wait_for(lambda: _subscription_reliability(h, topic) == [ReliabilityPolicy.RELIABLE], timeout=10)
        gid = {'implementation_identifier': 'rmw_fastrtps_cpp', 'data': list(range(16))}
        for seq in (1, 2, 9):           # 1-2 came best effort, 3-8 lost before the switch
            h.node._on_image('', rgb_image(32, 48, stamp=(1, seq * 1000)),
                             {'publication_sequence_number': seq, 'publisher_gid': gid})
        assert h.wait_for(lambda: _node_warnings(h, 'lost before reaching the node'), timeout=10)
        said = _node_warnings(h, 'lost before reaching the node')[0]
        assert '6 frame(s)' in said and 'still best effort' in said and 'camera publishes best effort' not in said
        assert camera.get_subscription_count() == 1
    finally:
        h.close()


def test_forced_reliability_is_kept_whatever_the_publishers(tiny_checkpoint):
    h = NodeHarness(tiny_checkpoint, namespace='qosforced', input_reliability='reliable')
    try:
        h.configure_activate()
        h.publisher(Image, '/qosforced/input/image', BEST_EFFORT)
        time.sleep(2.5)    # two checks of the publishers
        assert _subscription_reliability(h, '/qosforced/input/image') == [ReliabilityPolicy.RELIABLE]
    finally:
        h.close()


def test_fast_dds_gives_publication_sequence_numbers(ros_node):
    """The sequence-number path of the loss count is live with the middleware in use."""
    infos = []
    ros_node.create_subscription(Image, '/seq_probe', lambda msg, info: infos.append(info), RELIABLE)
    pub = ros_node.create_publisher(Image, '/seq_probe', RELIABLE)
    from rostest_util import spin_until
    assert spin_until(ros_node, lambda: pub.get_subscription_count() > 0, timeout_s=10)
    for _ in range(3):
        pub.publish(rgb_image(8, 8))
    assert spin_until(ros_node, lambda: len(infos) == 3, timeout_s=10)
    assert [i['publication_sequence_number'] for i in infos] == [1, 2, 3]
    assert infos[0]['publisher_gid'] is not None


def test_frames_lost_upstream_are_counted_and_raise_a_warning_in_diagnostics(tiny_checkpoint):
    h = NodeHarness(tiny_checkpoint, namespace='lossdiag', diagnostics_period_s=0.2)
    try:
        h.configure_activate()
        h.subscribe(DiagnosticArray, '/diagnostics')
        gid = {'implementation_identifier': 'rmw_fastrtps_cpp', 'data': list(range(16))}
        for seq in (1, 2, 5, 6, 9):                     # what the subscription delivers: 4 missing
            msg = rgb_image(32, 48, stamp=(1, seq * 1000))
            h.node._on_image('', msg, {'publication_sequence_number': seq, 'publisher_gid': gid})
        assert h.node.counters['lost_upstream'] == 4

        def warned():
            for arr in h.received['/diagnostics']:
                for status in arr.status:
                    values = {kv.key: kv.value for kv in status.values}
                    if values.get('frames_lost_upstream') == '4' and status.level == DiagnosticStatus.WARN:
                        return 'lost upstream' in status.message
            return False
        assert h.wait_for(warned, timeout=10)
    finally:
        h.close()



# --- the DDS transport profile ------------------------------------------------------------------
@pytest.mark.parametrize('env,loaded,why', [
    ({}, True, 'package profile'),
    ({'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp'}, True, 'package profile'),
    ({'FASTDDS_DEFAULT_PROFILES_FILE': '/mine.xml'}, False, 'FASTDDS_DEFAULT_PROFILES_FILE is set by the user'),
    ({'FASTRTPS_DEFAULT_PROFILES_FILE': '/mine.xml'}, False, 'FASTRTPS_DEFAULT_PROFILES_FILE is set'),
    ({'FASTDDS_BUILTIN_TRANSPORTS': 'LARGE_DATA'}, False, 'FASTDDS_BUILTIN_TRANSPORTS is set'),
    ({'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}, False, 'is not Fast DDS'),
    ({'HYDRANET_DDS_PROFILE': '0'}, False, 'HYDRANET_DDS_PROFILE=0'),
])
def test_the_profile_is_used_unless_the_user_configured_dds(env, loaded, why, tmp_path):
    path, reason = transport.profile_decision(env, cwd=tmp_path)
    assert (path is not None) == loaded and why in reason
    if loaded:
        assert path.name == 'fastdds.xml' and path.is_file()


def test_the_profile_set_by_the_launch_file_is_recognised(tmp_path):
    path, why = transport.profile_decision({}, cwd=tmp_path)
    again, why_again = transport.profile_decision({'FASTDDS_DEFAULT_PROFILES_FILE': str(path)}, cwd=tmp_path)
    assert again == path and 'set by the launcher' in why_again


def test_a_default_profiles_file_in_the_working_directory_is_respected(tmp_path):
    (tmp_path / 'DEFAULT_FASTDDS_PROFILES.xml').write_text('<dds/>')
    assert transport.profile_decision({}, cwd=tmp_path)[0] is None


def test_fast_dds_loads_the_profile_without_error_and_applies_its_shared_memory_segment(tmp_path):
    """A participant created after apply_profile() has the profile's 64 MB segment (the default
    is 512 KB), and Fast DDS reports no XML error."""
    if not os.path.isdir('/dev/shm'):
        pytest.skip('no /dev/shm on this machine: Fast DDS has no shared-memory transport here')
    script = textwrap.dedent('''
        import glob, json, os, time
        from hydranet_ros.ros import transport
        if os.environ.get('USE_PROFILE') == '1':
            transport.apply_profile()
        before = set(glob.glob('/dev/shm/fastdds_*'))
        import rclpy
        rclpy.init()
        node = rclpy.create_node('profile_probe')
        time.sleep(0.5)
        new = [p for p in set(glob.glob('/dev/shm/fastdds_*')) - before if 'port' not in p]
        print(json.dumps(max((os.path.getsize(p) for p in new), default=0)))
    ''')
    env = {k: v for k, v in os.environ.items() if not k.startswith(('FASTDDS_', 'FASTRTPS_', 'HYDRANET_DDS'))}
    sizes = {}
    for use in ('1', '0'):
        proc = subprocess.run([sys.executable, '-c', script], env={**env, 'USE_PROFILE': use}, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert 'XMLPARSER' not in proc.stderr and 'Error' not in proc.stderr, proc.stderr
        sizes[use] = int(proc.stdout.strip().splitlines()[-1])
    assert sizes['1'] >= 64 * 2**20 > sizes['0'] > 0, sizes
