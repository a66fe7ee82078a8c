"""Teachers as they come (ROS-free): a raw YOLOX head decoded and suppressed, channels-last
probability maps, segmentation teachers that each know a few classes merged per pixel, and tiled
inference whose boxes are merged across the seams. Each layout is a small ONNX graph made here."""
import math

import numpy as np
import pytest
import torch
import yaml

from hydranet_ros.training.pseudo_label import merged_segmentation
from hydranet_ros.training.teacher_boxes import decode_yolox, merge_tiles, tile_windows
from hydranet_ros.training.teacher_models import Teacher, TeacherError, TeacherSpec

OURS_SEG = ['road', 'car', 'sky']
OURS_DET = ['car', 'pedestrian']


def _teacher(tmp_path, name, module, desc, size=(64, 64), channels_last=False, outputs=None):
    path = tmp_path / f'{name}.onnx'
    shape = (1, *size, 3) if channels_last else (1, 3, *size)
    torch.onnx.export(module.eval(), torch.zeros(shape), str(path), dynamo=False, input_names=['images'],
                      output_names=outputs, opset_version=17)
    path.with_suffix('.yaml').write_text(yaml.safe_dump(desc))
    return Teacher(TeacherSpec.load(path))


def _yolox_rows(h, w, classes=2):
    """A raw YOLOX output with two objects at stride 8 (the second a near-duplicate of the first)."""
    rows = np.zeros((sum((h // s) * (w // s) for s in (8, 16, 32)), 5 + classes), np.float32)
    def cell(col, row):
        return row * (w // 8) + col
    for col, dx, obj in ((3, 0.5, 0.9), (4, -0.4, 0.8)):          # centres x 28 and 28.8, y 20
        rows[cell(col, 2)] = [dx, 0.5, math.log(2), math.log(3), obj, 0.1, 0.8]   # 16 x 24 px, class 1
    return rows


class Constant(torch.nn.Module):
    def __init__(self, value):
        super().__init__()
        self.register_buffer('value', torch.as_tensor(value))

    def forward(self, x):
        return self.value + x.sum() * 0


def test_a_raw_yolox_head_is_decoded_and_suppressed_into_image_boxes(tmp_path):
    rows = _yolox_rows(64, 64)
    boxes, scores, classes = decode_yolox(rows[None], (64, 64))
    assert np.allclose(boxes[3 + 2 * 8], [20, 8, 36, 32]) and classes[3 + 2 * 8] == 1
    assert scores[3 + 2 * 8] == pytest.approx(0.72)
    teacher = _teacher(tmp_path, 'yolox', Constant(rows[None]), {
        'task': 'detection', 'decode': 'yolox', 'input': {'size': [64, 64], 'color': 'bgr', 'scale': 1, 'pad': 114},
        'score_threshold': 0.3, 'classes': ['person', 'car'], 'class_map': {'car': 'car', 'person': 'pedestrian'}})
    lut = teacher.spec.class_lut(OURS_DET)
    b, s, c = teacher.detection(np.zeros((64, 64, 3), np.uint8), lut)
    assert len(b) == 1 and np.allclose(b[0], [20, 8, 36, 32]) and s[0] == pytest.approx(0.72) and c[0] == 0
    # a 128x128 frame fits the 64x64 input at half scale: boxes come back at twice the size
    b, _, _ = teacher.detection(np.zeros((128, 128, 3), np.uint8), lut)
    assert np.allclose(b[0], [40, 16, 72, 64])


def test_a_yolox_head_of_the_wrong_size_is_refused_with_the_file_named(tmp_path):
    teacher = _teacher(tmp_path, 'short', Constant(np.zeros((1, 10, 7), np.float32)), {
        'task': 'detection', 'decode': 'yolox', 'input': {'size': [64, 64]}, 'classes': ['person', 'car']})
    with pytest.raises(TeacherError, match='short.onnx.*84 rows'):
        teacher.detection(np.zeros((64, 64, 3), np.uint8), teacher.spec.class_lut(OURS_DET))
    with pytest.raises(TeacherError, match='decode'):
        (tmp_path / 'short.yaml').write_text(yaml.safe_dump({'task': 'segmentation', 'decode': 'yolox',
                                                             'classes': ['a']}))
        TeacherSpec.load(tmp_path / 'short.onnx')


class RoadProbabilities(torch.nn.Module):
    """Channels-last in and out, as the road-segmentation graph: [1, h, w, 3] BGR -> [1, h, w, 4]
    probabilities of (background, road, curb, mark): road where blue (channel 0) is bright."""

    def forward(self, x):
        road = (x[..., 0:1] > 128).float()
        return torch.cat([1 - road, road * 0.9, road * 0.05, road * 0.05], dim=-1)


class CarLogits(torch.nn.Module):
    """Channels-first logits of (background, car): car where red (channel 0, RGB) is bright."""

    def forward(self, x):
        car = 20 * (x[:, 0:1] - 0.5)
        return torch.cat([-car, car], dim=1)


def test_channels_last_probabilities_and_two_partial_teachers_merged_per_pixel(tmp_path):
    road = _teacher(tmp_path, 'road', RoadProbabilities(), {
        'task': 'segmentation', 'input': {'size': [32, 64], 'layout': 'NHWC', 'color': 'bgr', 'scale': 1,
                                          'resize': 'stretch'},
        'output': {'kind': 'probabilities', 'layout': 'NHWC'}, 'classes': ['background', 'road', 'curb', 'mark'],
        'class_map': {'road': 'road', 'mark': 'road'}}, size=(32, 64), channels_last=True)
    car = _teacher(tmp_path, 'car', CarLogits(), {
        'task': 'segmentation', 'input': {'size': [32, 64], 'resize': 'stretch'}, 'output': {'kind': 'logits'},
        'classes': ['background', 'car']}, size=(32, 64))
    rgb = np.zeros((32, 64, 3), np.uint8)
    rgb[16:, :, 2] = 255           # bottom: blue, the road teacher's road
    rgb[:, :16, 0] = 255           # left: red, the car teacher's car (over the road too, more sure there)
    luts = [t.spec.class_lut(OURS_SEG) for t in (road, car)]
    labels, conf = road.segmentation(rgb, luts[0])
    assert (labels[16:] == 0).all() and (labels[:16] == 255).all()
    assert conf[20, 40] == pytest.approx(0.95)                    # road + mark, both ours
    labels, conf = merged_segmentation([road, car], luts, rgb)
    assert (labels[:, :16] == 1).all()                            # car, where the car teacher is surer
    assert (labels[16:, 16:] == 0).all()                          # road
    assert (labels[:16, 16:] == 255).all() and (conf[:16, 16:] == 0).all()   # sky: no teacher knows it


class LeftHalfCar(torch.nn.Module):
    """Logits of (background, car): car in the left half of whatever it is given."""

    def forward(self, x):
        w = x.shape[-1]
        left = (torch.arange(w) < w // 2).float().view(1, 1, 1, w).expand(1, 1, x.shape[2], w)
        return torch.cat([-10 * left + 5, 10 * left - 5], dim=1) + x.sum() * 0


def test_tiled_segmentation_places_each_tile_back_where_it_came_from(tmp_path):
    teacher = _teacher(tmp_path, 'tiles', LeftHalfCar(), {
        'task': 'segmentation', 'input': {'size': [32, 32], 'resize': 'stretch'}, 'classes': ['background', 'car'],
        'tiles': {'rows': 1, 'cols': 2, 'overlap': 0.0, 'whole': False}}, size=(32, 32))
    labels, _ = teacher.segmentation(np.zeros((32, 128, 3), np.uint8), teacher.spec.class_lut(OURS_SEG))
    car_columns = np.flatnonzero((labels == 1).all(axis=0))
    assert car_columns.tolist() == list(range(0, 32)) + list(range(64, 96))


class CentreBox(torch.nn.Module):
    """A detector that always sees one car in the middle fifth of its input."""

    def forward(self, x):
        h, w = x.shape[-2:]
        box = torch.tensor([[[0.4 * w, 0.4 * h, 0.6 * w, 0.6 * h]]]) + x.sum() * 0
        return box, torch.tensor([[0.9]]), torch.tensor([[1]], dtype=torch.int64)


def test_tiled_detection_maps_each_tiles_boxes_into_the_frame(tmp_path):
    teacher = _teacher(tmp_path, 'centre', CentreBox(), {
        'task': 'detection', 'input': {'size': [64, 64], 'resize': 'stretch'},
        'outputs': {'boxes': 'boxes', 'scores': 'scores', 'classes': 'classes'}, 'classes': ['person', 'car'],
        'tiles': {'rows': 1, 'cols': 2, 'overlap': 0.0, 'whole': True}}, outputs=['boxes', 'scores', 'classes'])
    b, s, c = teacher.detection(np.zeros((100, 200, 3), np.uint8), teacher.spec.class_lut(OURS_DET))
    got = sorted(np.round(b).astype(int).tolist())
    assert got == sorted([[80, 40, 120, 60], [40, 40, 60, 60], [140, 40, 160, 60]]) and (c == 0).all()


def test_tile_windows_cover_the_frame_with_the_overlap_asked():
    windows = tile_windows(375, 1242, 2, 2, 0.25)
    assert len(windows) == 4 and windows[0][:2] == (0, 0) and windows[-1][2:] == (1242, 375)
    (a0, _, a1, _), (b0, _, b1, _) = windows[0], windows[1]
    assert b1 - b0 == a1 - a0                          # tiles of one size
    assert (a1 - b0) / (a1 - a0) == pytest.approx(0.25, abs=0.01)
    with pytest.raises(ValueError, match='overlap'):
        tile_windows(10, 10, 1, 2, 1.0)


def test_boxes_cut_by_a_seam_are_merged_and_separate_objects_are_not():
    frame = (100, 200)
    left, right = (0, 0, 110, 100), (90, 0, 200, 100)          # seam edges at x=110 (left) and x=90 (right)
    parts = [(left, [[60, 20, 110, 60]], [0.8], [0]),          # a car cut at the left tile's right edge
             (right, [[90, 22, 140, 58]], [0.7], [0]),         # its other part, cut at the right tile's left edge
             (right, [[150, 10, 190, 40]], [0.9], [0]),        # another car, whole, away from the seam
             (left, [[10, 10, 30, 30]], [0.6], [1])]           # a pedestrian, untouched
    b, s, c = merge_tiles(parts, frame, iou=0.5)
    got = {tuple(np.round(x).astype(int)) for x in b}
    assert got == {(60, 20, 140, 60), (150, 10, 190, 40), (10, 10, 30, 30)}
    # two whole boxes side by side that touch no seam stay two, even overlapping a little
    b, _, _ = merge_tiles([(None, [[0, 0, 50, 50], [45, 0, 95, 50]], [0.9, 0.8], [0, 0])], frame, iou=0.5)
    assert len(b) == 2
    # a whole-frame box and the pieces tiles saw of it are one object
    b, s, _ = merge_tiles([(None, [[60, 20, 140, 60]], [0.6], [0])] + parts[:2], frame, iou=0.5)
    assert len(b) == 1 and np.allclose(b[0], [60, 20, 140, 60]) and s[0] == pytest.approx(0.8)
