"""The encoder recipe of training/generalisation.py: frozen blocks, frozen BatchNorm, ImageNet
feature distance (each must do what it says, or the ablation in docs/MODEL.md measures nothing)."""
import pytest
import torch

from hydranet_ros.model import HydraNet, HydraNetConfig
from hydranet_ros.model.imagenet import load_encoder_weights
from hydranet_ros.training.generalisation import EncoderRecipe


def _model():
    """ImageNet-started, as the recipe is used (a random encoder's deep features all but vanish)."""
    torch.manual_seed(0)
    model = HydraNet(HydraNetConfig(encoder='efficientnet_lite0', decoder_channels=16))
    load_encoder_weights(model.encoder, 'efficientnet_lite0_imagenet')
    return model


def _batch(segmentation_value=0):
    return {'image': torch.randn(2, 3, 64, 96),
            'segmentation': torch.full((2, 64, 96), segmentation_value, dtype=torch.long),
            'has_segmentation': torch.tensor([True, True])}


def _step(model, recipe, batch):
    model.train()
    recipe.train_mode()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    out = model(batch['image'], ['segmentation', 'depth'])
    loss = out['segmentation'].mean() + out['depth'].mean()
    distance = recipe.feature_distance(batch)
    if distance is not None:
        loss = loss + distance
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def test_frozen_blocks_keep_their_weights_the_rest_moves():
    model = _model()
    recipe = EncoderRecipe(model, freeze_blocks=2)
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    _step(model, recipe, _batch())
    after = model.encoder.state_dict()
    for key in before:
        moved = not torch.equal(before[key], after[key])
        frozen = key.startswith(('stem.', 'blocks.0.', 'blocks.1.'))
        if frozen:
            assert not moved, key
    assert not torch.equal(before['blocks.2.depthwise.conv.weight'], after['blocks.2.depthwise.conv.weight'])
    with pytest.raises(ValueError, match='has 16 blocks'):
        EncoderRecipe(_model(), freeze_blocks=17)


def test_frozen_batchnorm_keeps_statistics_and_affine():
    model = _model()
    recipe = EncoderRecipe(model, freeze_bn=True)
    bn = model.encoder.blocks[5].depthwise.bn
    mean, weight = bn.running_mean.clone(), bn.weight.clone()
    _step(model, recipe, _batch())
    assert torch.equal(bn.running_mean, mean) and torch.equal(bn.weight, weight)
    decoder_conv = model.decoder.levels['4'].project.weight
    assert decoder_conv.requires_grad
    plain = _model()
    EncoderRecipe(plain)
    _step(plain, EncoderRecipe(plain), _batch())
    assert not torch.equal(plain.encoder.blocks[5].depthwise.bn.running_mean, mean)


def test_feature_distance_is_zero_at_the_start_and_grows_as_features_move():
    model = _model()
    recipe = EncoderRecipe(model, feature_distance=1.0)
    model.eval()
    batch = _batch()
    model(batch['image'], ['depth'])
    assert float(recipe.feature_distance(batch)) < 1e-3
    with torch.no_grad():
        model.encoder.blocks[15].project.conv.weight.mul_(2.0)
    model(batch['image'], ['depth'])
    assert float(recipe.feature_distance(batch)) > 0.1


def test_feature_distance_only_where_the_labels_say_thing():
    model = _model()
    recipe = EncoderRecipe(model, feature_distance=1.0, thing_classes=[8])
    with torch.no_grad():
        model.encoder.blocks[15].project.conv.weight.mul_(2.0)
    model.eval()
    road = _batch(segmentation_value=0)
    model(road['image'], ['depth'])
    assert float(recipe.feature_distance(road)) == 0.0
    car = _batch(segmentation_value=8)
    model(car['image'], ['depth'])
    assert float(recipe.feature_distance(car)) > 0.1
