"""Checkpoints: round trip, metadata, every refusal with a clear reason, no code execution."""
import io
import os
import pickle
import zipfile

import pytest
import torch

from hydranet_ros.model import HydraNet, HydraNetConfig
from hydranet_ros.model.checkpoint import (FORMAT, FORMAT_VERSION, CheckpointError,
                                           CheckpointMetadata, load_checkpoint, save_checkpoint)

SMALL = HydraNetConfig(width_mult=0.35, decoder_channels=16, num_classes=3, num_detection_classes=2)


def _metadata(**kw):
    base = dict(architecture=SMALL.to_dict(),
                segmentation_classes=[{'name': n, 'color': c} for n, c in
                                      [('road', [128, 64, 128]), ('car', [0, 0, 142]), ('sky', [70, 130, 180])]],
                detection_classes=['car', 'pedestrian'], input_size=[64, 96], name='tiny',
                training={'steps': 3, 'loss': 1.25})
    base.update(kw)
    return CheckpointMetadata(**base)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = HydraNet(SMALL).eval()
    path = tmp_path / 'tiny.pt'
    sha = save_checkpoint(path, model, _metadata())
    return model, path, sha


def test_round_trip_restores_weights_and_metadata(saved):
    model, path, sha = saved
    loaded = load_checkpoint(path)
    assert loaded.sha256 == sha and loaded.model_id == f'tiny@{sha[:12]}'
    assert loaded.metadata.to_dict() == _metadata().to_dict()
    assert loaded.metadata.depth_range == [SMALL.depth_min, SMALL.depth_max]
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        a, b = model(x, ['segmentation', 'depth']), loaded.model(x, ['segmentation', 'depth'])
    assert torch.equal(a['segmentation'], b['segmentation']) and torch.equal(a['depth'], b['depth'])


def test_sha256_pin(saved):
    _, path, sha = saved
    assert load_checkpoint(path, expected_sha256=sha.upper()).sha256 == sha
    with pytest.raises(CheckpointError, match='does not match the pinned'):
        load_checkpoint(path, expected_sha256='0' * 64)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        load_checkpoint(tmp_path / 'nope.pt')


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / 'junk.pt'
    junk.write_bytes(b'this is not a checkpoint\n' * 10)
    with pytest.raises(CheckpointError, match='not a hydranet_ros checkpoint'):
        load_checkpoint(junk)
    plain = tmp_path / 'plain.pt'
    torch.save({'weights': torch.zeros(3)}, plain)
    with pytest.raises(CheckpointError, match='no "hydranet_ros.checkpoint" marker'):
        load_checkpoint(plain)


def test_architecture_mismatch_lists_keys(tmp_path, saved):
    _, path, _ = saved
    payload = torch.load(path, weights_only=True)
    state = payload['state_dict']
    del state['heads.depth.head.1.weight']
    state['heads.normals.weight'] = torch.zeros(1)
    state['heads.segmentation.head.1.weight'] = torch.zeros(7, 16, 1, 1)
    bad = tmp_path / 'bad.pt'
    torch.save(payload, bad)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(bad)
    text = str(err.value)
    assert 'architecture mismatch' in text
    assert 'missing keys [heads.depth.head.1.weight]' in text
    assert 'unexpected keys [heads.normals.weight]' in text
    assert 'heads.segmentation.head.1.weight: checkpoint (7, 16, 1, 1)' in text


def test_newer_format_version_is_refused(tmp_path, saved):
    _, path, _ = saved
    payload = torch.load(path, weights_only=True)
    payload['format_version'] = FORMAT_VERSION + 1
    newer = tmp_path / 'newer.pt'
    torch.save(payload, newer)
    with pytest.raises(CheckpointError, match='newer than this hydranet_ros supports'):
        load_checkpoint(newer)


