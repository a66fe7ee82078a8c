"""Every training config in config/ loads and validates; `base:` inheritance lays a file's
settings over its base's (tables key by key, values replaced) and refuses what makes no sense."""
from pathlib import Path

import pytest
import yaml

from hydranet_ros.training.settings import TrainConfig, merge_config, read_config

CONFIG = Path(__file__).resolve().parent.parent / 'config'
TRAINING_CONFIGS = sorted(p for p in CONFIG.glob('*.yaml') if p.stem.startswith(('train_', 'adapt_')))


def test_there_are_training_configs():
    assert len(TRAINING_CONFIGS) >= 20


@pytest.mark.parametrize('path', TRAINING_CONFIGS, ids=lambda p: p.stem)
def test_every_training_config_loads_and_validates(path):
    config = TrainConfig.load(path, check_paths=False)   # folders of data this machine lacks are not checked
    train, data = config.resolved(check_paths=False)
    assert train.output.startswith('models/') and data.input_size
    raw = yaml.safe_load(path.read_text())
    if 'base' in raw:
        assert (path.parent / raw['base']).is_file()
        # an experiment's file says only what differs from its base
        assert len(path.read_text().splitlines()) < len(yaml.safe_dump(read_config(path)).splitlines())


def test_a_delta_config_is_its_base_with_its_changes(tmp_path):
    (tmp_path / 'a.yaml').write_text(yaml.safe_dump({
        'name': 'a', 'model': {'width_mult': 0.5, 'decoder_channels': 32},
        'train': {'steps': 10, 'weights': {'segmentation': 1.0, 'depth': 2.0}, 'zoom': [1.0, 1.2]}}))
    (tmp_path / 'sub').mkdir()
    (tmp_path / 'sub' / 'b.yaml').write_text(yaml.safe_dump({
        'base': '../a.yaml', 'name': 'b', 'train': {'steps': 20, 'weights': {'depth': 3.0}, 'zoom': [1.0, 1.5]}}))
    got = read_config(tmp_path / 'sub' / 'b.yaml')
    assert got == {'name': 'b', 'model': {'width_mult': 0.5, 'decoder_channels': 32},
                   'train': {'steps': 20, 'weights': {'segmentation': 1.0, 'depth': 3.0}, 'zoom': [1.0, 1.5]}}
    assert merge_config({'x': {'y': 1}}, {'x': 5}) == {'x': 5}


def test_base_chains_that_loop_or_lead_nowhere_and_unknown_sections_are_refused(tmp_path):
    (tmp_path / 'a.yaml').write_text('base: b.yaml\nname: a\n')
    (tmp_path / 'b.yaml').write_text('base: a.yaml\nname: b\n')
    with pytest.raises(ValueError, match='loops back'):
        read_config(tmp_path / 'a.yaml')
    (tmp_path / 'c.yaml').write_text('base: nowhere.yaml\n')
    with pytest.raises(ValueError, match='no such training config .*base of'):
        read_config(tmp_path / 'c.yaml')
    (tmp_path / 'd.yaml').write_text('base: e.yaml\n')
    (tmp_path / 'e.yaml').write_text('trian: {steps: 3}\n')
    with pytest.raises(ValueError, match=r"unknown sections \['trian'\]"):
        TrainConfig.load(tmp_path / 'd.yaml')
