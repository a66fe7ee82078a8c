"""Another camera's look on labelled data: Fourier domain adaptation from a folder of the target
camera's images, and its sensor's noise and JPEG; the trainer gives them to the labelled sources
only (ROS-free)."""
import cv2
import numpy as np
import pytest

from hydranet_ros.training.augmentation import AppearanceTransfer, amplitude_swap, degrade_sensor
from hydranet_ros.training.datasets import image_files
from hydranet_ros.training.samples import Sample


def _texture(seed, size=(48, 80), mean=100.0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.normal(0, 40, (*size, 3)).astype(np.float32), (3, 3), 0) + mean
    return np.clip(img, 0, 255).astype(np.uint8)


def _detail(img):
    x = img.astype(np.float32)
    return x - cv2.GaussianBlur(x, (0, 0), 3)


def test_amplitude_swap_takes_the_targets_light_and_keeps_the_images_edges():
    image = _texture(0, mean=90.0)
    target = np.zeros((120, 200, 3), np.uint8)
    target[...] = (200, 140, 60)                     # a warm, bright camera; any size
    out = amplitude_swap(image, target, beta=0.02)
    assert out.shape == image.shape and out.dtype == np.uint8
    # the mean (the zero frequency) is the target's, per channel
    np.testing.assert_allclose(out.reshape(-1, 3).mean(0), [200, 140, 60], atol=6)
    # the fine structure (what labels sit on) is the image's
    corr = np.corrcoef(_detail(out).ravel(), _detail(image).ravel())[0, 1]
    assert corr > 0.9
    # the image's own spectrum leaves it as it is
    assert np.abs(amplitude_swap(image, image, 0.02).astype(int) - image).max() <= 1


def test_appearance_transfer_gives_every_frame_of_a_sample_the_same_look(tmp_path):
    (tmp_path / 'drive' / 'images').mkdir(parents=True)
    for k, colour in enumerate([(30, 30, 200), (220, 220, 30)]):
        cv2.imwrite(str(tmp_path / 'drive' / 'images' / f'{k:06d}.png'), np.full((60, 90, 3), colour, np.uint8))
    files = image_files([tmp_path])
    assert [f.name for f in files] == ['000000.png', '000001.png']
    seg = np.zeros((48, 80), np.uint8)
    sample = Sample(image=_texture(1), prev_image=_texture(2), next_image=None, segmentation=seg)
    rng = np.random.default_rng(0)
    out = AppearanceTransfer(files, beta=0.02, probability=1.0)(sample, rng)
    a, b = out['image'].reshape(-1, 3).mean(0), out['prev_image'].reshape(-1, 3).mean(0)
    np.testing.assert_allclose(a, b, atol=6)            # one target for the pair
    assert abs(a[0] - a[2]) > 100                        # and it is one of the targets' (BGR files read as RGB)
    assert out['segmentation'] is seg and out['next_image'] is None
    # each frame is exactly amplitude_swap with the drawn target (its spectrum computed once)
    transfer = AppearanceTransfer(files, beta=0.02, probability=1.0)
    drawn = transfer(sample, np.random.default_rng(5))
    matches = [np.array_equal(drawn['image'], amplitude_swap(sample['image'], transfer._target(k), 0.02)) and
               np.array_equal(drawn['prev_image'], amplitude_swap(sample['prev_image'], transfer._target(k), 0.02))
               for k in range(len(files))]
    assert sum(matches) == 1
    untouched = AppearanceTransfer(files, probability=0.0)(sample, rng)
    assert untouched['image'] is sample['image']


def test_image_files_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        image_files([tmp_path / 'nowhere'])
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match='no images'):
        image_files([tmp_path / 'empty'])