def test_inconsistent_metadata_is_refused():
    with pytest.raises(CheckpointError, match='segmentation classes named'):
        _metadata(segmentation_classes=[{'name': 'road', 'color': [0, 0, 0]}])
    with pytest.raises(CheckpointError, match='multiples of 32'):
        _metadata(input_size=[60, 96])


class _Payload:
    """Unpickling this runs os.system: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pt'
    # A real torch zip checkpoint whose pickle carries the payload next to plausible content.
    torch.save({'format': FORMAT, 'format_version': 1, 'metadata': _Payload(marker),
                'state_dict': {}}, evil)
    with pytest.raises(CheckpointError, match='must never execute code'):
        load_checkpoint(evil)
    assert not marker.exists()
    # The payload is live: plain pickle would have run it (proves the test can fail).
    with zipfile.ZipFile(evil) as zf:
        name = next(n for n in zf.namelist() if n.endswith('data.pkl'))
        raw = zf.read(name)
    pickle.load(io.BytesIO(raw))
    assert marker.exists()


# --- known weights (model.registry) ---------------------------------------------------------------
def test_known_weights_resolve_by_name_or_path_and_the_pin_matches_the_file(tmp_path):
    import hashlib
    from hydranet_ros.model import registry
    default = registry.weights()
    assert default.path().is_file()
    assert hashlib.sha256(default.path().read_bytes()).hexdigest() == default.sha256, \
        'models/hydranet_default.pt changed: update its sha256 in hydranet_ros/model/registry.py'
    assert registry.resolve(None) == registry.resolve('') == registry.resolve('hydranet_default') \
        == (default.path(), default.sha256)
    assert registry.resolve(tmp_path / 'mine.pt') == (tmp_path / 'mine.pt', None)
    assert registry.resolve('hydranet_default', 'ab' * 32)[1] == 'ab' * 32      # an explicit pin wins
    with pytest.raises(KeyError, match='known:'):
        registry.weights('nope')


def test_known_weights_refuse_a_file_that_is_not_the_pinned_one(tmp_path, monkeypatch):
    import shutil
    from hydranet_ros.model import registry
    from hydranet_ros.model.checkpoint import CheckpointError
    fake = tmp_path / 'models'
    fake.mkdir()
    shutil.copy(registry.weights().path(), fake / 'hydranet_default.pt')
    with open(fake / 'hydranet_default.pt', 'ab') as f:
        f.write(b'\0')                                   # same name, other bytes
    monkeypatch.setattr(registry, 'installed_or_source', lambda folder, name: fake / name)
    with pytest.raises(CheckpointError, match="sha256"):
        registry.weights().load()


def test_a_synthetic_checkpoint_from_before_the_focal_length_was_recorded_still_has_one():
    from hydranet_ros.model import HydraNetConfig
    from hydranet_ros.model.checkpoint import CheckpointMetadata
    from hydranet_ros.world.camera import checkpoint_focal_px
    old = CheckpointMetadata(architecture=HydraNetConfig().to_dict(),
                             training={'data': {'type': 'synthetic', 'camera': 'kitti', 'input_size': [128, 416]}})
    assert old.training_focal_px() is None
    assert checkpoint_focal_px(old) == pytest.approx(721.5377 * 416 / 1242, rel=1e-4)
    real = CheckpointMetadata(architecture=HydraNetConfig().to_dict(), training={'data': {'type': 'kitti_raw'}})
    assert checkpoint_focal_px(real) is None
    recorded = CheckpointMetadata(architecture=HydraNetConfig().to_dict(), camera_focal_px=300.0)
    assert checkpoint_focal_px(recorded) == 300.0


def test_one_rule_for_a_network_input_size():
    from hydranet_ros.model.hydranet import is_network_input_size
    assert is_network_input_size([192, 448]) and is_network_input_size((32, 32))
    for bad in ([192], [190, 448], [0, 448], [16, 32], ['a', 32], None):
        assert not is_network_input_size(bad), bad
