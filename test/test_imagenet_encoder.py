"""ImageNet MobileNetV2 weights in torchvision's published layout start the encoder.

The state dict is built here with torchvision's exact key names and shapes (torchvision itself
is not installed), and the reference features are computed from those tensors by a functional
MobileNetV2 written in this test, independent of the package's modules."""
import pytest
import torch
import torch.nn.functional as F

from hydranet_ros.model import HydraNet, HydraNetConfig
from hydranet_ros.model.imagenet import EncoderWeightsError, load_encoder_weights

SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def _bn(sd, prefix, c, g):
    sd[f'{prefix}.weight'] = torch.rand(c, generator=g) + 0.5
    sd[f'{prefix}.bias'] = torch.randn(c, generator=g) * 0.1
    sd[f'{prefix}.running_mean'] = torch.randn(c, generator=g) * 0.1
    sd[f'{prefix}.running_var'] = torch.rand(c, generator=g) + 0.5
    sd[f'{prefix}.num_batches_tracked'] = torch.tensor(1000)


def torchvision_state_dict(seed=0):
    """Keys and shapes of torchvision.models.mobilenet_v2().state_dict(), random values."""
    g = torch.Generator().manual_seed(seed)
    sd = {'features.0.0.weight': torch.randn(32, 3, 3, 3, generator=g) * 0.2}
    _bn(sd, 'features.0.1', 32, g)
    cin, i = 32, 1
    for t, c, n, _ in SETTING:
        for _ in range(n):
            hidden = cin * t
            p = f'features.{i}.conv'
            if t == 1:
                sd[f'{p}.0.0.weight'] = torch.randn(hidden, 1, 3, 3, generator=g) * 0.3
                _bn(sd, f'{p}.0.1', hidden, g)
                sd[f'{p}.1.weight'] = torch.randn(c, hidden, 1, 1, generator=g) * (2 / hidden) ** 0.5
                _bn(sd, f'{p}.2', c, g)
            else:
                sd[f'{p}.0.0.weight'] = torch.randn(hidden, cin, 1, 1, generator=g) * (2 / cin) ** 0.5
                _bn(sd, f'{p}.0.1', hidden, g)
                sd[f'{p}.1.0.weight'] = torch.randn(hidden, 1, 3, 3, generator=g) * 0.3
                _bn(sd, f'{p}.1.1', hidden, g)
                sd[f'{p}.2.weight'] = torch.randn(c, hidden, 1, 1, generator=g) * (2 / hidden) ** 0.5
                _bn(sd, f'{p}.3', c, g)
            cin, i = c, i + 1
    sd['features.18.0.weight'] = torch.randn(1280, 320, 1, 1, generator=g)
    _bn(sd, 'features.18.1', 1280, g)
    sd['classifier.1.weight'] = torch.randn(1000, 1280, generator=g)
    sd['classifier.1.bias'] = torch.randn(1000, generator=g)
    return sd


