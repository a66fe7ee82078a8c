"""record and play over real DDS, as separate processes, the way users run them."""
import signal
import subprocess
import sys
import time

import pytest
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from hydranet_ros.bag import convert
from hydranet_ros.bag.make_bag import write_drive
from hydranet_ros.bag.storage import deserialize, open_reader, read_messages
from node_harness import RELIABLE
from rostest_util import assert_one_line_error, spin_until


def _start(module, *args):
    return subprocess.Popen([sys.executable, '-m', module, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _read(path):
    reader = open_reader(path)
    try:
        return [(c.topic, ns, deserialize(raw, c.msgtype)) for c, ns, raw in read_messages(reader)]
    finally:
        reader.close()


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM, 'SIGINT twice'])
def test_record_loses_nothing_and_leaves_a_readable_bag_when_signalled(ros_node, tmp_path, sig):
    """'SIGINT twice': Ctrl-C under ros2 launch reaches the recorder from the terminal and from launch."""
    n = 300
    pub = ros_node.create_publisher(String, '/chatter', RELIABLE)
    rec = _start('hydranet_ros.ros.bag_record', tmp_path / 'bag', '/chatter')
    try:
        assert spin_until(ros_node, lambda: pub.get_subscription_count() > 0, timeout_s=30), "recorder never subscribed"
        time.sleep(0.3)
        for i in range(n):
            pub.publish(String(data=f'message {i}'))
            if i % 50 == 0:
                ros_node.executor_for_test.spin_once(timeout_sec=0)
        assert pub.wait_for_all_acked()
        time.sleep(0.5)
    finally:
        rec.send_signal(signal.SIGINT if sig == 'SIGINT twice' else sig)
        if sig == 'SIGINT twice':
            time.sleep(0.2)
            rec.send_signal(signal.SIGINT)
        out, err = rec.communicate(timeout=30)
    assert rec.returncode == 0, err
    msgs = [m for t, _, m in _read(tmp_path / 'bag') if t == '/chatter']
    assert [m.data for m in msgs] == [f'message {i}' for i in range(n)]
    assert f'/chatter  {n}' in out


def test_record_regex_picks_up_topics_that_appear_later(ros_node, tmp_path):
    rec = _start('hydranet_ros.ros.bag_record', tmp_path / 'bag', '--regex', '^/late/')
    try:
        time.sleep(1.0)
        pub = ros_node.create_publisher(String, '/late/topic', RELIABLE)
        other = ros_node.create_publisher(String, '/not_recorded', RELIABLE)
        assert spin_until(ros_node, lambda: pub.get_subscription_count() > 0, timeout_s=30)
        time.sleep(0.3)
        for i in range(5):
            pub.publish(String(data=str(i)))
            other.publish(String(data=str(i)))
        assert pub.wait_for_all_acked()
    finally:
        rec.send_signal(signal.SIGINT)
        rec.communicate(timeout=30)
    topics = [t for t, _, _ in _read(tmp_path / 'bag')]
    assert topics == ['/late/topic'] * 5


@pytest.fixture(scope='module')
def small_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp('play') / 'drive'
    write_drive(path, seed=7, frames=5, size=(32, 64), dt=0.2)
    return path


def test_play_publishes_every_message_with_its_stamps_remapped_and_timed(ros_node, small_bag):
    got, infos, clock = [], [], []
    ros_node.create_subscription(Image, '/replayed/image', got.append, RELIABLE)
    ros_node.create_subscription(CameraInfo, '/camera/camera_info', infos.append, RELIABLE)
    ros_node.create_subscription(Clock, '/clock', clock.append, 100)
    player = _start('hydranet_ros.ros.bag_play', small_bag, '--remap', '/camera/image_raw:=/replayed/image',
                    '--topics', '/camera/image_raw', '/camera/camera_info', '--rate', '2', '--clock', '50',
                    '--wait-for-subscribers', '20')
    arrivals = []
    assert spin_until(ros_node, lambda: (arrivals.append((len(got), time.monotonic())), len(got) == 5)[1],
                      timeout_s=60), f"received {len(got)} of 5 images"
    assert spin_until(ros_node, lambda: len(infos) == 5, timeout_s=30), f'received {len(infos)} of 5 camera_infos'
    out, err = player.communicate(timeout=30)
    assert player.returncode == 0, err
    expected = [convert.stamp_ns(m.header.stamp) for t, _, m in _read(small_bag) if t == '/camera/image_raw']
    assert [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in got] == expected
    # 5 frames 0.2 s apart at rate 2: 0.4 s from first to last (not all at once, not at rate 1).
    first = next(t for n, t in arrivals if n >= 1)
    last = next(t for n, t in arrivals if n >= 5)
    assert 0.25 < last - first < 1.5, last - first
    assert clock and clock[-1].clock.sec * 10**9 + clock[-1].clock.nanosec >= expected[-1] - 10**8


