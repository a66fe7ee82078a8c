"""make-bag and evaluate without ROS: bag contents, hand-computed metrics, bad input."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from hydranet_ros.bag import convert
from hydranet_ros.bag.evaluate import Options, evaluate_bag, evaluate_bags
from hydranet_ros.bag.make_bag import write_drive
from hydranet_ros.bag.storage import BagError, BagWriter, deserialize, open_reader, read_messages
from hydranet_ros.paths import SOURCE_ROOT
from rostest_util import assert_one_line_error

UPSTREAM_HASHES = SOURCE_ROOT.parent / 'shared' / 'data' / 'vision_msgs_4.1.1_type_hashes.json'


@pytest.fixture(scope='module')
def drive_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp('bags') / 'drive'
    write_drive(path, seed=4242, frames=4, size=(64, 160))
    return path


def _messages(path):
    reader = open_reader(path)
    try:
        return [(c.topic, c.msgtype, ns, deserialize(raw, c.msgtype)) for c, ns, raw in read_messages(reader)]
    finally:
        reader.close()


def test_make_bag_writes_every_topic_with_one_stamp_per_frame(drive_bag):
    msgs = _messages(drive_bag)
    by_topic = {}
    for topic, _, _, msg in msgs:
        by_topic.setdefault(topic, []).append(msg)
    assert {t: len(v) for t, v in by_topic.items()} == {
        '/camera/image_raw': 4, '/camera/camera_info': 4, '/ground_truth/segmentation': 4,
        '/ground_truth/depth': 4, '/ground_truth/flow': 3, '/ground_truth/detections': 4, '/ground_truth/instances': 4,
        '/ground_truth/segmentation/label_info': 1, '/ground_truth/detections/label_info': 1,
        '/odom': 4, '/tf_static': 1}
    stamps = [convert.stamp_ns(m.header.stamp) for m in by_topic['/camera/image_raw']]
    assert stamps == sorted(stamps) and len(set(stamps)) == 4
    odom = by_topic['/odom'][0]
    assert (odom.header.frame_id, odom.child_frame_id) == ('odom', 'base_link')
    mount = by_topic['/tf_static'][0].transforms[0]
    assert (mount.header.frame_id, mount.child_frame_id) == ('base_link', 'camera')
    assert by_topic['/camera/image_raw'][0].header.frame_id == 'camera'      # the mount ends at the images
    for topic in ('/ground_truth/segmentation', '/ground_truth/depth', '/ground_truth/detections',
                  '/ground_truth/instances', '/odom'):
        assert [convert.stamp_ns(m.header.stamp) for m in by_topic[topic]] == stamps
    flows = by_topic['/ground_truth/flow']
    assert [convert.stamp_ns(m.previous_stamp) for m in flows] == stamps[:-1]
    img = by_topic['/camera/image_raw'][0]
    assert (img.encoding, img.width, img.height, img.step) == ('rgb8', 160, 64, 480)
    depth = by_topic['/ground_truth/depth'][0]
    values = np.frombuffer(depth.data, np.float32).reshape(64, 160)
    seg = np.frombuffer(by_topic['/ground_truth/segmentation'][0].data, np.uint8).reshape(64, 160)
    sky = [c.class_id for c in by_topic['/ground_truth/segmentation/label_info'][0].class_map
           if c.class_name == 'sky'][0]
    assert np.isposinf(values[seg == sky]).all() and np.isfinite(values[seg != sky]).all()
    inst = by_topic['/ground_truth/instances'][0]
    ids = np.frombuffer(inst.data, np.uint16).reshape(64, 160)
    assert inst.encoding == 'mono16' and ids.any()
    things = [c.class_id for c in by_topic['/ground_truth/segmentation/label_info'][0].class_map
              if c.class_name in ('car', 'pedestrian')]
    assert np.isin(seg[ids > 0], things).all(), 'instances lie on car and pedestrian pixels'


def test_bag_embeds_message_definitions_with_upstream_hashes(drive_bag):
    reader = open_reader(drive_bag)
    try:
        conns = {c.topic: c for c in reader.connections}
    finally:
        reader.close()
    det = conns['/ground_truth/detections']
    assert 'vision_msgs/Detection2D[] detections' in det.msgdef.data
    from hydranet_ros.bag.types import typestore
    if UPSTREAM_HASHES.is_file():
        upstream = json.loads(UPSTREAM_HASHES.read_text())
        name = 'vision_msgs/msg/Detection2DArray'
        assert typestore().hash_rihs01(name) == upstream[name]


def test_sqlite3_storage_round_trips(tmp_path):
    write_drive(tmp_path / 'db', seed=1, frames=2, size=(32, 64), storage='sqlite3')
    assert (tmp_path / 'db' / 'db.db3').is_file()
    assert len([m for m in _messages(tmp_path / 'db') if m[0] == '/camera/image_raw']) == 2


def _with_predictions(src, dst, transform):
    """Copy a ground-truth bag and add /hydranet outputs made from the ground truth by transform."""
    with BagWriter(dst) as out:
        for topic, msgtype, ns, msg in _messages(src):
            out.write(topic, ns, msg)
            pred = transform(topic, msg)
            if pred is not None:
                out.write(topic.replace('/ground_truth', '/hydranet'), ns, pred)


def _perfect(topic, msg):
    return msg if topic.startswith('/ground_truth') else None


def test_evaluate_scores_perfect_outputs_as_perfect(drive_bag, tmp_path):
    _with_predictions(drive_bag, tmp_path / 'perfect', _perfect)
    s = evaluate_bag(tmp_path / 'perfect', Options()).summary()
    assert s['segmentation']['miou'] == pytest.approx(1.0)
    assert s['depth']['abs_rel'] == pytest.approx(0.0, abs=1e-9)
    assert s['flow']['epe'] == pytest.approx(0.0, abs=1e-9)
    assert s['detection']['map50'] == pytest.approx(1.0)
    assert s['instances']['pq'] == pytest.approx(1.0)
    assert s['scored_frames'] == {'segmentation': 4, 'depth': 4, 'flow': 3, 'detection': 4, 'instances': 4}
    assert not any(s['missing_outputs'].values())


def test_evaluate_hand_computed_errors(drive_bag, tmp_path):
    """Depth 10% too far -> AbsRel 0.1; flow off by (3, 4) px -> EPE 5; one frame's segmentation
    output missing -> counted missing, not scored."""
    seen = {'seg': 0}

    def perturb(topic, msg):
        if topic == '/ground_truth/depth':
            d = np.frombuffer(msg.data, np.float32).reshape(msg.height, msg.width)
            return convert.image(msg.header, d * np.float32(1.1), '32FC1')
        if topic == '/ground_truth/flow':
            f = np.frombuffer(msg.flow.data, np.float32).reshape(msg.flow.height, msg.flow.width, 2)
            return convert.optical_flow(msg.header, convert.stamp_ns(msg.previous_stamp), f + np.float32([3, 4]))
        if topic == '/ground_truth/segmentation':
            seen['seg'] += 1
            return None if seen['seg'] == 2 else msg
        return _perfect(topic, msg)
    _with_predictions(drive_bag, tmp_path / 'off', perturb)
    # A range wide enough that no prediction is clipped (clipping to the range would lower AbsRel).
    s = evaluate_bag(tmp_path / 'off', Options(depth_range=(0.5, 1000.0))).summary()
    assert s['depth']['abs_rel'] == pytest.approx(0.1, rel=1e-4)
    assert s['flow']['epe'] == pytest.approx(5.0, rel=1e-4)
    assert s['missing_outputs']['segmentation'] == 1 and s['scored_frames']['segmentation'] == 3
    assert s['scored_frames']['instances'] == 3, 'an instance output without its segmentation has no classes'


def test_evaluate_panoptic_quality_of_merged_and_split_instances(drive_bag, tmp_path):
    """Every instance merged into one id: at most one match per class and the rest missed, so PQ
    falls; ids renumbered only: PQ stays 1 (ids are arbitrary)."""
    def merged(topic, msg):
        if topic == '/ground_truth/instances':
            ids = np.frombuffer(msg.data, np.uint16).reshape(msg.height, msg.width)
            return convert.image(msg.header, (ids > 0).astype(np.uint16) * 7, 'mono16')
        return _perfect(topic, msg)

    def renumbered(topic, msg):
        if topic == '/ground_truth/instances':
            ids = np.frombuffer(msg.data, np.uint16).reshape(msg.height, msg.width)
            return convert.image(msg.header, np.where(ids > 0, 1000 - ids, 0).astype(np.uint16), 'mono16')
        return _perfect(topic, msg)
    _with_predictions(drive_bag, tmp_path / 'merged', merged)
    _with_predictions(drive_bag, tmp_path / 'renumbered', renumbered)
    renum = evaluate_bag(tmp_path / 'renumbered', Options()).summary()['instances']
    assert renum['pq'] == pytest.approx(1.0)
    alone = evaluate_bag(tmp_path / 'merged', Options()).summary()['instances']
    assert alone['pq'] < 0.6 and alone['car']['fn'] > 0
    both = evaluate_bags([tmp_path / 'merged', tmp_path / 'renumbered'], Options(), jobs=2).summary()['instances']
    for count in ('tp', 'fp', 'fn'):
        assert both['car'][count] == alone['car'][count] + renum['car'][count], 'bags scored apart add up'


def test_evaluate_cli_writes_json_and_report_and_aggregates_bags_in_parallel(drive_bag, tmp_path):
    folder = tmp_path / 'many'
    folder.mkdir()
    _with_predictions(drive_bag, folder / 'a', _perfect)
    _with_predictions(drive_bag, folder / 'b', _perfect)
    out = tmp_path / 'eval'
    proc = subprocess.run([sys.executable, '-m', 'hydranet_ros.bag.evaluate', str(folder), '-o', str(out), '-j', '2'],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / 'metrics.json').read_text())
    assert summary['frames'] == 8 and len(summary['bags']) == 2
    assert summary['segmentation']['miou'] == pytest.approx(1.0)
    for name in ('report.html', 'segmentation_iou.png', 'segmentation_confusion.png', 'depth_error.png',
                 'flow_epe_map.png', 'detection_pr.png'):
        assert (out / name).stat().st_size > 1000, name
    assert 'segmentation mIoU' in proc.stdout


def test_evaluate_fail_under_exits_nonzero(drive_bag, tmp_path):
    _with_predictions(drive_bag, tmp_path / 'p', _perfect)
    run = lambda t: subprocess.run([sys.executable, '-m', 'hydranet_ros.bag.evaluate', str(tmp_path / 'p'),  # noqa: E731
                                    '--no-report', '--fail-under', t], capture_output=True, text=True, timeout=120)
    assert run('miou=0.99,epe=0.01').returncode == 0
    bad = run('miou=1.5')
    assert bad.returncode == 1 and 'miou' in bad.stderr


def test_offline_mode_runs_a_checkpoint_on_the_bag(drive_bag):
    from hydranet_ros.model.registry import weights
    s = evaluate_bags([drive_bag], Options(offline_model=str(weights().path()))).summary()
    assert s['scored_frames'] == {'segmentation': 4, 'depth': 4, 'flow': 3, 'detection': 4, 'instances': 4}
    assert 0.0 <= s['instances']['pq'] < 1.0
    assert 0.3 < s['segmentation']['miou'] < 1.0 and 0.0 < s['depth']['abs_rel'] < 0.5


def test_offline_model_with_other_classes_is_refused(drive_bag, tiny_checkpoint):
    with pytest.raises(BagError, match='classes differ'):
        evaluate_bags([drive_bag], Options(offline_model=str(tiny_checkpoint)))


def _cli(module, *args):
    return subprocess.run([sys.executable, '-m', module, *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def _assert_clean_error(proc, words):
    assert_one_line_error(proc.returncode, proc.stderr, words)


def test_bad_bags_get_one_line_errors(drive_bag, tmp_path):
    ev = 'hydranet_ros.bag.evaluate'
    _assert_clean_error(_cli(ev, tmp_path / 'missing'), ['no bag'])
    (tmp_path / 'plain').mkdir()
    _assert_clean_error(_cli(ev, tmp_path / 'plain'), ['not a rosbag2 bag'])
    corrupt = tmp_path / 'corrupt'
    shutil.copytree(drive_bag, corrupt)
    (corrupt / 'metadata.yaml').write_text('rosbag2_bagfile_information: [unclosed\n')
    _assert_clean_error(_cli(ev, corrupt), ['cannot read bag'])
    truncated = tmp_path / 'truncated'
    shutil.copytree(drive_bag, truncated)
    data = next(truncated.glob('*.mcap'))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    _assert_clean_error(_cli(ev, truncated, '--offline'), [str(truncated)])
    unknown = tmp_path / 'unknown_storage'
    shutil.copytree(drive_bag, unknown)
    meta = unknown / 'metadata.yaml'
    meta.write_text(meta.read_text().replace('storage_identifier: mcap', 'storage_identifier: rocksdb'))
    _assert_clean_error(_cli(ev, unknown), ['cannot read bag'])
    _assert_clean_error(_cli('hydranet_ros.bag.make_bag', tmp_path / 'x', '--storage', 'rocksdb'),
                        ['unknown storage id'])
    _assert_clean_error(_cli('hydranet_ros.bag.make_bag', drive_bag), ['already exists'])


def test_bag_without_ground_truth_or_outputs_is_refused(tmp_path):
    write_drive(tmp_path / 'camera_only', seed=3, frames=2, size=(32, 64), ground_truth=False)
    _assert_clean_error(_cli('hydranet_ros.bag.evaluate', tmp_path / 'camera_only'), ['no ground truth'])
    write_drive(tmp_path / 'gt_only', seed=3, frames=2, size=(32, 64))
    _assert_clean_error(_cli('hydranet_ros.bag.evaluate', tmp_path / 'gt_only'), ['no outputs of the node'])
    with pytest.raises(BagError, match='no ground truth'):
        evaluate_bag(tmp_path / 'camera_only', Options())


def test_ground_truth_from_a_second_bag(drive_bag, tmp_path):
    """Outputs recorded alone, ground truth in the bag that was played: --ground-truth joins them."""
    with BagWriter(tmp_path / 'outputs') as out:
        for topic, _, ns, msg in _messages(drive_bag):
            if topic.startswith('/ground_truth') and 'label_info' not in topic:
                out.write(topic.replace('/ground_truth', '/hydranet'), ns, msg)
    s = evaluate_bags([tmp_path / 'outputs'], Options(), ground_truth_bag=drive_bag).summary()
    assert s['segmentation']['miou'] == pytest.approx(1.0) and s['scored_frames']['flow'] == 3


def test_ground_truth_bag_for_a_folder_of_output_bags_in_parallel(drive_bag, tmp_path):
    """Regression: a folder of output bags with --ground-truth under the default -j 2 failed (the
    guard looked at the raw arguments, and the parallel jobs dropped the ground-truth bag)."""
    folder = tmp_path / 'runs'
    folder.mkdir()
    for run in ('a', 'b'):
        with BagWriter(folder / run) as out:
            for topic, _, ns, msg in _messages(drive_bag):
                if topic.startswith('/ground_truth') and 'label_info' not in topic:
                    out.write(topic.replace('/ground_truth', '/hydranet'), ns, msg)
    out = tmp_path / 'eval'
    proc = subprocess.run([sys.executable, '-m', 'hydranet_ros.bag.evaluate', str(folder), '--ground-truth',
                           str(drive_bag), '-o', str(out), '--no-report'], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / 'metrics.json').read_text())
    sequential = evaluate_bags(sorted(folder.iterdir()), Options(), jobs=1, ground_truth_bag=drive_bag).summary()
    assert summary['scored_frames'] == sequential['scored_frames']
    assert summary['scored_frames']['flow'] == 2 * 3 and summary['segmentation']['miou'] == pytest.approx(1.0)


def test_matcher_lets_go_of_ground_truth_whose_output_never_comes():
    """Regression: the ground truth of every frame the node dropped was kept until the end."""
    from hydranet_ros.bag.evaluate import Scores
    from hydranet_ros.bag.matching import Matcher
    from hydranet_ros.metrics import DepthMetric
    scores = Scores(bags=['x'])
    scores.depth = DepthMetric()
    matcher = Matcher(scores, ['depth'], Options())
    depth = np.full((4, 6), 10.0, np.float32)
    largest = 0
    for stamp in range(1, 101):
        matcher.inputs.add(stamp)
        matcher.add_ground_truth(stamp, 'depth', depth)
        if stamp % 3 == 0:                   # the node answered every third frame only
            matcher.add_prediction(stamp, 'depth', depth)
        largest = max(largest, len(matcher.pending))
    matcher.finish()
    assert largest <= 3, f'{largest} frames held'
    assert scores.scored['depth'] == 33 and scores.missing['depth'] == 67


def test_report_and_evaluate_do_not_import_each_other():
    """The report draws Scores; it needs neither the evaluator nor its readers."""
    code = ('import sys, hydranet_ros.bag.report; '
            'print("hydranet_ros.bag.evaluate" in sys.modules)')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == 'False', out.stderr


def test_offline_model_that_is_not_its_pinned_file_is_refused(drive_bag):
    from hydranet_ros.model.registry import weights
    with pytest.raises(BagError, match='cannot load .*sha256'):
        evaluate_bags([drive_bag], Options(offline_model=str(weights().path()), offline_sha256='0' * 64))
