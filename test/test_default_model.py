"""The committed default model still meets its quality thresholds on held-out synthetic drives,
in the classic world, in the varied training style and in the held-out style it never saw.

Drives 2000-2001 (never used in training), KITTI-like and VGA cameras in turn, letterboxed into the
model's input as the node does, depth scaled for the lens in use. The thresholds come from the
values measured on these drives when the model was committed (docs/MODEL.md, model card: classic
0.556 / 0.127 / 1.86 px / 0.541, varied 0.583 / 0.167 / 2.63 px / 0.653, held-out 0.496 / 0.208 /
3.72 px / 0.445 for mIoU / AbsRel / EPE / mAP@0.5) with a small margin, so a regression shows.
The bundled model trades synthetic-world accuracy (its lane markings and poles are not learned
yet) for real frames (bench/real_frames.py); the classic-world mIoU is below the project's first
target of 0.60.
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
    'classic': {'miou': ('>=', 0.53), 'abs_rel': ('<=', 0.14), 'epe': ('<=', 2.0),
                'map50': ('>=', 0.50)},
    'varied': {'miou': ('>=', 0.56), 'abs_rel': ('<=', 0.185), 'epe': ('<=', 2.9),
               'map50': ('>=', 0.61)},
    'heldout': {'miou': ('>=', 0.47), 'abs_rel': ('<=', 0.225), 'epe': ('<=', 4.0),
                'map50': ('>=', 0.40)},
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
    assert MODEL.stat().st_size < 16 * 2 ** 20      # EfficientNet-Lite0: 3.1 M parameters, 12.2 MiB
    assert ckpt.metadata.name == 'hydranet_default'
    assert ckpt.metadata.tasks == [*TASKS, 'depth_uncertainty', 'instances']   # both heads trained after the rest


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