def test_play_loop_repeats_until_interrupted(ros_node, small_bag):
    got = []
    ros_node.create_subscription(Image, '/camera/image_raw', got.append, RELIABLE)
    player = _start('hydranet_ros.ros.bag_play', small_bag, '--loop', '--rate', '10', '--topics', '/camera/image_raw',
                    '--wait-for-subscribers', '20')
    try:
        assert spin_until(ros_node, lambda: len(got) >= 12, timeout_s=60), len(got)
    finally:
        player.send_signal(signal.SIGINT)
        player.communicate(timeout=30)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in got]
    assert stamps[5:10] == stamps[:5]     # the second pass repeats the first


def _assert_clean_error(proc, words):
    _, err = proc.communicate(timeout=60)
    assert_one_line_error(proc.returncode, err, words)


def test_play_and_record_refuse_bad_input_in_one_line(small_bag, tmp_path):
    _assert_clean_error(_start('hydranet_ros.ros.bag_play', tmp_path / 'nothing'), ['no bag'])
    _assert_clean_error(_start('hydranet_ros.ros.bag_play', small_bag, '--topics', '/absent'),
                        ['topics not in the bag', '/absent'])
    _assert_clean_error(_start('hydranet_ros.ros.bag_record', small_bag, '/x'), ['already exists'])
    _assert_clean_error(_start('hydranet_ros.ros.bag_record', tmp_path / 'n', '/x', '--storage', 'rocksdb'),
                        ['unknown storage id'])


def test_recorder_killed_without_warning_leaves_a_bag_reindex_makes_readable(ros_node, tmp_path):
    n = 120
    pub = ros_node.create_publisher(String, '/chatter', RELIABLE)
    rec = _start('hydranet_ros.ros.bag_record', tmp_path / 'bag', '/chatter')
    try:
        assert spin_until(ros_node, lambda: pub.get_subscription_count() > 0, timeout_s=30)
        time.sleep(0.3)
        for i in range(n):
            pub.publish(String(data=f'm{i}'))
        assert pub.wait_for_all_acked()
        time.sleep(2.5)      # the recorder flushes once a second
    finally:
        rec.kill()           # SIGKILL: no chance to close the bag
        rec.communicate(timeout=30)
    assert not (tmp_path / 'bag' / 'metadata.yaml').exists()
    _assert_clean_error(_start('hydranet_ros.bag.evaluate', tmp_path / 'bag'), ['record --reindex'])
    fix = _start('hydranet_ros.ros.bag_record', tmp_path / 'bag', '--reindex')
    out, err = fix.communicate(timeout=60)
    assert fix.returncode == 0, err
    assert [m.data for t, _, m in _read(tmp_path / 'bag') if t == '/chatter'] == [f'm{i}' for i in range(n)]
    assert (tmp_path / 'bag.broken').is_dir()


def test_play_skips_topics_whose_type_is_not_installed_unless_asked_for_by_name(ros_node, small_bag):
    import importlib.util
    if importlib.util.find_spec('tf2_msgs') is not None:
        pytest.skip('tf2_msgs is installed here: /tf_static plays, there is nothing to skip')
    got = []
    ros_node.create_subscription(Image, '/camera/image_raw', got.append, RELIABLE)
    player = _start('hydranet_ros.ros.bag_play', small_bag, '--rate', '5', '--wait-for-subscribers', '20')
    assert spin_until(ros_node, lambda: len(got) == 5, timeout_s=60), f'received {len(got)} of 5 images'
    _, err = player.communicate(timeout=30)
    assert player.returncode == 0, err
    assert 'skipping /tf_static' in err               # as ros2 bag play: warned, the rest played
    _assert_clean_error(_start('hydranet_ros.ros.bag_play', small_bag, '--topics', '/tf_static'),
                        ['cannot play /tf_static', 'not installed'])
