"""The committed default model still meets its quality thresholds on held-out synthetic drives,
in the classic world, in the varied training style and in the held-out style it never saw.

Drives 2000-2001 (never used in training), KITTI-like and VGA cameras in turn, letterboxed into the
model's input as the node does, depth scaled for the lens in use. The thresholds come from the
values measured on these drives when the model was committed (docs/MODEL.md, model card: classic
0.706 / 0.117 / 1.51 px / 0.660, varied 0.693 / 0.197 / 3.41 px / 0.631, held-out 0.574 / 0.190 /
3.61 px / 0.314 for mIoU / AbsRel / EPE / mAP@0.5) with a small margin; in the classic world they
are stricter than the project's targets (mIoU >= 0.60, AbsRel <= 0.15, EPE <= 2.0 px, mAP@0.5 >=
0.50), elsewhere they hold the measured level so a regression shows.
"""
import json

import pytest

from hydranet_ros import TASKS
from hydranet_ros.model.registry import weights
from hydranet_ros.training.datasets import SyntheticDataset
from hydranet_ros.training.evaluation import evaluate, headline, main
from hydranet_ros.world.camera import checkpoint_focal_px

MODEL = weights().path()
HELD_OUT_SEEDS = [2000, 2001]          # never used in training (training seeds 0-179, validation 1000-1001)
THRESHOLDS = {
    'classic': {'miou': ('>=', 0.69), 'abs_rel': ('<=', 0.125), 'epe': ('<=', 2.0),
                'map50': ('>=', 0.62)},
    'varied': {'miou': ('>=', 0.67), 'abs_rel': ('<=', 0.215), 'epe': ('<=', 3.7),
               'map50': ('>=', 0.60)},
    'heldout': {'miou': ('>=', 0.55), 'abs_rel': ('<=', 0.205), 'epe': ('<=', 3.9),
                'map50': ('>=', 0.28)},
}


@pytest.fixture(scope='module')
def measured():
    ckpt = weights().load()          # checked against the registry's sha256 pin
    meta = ckpt.metadata
    out = {}
    for style in THRESHOLDS:
        data = SyntheticDataset(HELD_OUT_SEEDS, 12, meta.input_size, 'kitti', meta.config.num_detection_classes,
                                style=style, cameras=['kitti', 'vga'], letterbox=True,
                                training_focal_px=checkpoint_focal_px(meta), normalise_depth=False)
        out[style] = headline(evaluate(ckpt.model, data, TASKS))
    return out


@pytest.mark.parametrize('style,metric', [(s, m) for s in THRESHOLDS for m in THRESHOLDS[s]])
def test_default_model_quality(measured, style, metric):
    op, bound = THRESHOLDS[style][metric]
    value = measured[style][metric]
    assert (value >= bound) if op == '>=' else (value <= bound), f'{style} {metric} = {value:.3f}, needs {op} {bound}'


def test_default_model_is_small_and_named():
    ckpt = weights().load()          # checked against the registry's sha256 pin
    assert MODEL.stat().st_size < 8 * 2 ** 20
    assert ckpt.metadata.name == 'hydranet_default'
    assert set(ckpt.metadata.tasks) == set(TASKS)


def test_model_card_cli_reports_each_seed_group(tmp_path, capsys):
    out = tmp_path / 'card.json'
    assert main(['--checkpoint', str(MODEL), '--seeds', '2000', '--seeds', '2001', '--frames', '2',
                 '--per-class', '--json', str(out)]) == 0
    results = json.loads(out.read_text())['results']
    assert [r['seeds'] for r in results] == [[2000], [2001]] and all(r['frames'] == 2 for r in results)
    assert all(0 <= r['miou'] <= 1 and r['epe'] >= 0 for r in results)
    printed = capsys.readouterr().out
    assert 'classic seeds 2000-2000 (2 frames, kitti)' in printed
    assert 'IoU road ' in printed and 'AP@0.5 car ' in printed and ' pedestrian ' in printed
    assert main(['--checkpoint', str(tmp_path / 'nope.pt'), '--seeds', '2000']) == 2
    assert main(['--checkpoint', str(MODEL), '--seeds', '20x0']) == 2
    assert main(['--checkpoint', str(MODEL), '--seeds', '2005-2001']) == 2