def reference_features(sd, x):
    """torchvision's MobileNetV2 forward (eval mode) written out; features after blocks 3, 6, 13, 17."""
    def cba(x, conv, bn, stride=1, groups=1, act=True):
        w = sd[f'{conv}.weight']
        x = F.conv2d(x, w, stride=stride, padding=w.shape[-1] // 2, groups=groups)
        x = F.batch_norm(x, sd[f'{bn}.running_mean'], sd[f'{bn}.running_var'], sd[f'{bn}.weight'],
                         sd[f'{bn}.bias'], training=False, eps=1e-5)
        return F.relu6(x) if act else x
    x = cba(x, 'features.0.0', 'features.0.1', 2)
    taps, i, cin = {}, 1, 32
    for t, c, n, s in SETTING:
        for k in range(n):
            stride, p = (s if k == 0 else 1), f'features.{i}.conv'
            if t == 1:
                y = cba(x, f'{p}.0.0', f'{p}.0.1', stride, groups=cin)
                y = cba(y, f'{p}.1', f'{p}.2', act=False)
            else:
                y = cba(x, f'{p}.0.0', f'{p}.0.1')
                y = cba(y, f'{p}.1.0', f'{p}.1.1', stride, groups=cin * t)
                y = cba(y, f'{p}.2', f'{p}.3', act=False)
            x = x + y if stride == 1 and cin == c else y
            cin = c
            if i in (3, 6, 13, 17):
                taps[{3: 4, 6: 8, 13: 16, 17: 32}[i]] = x
            i += 1
    return taps


def test_loaded_encoder_computes_the_reference_features(tmp_path):
    sd = torchvision_state_dict()
    path = tmp_path / 'mobilenet_v2.pth'
    torch.save(sd, path)
    model = HydraNet(HydraNetConfig(width_mult=1.0)).eval()
    report = load_encoder_weights(model.encoder, path)
    assert 'unused' in report
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        ours, ref = model.encoder(x), reference_features(sd, x)
    for stride in (4, 8, 16, 32):
        torch.testing.assert_close(ours[stride], ref[stride], atol=1e-4, rtol=1e-4)


def test_a_file_that_does_not_fit_is_refused_with_the_keys(tmp_path):
    sd = torchvision_state_dict()
    narrow = HydraNet(HydraNetConfig(width_mult=0.5))
    with pytest.raises(EncoderWeightsError, match='of other shapes .*features.0.0.weight'):
        load_encoder_weights(narrow.encoder, sd)
    del sd['features.5.conv.1.0.weight']
    with pytest.raises(EncoderWeightsError, match=r"1 missing \(first: \['features.5.conv.1.0.weight'\]"):
        load_encoder_weights(HydraNet(HydraNetConfig(width_mult=1.0)).encoder, sd)
    with pytest.raises(EncoderWeightsError, match='no file'):
        load_encoder_weights(narrow.encoder, tmp_path / 'absent.pth')
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(EncoderWeightsError, match='not a torch state dict'):
        load_encoder_weights(narrow.encoder, tmp_path / 'junk.pth')


def test_training_starts_from_encoder_weights_and_refuses_a_misfit_in_one_line(tmp_path):
    import subprocess
    import sys

    import yaml

    from hydranet_ros.model.checkpoint import load_checkpoint
    sd = torchvision_state_dict()
    weights = tmp_path / 'mobilenet_v2.pth'
    torch.save(sd, weights)
    cfg = {'name': 'imagenet', 'model': {'width_mult': 1.0, 'decoder_channels': 16, 'encoder_weights': str(weights)},
           'data': {'input_size': [64, 96], 'train_seeds': [0], 'frames_per_seed': 2, 'val_seeds': [500],
                    'val_frames_per_seed': 1},
           'train': {'steps': 1, 'batch_size': 1, 'lr': 0.0, 'threads': 1, 'eval_every': 1, 'eval_samples': 1,
                     'output': str(tmp_path / 'out.pt')}}
    path = tmp_path / 'train.yaml'
    path.write_text(yaml.safe_dump(cfg))
    run = [sys.executable, '-m', 'hydranet_ros.training.train', '--config', str(path), '--no-progress']
    out = subprocess.run(run, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'tensors from ImageNet MobileNetV2 weights' in out.stdout
    encoder = load_checkpoint(tmp_path / 'out.pt').model.encoder.state_dict()
    torch.testing.assert_close(encoder['stages.6.0.block.2.0.weight'], sd['features.17.conv.2.weight'])
    torch.testing.assert_close(encoder['stem.0.weight'], sd['features.0.0.weight'])
    cfg['model']['width_mult'] = 0.5
    path.write_text(yaml.safe_dump(cfg))
    out = subprocess.run(run, capture_output=True, text=True, timeout=600)
    assert out.returncode == 2 and 'encoder_weights do not fit' in out.stderr and 'Traceback' not in out.stderr