def test_degrade_sensor_adds_fresh_noise_per_frame_and_a_jpeg_round_trip():
    flat = np.full((64, 64, 3), 128, np.uint8)
    sample = Sample(image=flat, prev_image=flat.copy(), next_image=None)
    rng = np.random.default_rng(0)
    noisy = degrade_sensor(sample, rng, noise_sigma=(8.0, 8.0), probability=1.0)
    for key in ('image', 'prev_image'):
        assert noisy[key].astype(np.float32).std() == pytest.approx(8.0, rel=0.1)
    assert not np.array_equal(noisy['image'], noisy['prev_image'])       # a sensor's noise is not fixed
    assert noisy['next_image'] is None
    blocky = _texture(3, (64, 64))
    lossy = degrade_sensor(Sample(image=blocky, prev_image=blocky), rng, jpeg_quality=(20, 20), probability=1.0)
    ok, buf = cv2.imencode('.jpg', blocky[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 20])
    np.testing.assert_array_equal(lossy['image'], cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    assert degrade_sensor(sample, rng, noise_sigma=(8.0, 8.0), probability=0.0) is sample
    assert degrade_sensor(sample, rng, probability=1.0) is sample


@pytest.mark.parametrize('key, value, message', [
    ('appearance_beta', 0.7, 'appearance_beta'),
    ('appearance_from', ['/no/such/folder'], 'no such folder'),
    ('jpeg_quality', [50, 120], 'jpeg_quality'),
    ('sensor_noise', [5, 1], 'sensor_noise'),
    ('sensor_probability', 1.5, 'sensor_probability'),
])
def test_bad_look_settings_are_refused_by_name(key, value, message):
    from hydranet_ros.training.trainer import TrainConfig
    cfg = TrainConfig(name='x', model={}, data={'type': 'synthetic', 'train_seeds': [1]}, train={key: value})
    with pytest.raises(ValueError, match=message):
        cfg.resolved()


def test_the_trainer_gives_the_look_to_labelled_sources_only(tmp_path):
    from hydranet_ros.model import HydraNetConfig
    from hydranet_ros.training.sources import augmentation_from, make_datasets
    from hydranet_ros.training.trainer import TrainConfig
    for name in ('target', 'labelled'):
        (tmp_path / name / 'images').mkdir(parents=True)
        cv2.imwrite(str(tmp_path / name / 'images' / '000000.png'), _texture(4))
    cfg = TrainConfig(name='x', model={}, data={'type': 'mixture', 'input_size': [32, 64], 'sources': [
        {'type': 'folder', 'root': str(tmp_path / 'target')}, {'type': 'folder', 'root': str(tmp_path / 'labelled')},
        {'type': 'synthetic', 'seeds': [7], 'frames_per_seed': 1, 'style': 'varied'}]},
        train={'appearance_from': [str(tmp_path / 'target')], 'jpeg_quality': [30, 40], 'zoom': [1.0, 1.2]})
    tcfg, data = cfg.resolved()
    augmentation, targets = augmentation_from(tcfg)
    train_set, _ = make_datasets(data, HydraNetConfig(), augmentation=augmentation, look_targets=targets)
    target, labelled, synthetic = train_set.parts
    assert target.augmentation.appearance is None and target.augmentation.sensor is None
    assert target.augmentation.zoom_range == (1.0, 1.2)          # the target's frames keep the rest
    for part in (labelled, synthetic):
        aug = part.augmentation
        assert len(aug.appearance.files) == 1 and aug.sensor['jpeg_quality'] == (30, 40)
    labelled.augmentation.appearance.probability = 1.0
    item = labelled[0]              # the whole path: load, look, tensors
    assert item['image'].shape == (3, 32, 64)


def test_recolour_classes_paints_each_class_alike_in_every_frame():
    from hydranet_ros.training.augmentation import recolour_classes
    grey = np.full((20, 30, 3), 120, np.uint8)
    grey[..., 0] = 160                                   # a hue to rotate
    seg = np.zeros((20, 30), np.uint8)
    seg[10:] = 1
    seg[:2, :2] = 255                                   # unlabelled: left as it is
    prev_seg = np.ones((20, 30), np.uint8)              # the previous frame: all class 1
    sample = Sample(image=grey, prev_image=grey.copy(), next_image=grey.copy(), segmentation=seg,
                    prev_segmentation=prev_seg, next_segmentation=None)
    out = recolour_classes(sample, np.random.default_rng(0), 0.5)
    img, prev = out['image'].astype(int), out['prev_image'].astype(int)
    # one change per class: uniform inside a class, different between classes
    assert len(np.unique(img[2:10].reshape(-1, 3), axis=0)) == 1
    assert len(np.unique(img[10:].reshape(-1, 3), axis=0)) == 1
    assert not np.array_equal(img[5, 5], img[15, 5])
    assert np.array_equal(img[:2, :2], grey[:2, :2].astype(int))
    # class 1 looks the same in the previous frame as in this one (the pair still matches)
    assert np.abs(prev[5, 5] - img[15, 5]).max() <= 1
    # a frame without its class map is not painted
    assert out['next_image'] is sample['next_image']
    assert out['segmentation'] is seg
    assert recolour_classes(sample, np.random.default_rng(0), 0.0) is sample
    assert recolour_classes(Sample(image=grey, segmentation=None), np.random.default_rng(0), 0.5)['image'] is grey


def test_synthetic_drives_keep_class_maps_only_when_segmentation_is_a_label():
    from hydranet_ros.training.datasets import SyntheticDataset
    from hydranet_ros.training.augmentation import Augmentation
    ds = SyntheticDataset([7], 2, (32, 64), 'kitti', 2, augment=True, style='varied',
                          augmentation=Augmentation(class_colour_jitter=0.5))
    first = ds.samples[0]
    assert first['prev_segmentation'].shape == (32, 64) and first['next_segmentation'] is ds.samples[1]['segmentation']
    assert ds[0]['image'].shape == (3, 32, 64)
    free = SyntheticDataset([7], 1, (32, 64), 'kitti', 2, style='varied', labels=('depth',))
    assert 'prev_segmentation' not in free.samples[0] and free.samples[0]['segmentation'] is None


def test_class_colours_without_a_synthetic_source_are_refused(tmp_path):
    from hydranet_ros.model import HydraNetConfig
    from hydranet_ros.training.sources import augmentation_from, make_datasets
    from hydranet_ros.training.trainer import TrainConfig
    (tmp_path / 'labelled' / 'images').mkdir(parents=True)
    cv2.imwrite(str(tmp_path / 'labelled' / 'images' / '000000.png'), _texture(4))
    tcfg, data = TrainConfig(name='x', model={}, data={'type': 'folder', 'root': str(tmp_path / 'labelled'),
                                                       'input_size': [32, 64]},
                             train={'class_colour_jitter': 0.5}).resolved()
    with pytest.raises(ValueError, match='only synthetic drives have'):
        make_datasets(data, HydraNetConfig(), augmentation=augmentation_from(tcfg)[0])
