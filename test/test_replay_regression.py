"""Replay the sample drive through the running node over real DDS, record, evaluate.

The node is its own process (`perception_main --autostart`, bundled model); this process plays
the bag and records the outputs with the ground truth. Every input frame must give exactly one
message per enabled output, with the input's header, and the metrics must meet the thresholds
written in docs/MODEL.md ("Replay regression test").
"""
import re

import pytest

from hydranet_ros.bag import convert
from hydranet_ros.bag.evaluate import Options, check_thresholds, evaluate_bag
from hydranet_ros.bag.make_bag import write_drive
from hydranet_ros.bag.storage import deserialize, open_reader, read_messages
from hydranet_ros.model.registry import weights
from hydranet_ros.paths import SOURCE_ROOT
from hydranet_ros.ros.replay import replay

FRAMES = 12
NAMES = {'mIoU': 'miou', 'depth AbsRel': 'abs_rel', 'flow EPE (px)': 'epe', 'detection mAP@0.5': 'map50'}


def model_card_thresholds() -> dict:
    text = (SOURCE_ROOT / 'docs' / 'MODEL.md').read_text()
    section = text.split('## Replay regression test', 1)[1].split('\n## ', 1)[0]
    found = {}
    for name, key in NAMES.items():
        m = re.search(rf'^\| {re.escape(name)} \| [^|]+ \| (>=|<=) ([0-9.]+) \|', section, re.M)
        assert m, f'docs/MODEL.md has no replay threshold row for {name}'
        found[key] = float(m.group(2))
    return found


@pytest.fixture(scope='module')
def replayed(tmp_path_factory):
    root = tmp_path_factory.mktemp('replay')
    bag = root / 'sample'
    write_drive(bag, seed=4242, frames=FRAMES, size=(128, 416))
    counts = replay(bag, root / 'recorded', weights().path(), rate=0.25, node_log=root / 'node.log')
    return root / 'recorded', counts, root / 'node.log'


def test_every_frame_gives_exactly_one_message_per_output_with_its_header(replayed):
    recorded, counts, log = replayed
    expected = {'segmentation': FRAMES, 'depth': FRAMES, 'detections': FRAMES, 'stats': FRAMES,
                'flow': FRAMES - 1, 'camera_info': FRAMES}
    got = {k: counts.get(f'/hydranet/{k}', 0) for k in expected}
    assert got == expected, f'outputs per topic {got} (node log: {log})'
    reader = open_reader(recorded)
    stamps = {}
    try:
        for conn, _, raw in read_messages(reader):
            msg = deserialize(raw, conn.msgtype)
            if hasattr(msg, 'header'):
                stamps.setdefault(conn.topic, []).append((convert.stamp_ns(msg.header.stamp), msg.header.frame_id))
    finally:
        reader.close()
    inputs = sorted(stamps['/camera/image_raw'])
    for topic in ('segmentation', 'depth', 'detections', 'stats'):
        assert sorted(stamps[f'/hydranet/{topic}']) == inputs, topic
    assert sorted(stamps['/hydranet/flow']) == inputs[1:]


def test_metrics_meet_the_model_card_thresholds(replayed):
    recorded, _, _ = replayed
    summary = evaluate_bag(recorded, Options()).summary()
    assert summary['scored_frames'] == {'segmentation': FRAMES, 'depth': FRAMES, 'detection': FRAMES,
                                        'flow': FRAMES - 1, 'instances': FRAMES}
    assert summary['instances']['car']['tp'] > 0, 'the node\'s instances match the drive\'s cars'
    failures = check_thresholds(summary, model_card_thresholds())
    assert not failures, failures
