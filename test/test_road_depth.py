"""Metric depth from a flat road on a real video (ROS-free): the camera's height and pitch found
from the standard lane width, and road pixels labelled with the depth their rays meet the road at.
Frames and labels are generated here from a known camera over a flat road."""
import json

import numpy as np
import pytest

from hydranet_ros import dataset_folder as folder_io
from hydranet_ros.training import depth_scale

K = [500.0, 0, 320, 0, 500, 180, 0, 0, 1]
H, W = 360, 640
NAMES = ['road', 'lane_marking', 'car']


def _lane_frame(height, pitch, lane_m=3.7, mark_m=0.15):
    """Segmentation of a straight lane seen by K at `height` m, tilted `pitch` rad: road, with the two
    markings of the ego lane (centred on the camera) as lane_marking."""
    seg = np.full((H, W), 255, np.uint8)
    z = depth_scale.road_ray_depth(H, K, height, pitch)
    for v in range(H):
        if not np.isfinite(z[v]) or z[v] > 80:
            continue
        seg[v] = 0
        for x in (-lane_m / 2, lane_m / 2):          # a marking centred at lateral offset x
            u0, u1 = (K[0] * (x + s * mark_m / 2) / z[v] + K[2] for s in (-1, 1))
            seg[v, max(0, int(round(u0))):max(0, int(round(u1)) + 1)] = 1
    return seg


def _folder(root, segs):
    writer = folder_io.FolderWriter(root)
    for n, seg in enumerate(segs):
        writer.image(f'{n:06d}', np.zeros((H, W, 3), np.uint8))
        writer.segmentation(f'{n:06d}', seg, np.ones(seg.shape, np.float32))
    writer.camera({'width': W, 'height': H, 'k': K, 'segmentation_classes': NAMES})
    return root


def test_the_mount_is_found_from_the_lane_width(tmp_path):
    truth_h, truth_pitch = 1.4, np.radians(3.0)
    root = _folder(tmp_path / 'f', [_lane_frame(truth_h, truth_pitch)] * 6)
    found = depth_scale.mount_of_folders([root])
    assert found['camera_height_m'] == pytest.approx(truth_h, rel=0.03)
    assert found['pitch_deg'] == pytest.approx(3.0, abs=0.3) and found['frames'] == 6
    # a lane taken for 3.0 m scales the height with it; pitch stays
    assert depth_scale.mount_of_folders([root], 3.0)['camera_height_m'] == pytest.approx(truth_h * 3.0 / 3.7,
                                                                                         rel=0.03)


def test_too_little_lane_is_refused():
    with pytest.raises(ValueError, match='at least 5'):
        depth_scale.mount_from_lane_widths({300: 100.0, 310: 110.0}, K)


def test_road_pixels_get_the_depth_of_their_rays_and_nothing_else_does(tmp_path):
    seg = _lane_frame(1.4, np.radians(3.0))
    seg[300:, 300:340] = 2                                    # a car on the road: no label
    root = _folder(tmp_path / 'f', [seg])
    assert depth_scale.add_road_depth(root, 1.4, np.radians(3.0), max_distance=30.0) == 1
    depth = folder_io.read_depth(root, '000000')
    z = depth_scale.road_ray_depth(H, K, 1.4, np.radians(3.0))
    road = np.isin(seg, [0, 1]) & (z[:, None] <= 30)
    assert np.allclose(depth[road], np.broadcast_to(z[:, None], seg.shape)[road])
    assert np.isnan(depth[~road]).all() and np.isnan(depth[310, 320])
    conf = folder_io.read_confidence(root, '000000', 'depth')
    assert conf[road].min() == pytest.approx(0.5, abs=0.01) and conf[~road].max() == 0
    assert json.loads((root / 'camera.json').read_text())['road_depth']['camera_height_m'] == 1.4


def test_the_command_says_what_a_folder_lacks(tmp_path, capsys):
    root = tmp_path / 'f'
    folder_io.FolderWriter(root).camera({'k': K, 'segmentation_classes': ['road']})
    assert depth_scale.main(['mount', str(root)]) == 2
    assert 'lane_marking' in capsys.readouterr().err
    assert depth_scale.main(['road-depth', str(root), '--camera-height', '40', '--camera-pitch', '0']) == 2
    assert '0-10' in capsys.readouterr().err
