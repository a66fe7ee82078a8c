"""A dashcam video becomes a dataset folder (ROS-free): chessboard calibration recovers the camera
that rendered the boards, frames are subsampled in order and rectified, K follows the resize, and
every bad input is refused with the reason. Videos and boards are generated here."""
import json

import cv2
import numpy as np
import pytest
import yaml

from hydranet_ros.training import video
from hydranet_ros.training.datasets import FolderDataset

K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
SIZE = (640, 480)


def _board_views(folder, count=6, board=(9, 6), square_px=40):
    """Chessboard pictures as the camera K sees a board (squares of one unit) at several poses."""
    folder.mkdir(parents=True)
    cols, rows = board[0] + 1, board[1] + 1
    img = np.full(((rows + 2) * square_px, (cols + 2) * square_px), 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            if (r + c) % 2 == 0:
                y, x = (r + 1) * square_px, (c + 1) * square_px
                img[y:y + square_px, x:x + square_px] = 0
    # board pixel -> board units, the first inner corner at the origin
    to_units = np.array([[1 / square_px, 0, -2], [0, 1 / square_px, -2], [0, 0, 1]])
    rng = np.random.default_rng(0)
    for n in range(count):
        rot, _ = cv2.Rodrigues(np.radians(rng.uniform(-25, 25, 3)) * np.array([1, 1, 0.3]))
        t = np.array([-4.0, -2.5, rng.uniform(12, 16)])
        h = K @ np.column_stack([rot[:, 0], rot[:, 1], t]) @ to_units
        view = cv2.warpPerspective(img, h, SIZE, borderValue=255)
        assert cv2.imwrite(str(folder / f'board{n}.png'), view)
    return folder


def _video(path, frames=10, size=SIZE, fps=20.0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), fps, size)
    assert writer.isOpened()
    for k in range(frames):
        img = np.zeros((size[1], size[0], 3), np.uint8)
        cv2.putText(img, str(k), (20, 200), cv2.FONT_HERSHEY_SIMPLEX, 6, (255, 255, 255), 12)
        img[:, :, 1] = 20 * k                        # each frame its own green level: the order is checkable
        writer.write(img)
    writer.release()
    return path


def test_chessboards_recover_the_camera_that_saw_them(tmp_path):
    calib = video.calibrate_chessboards(_board_views(tmp_path / 'boards'))
    assert calib.size == SIZE and calib.source['rms_px'] < 0.5 and len(calib.source['images_used']) == 6
    assert np.allclose(calib.k[[0, 1, 0, 1], [0, 1, 2, 2]], [500, 500, 320, 240], rtol=0.03)
    assert np.abs(calib.dist[:2]).max() < 0.1


def test_too_few_boards_are_refused_with_the_count(tmp_path):
    folder = tmp_path / 'blank'
    folder.mkdir()
    for n in range(4):
        cv2.imwrite(str(folder / f'{n}.png'), np.full((48, 64), 255, np.uint8))
    with pytest.raises(ValueError, match='found in 0 of 4'):
        video.calibrate_chessboards(folder)


def test_a_video_becomes_an_ordered_rectified_folder_the_trainer_reads(tmp_path):
    path = _video(tmp_path / 'drive.avi', frames=10)
    info = tmp_path / 'camera.yaml'
    info.write_text(yaml.safe_dump({'image_width': 640, 'image_height': 480, 'distortion_model': 'plumb_bob',
                                    'camera_matrix': {'rows': 3, 'cols': 3, 'data': K.ravel().tolist()},
                                    'distortion_coefficients': {'rows': 1, 'cols': 5,
                                                                'data': [-0.2, 0.05, 0, 0, 0]}}))
    out = tmp_path / 'folder'
    meta = video.video_to_folder(path, out, video.read_camera_info_yaml(info), every=3, width=320)
    stems = sorted(p.stem for p in (out / 'images').glob('*.png'))
    assert stems == ['000000', '000003', '000006', '000009'] and meta['frames'] == 4
    greens = [cv2.imread(str(out / 'images' / f'{s}.png'))[:, :, 1].mean() for s in stems]
    assert greens == sorted(greens) and greens[0] < greens[-1]       # in order, time kept
    camera = json.loads((out / 'camera.json').read_text())
    assert (camera['width'], camera['height']) == (320, 240) and camera['fps'] == pytest.approx(20 / 3)
    k = np.array(camera['k']).reshape(3, 3)
    assert k[0, 0] == k[1, 1] and 200 <= k[0, 0] < 300              # square pixels, about halved with the width
    assert camera['calibration']['kind'] == 'camera_info' and len(camera['sha1']) == 40
    sample = FolderDataset(out, (64, 96))[1]
    assert tuple(sample['image'].shape[-2:]) == (64, 96) and 'prev_image' in sample


def test_an_assumed_field_of_view_gives_a_centred_pinhole_and_says_so(tmp_path):
    meta = video.video_to_folder(_video(tmp_path / 'v.avi', frames=2), tmp_path / 'o', hfov_deg=90.0, width=0)
    assert meta['k'][0] == pytest.approx(320) and meta['k'][2] == 320 and meta['calibration']['kind'] == 'assumed'


def test_the_bonnet_is_cropped_off_the_bottom_and_k_stays(tmp_path):
    meta = video.video_to_folder(_video(tmp_path / 'v.avi', frames=2), tmp_path / 'o', hfov_deg=90.0, width=320,
                                 crop_bottom=0.1)
    image = cv2.imread(str(tmp_path / 'o' / 'images' / '000000.png'))
    assert image.shape[:2] == (216, 320) == (meta['height'], meta['width']) and meta['cropped_bottom_rows'] == 24
    assert meta['k'][5] == pytest.approx(120)                        # cy of the uncropped 320x240 image
    with pytest.raises(ValueError, match='crop-bottom'):
        video.video_to_folder(tmp_path / 'v.avi', tmp_path / 'o2', hfov_deg=90.0, crop_bottom=0.6)


@pytest.mark.parametrize('args,message', [
    ([], 'exactly one of'),
    (['--hfov-deg', '200'], '10-170'),
    (['--camera-info', 'missing.yaml'], 'missing.yaml'),
    (['--hfov-deg', '60', '--every', '0'], 'at least 1'),
])
def test_the_command_refuses_bad_input_in_one_line(tmp_path, capsys, args, message):
    path = _video(tmp_path / 'v.avi', frames=2)
    assert video.main([str(path), '-o', str(tmp_path / 'o'), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_calibration_of_another_aspect_ratio_or_an_unreadable_video_is_refused(tmp_path):
    calib = video.Calibration(K, np.zeros(5), (640, 360))
    with pytest.raises(ValueError, match='aspect ratio'):
        video.video_to_folder(_video(tmp_path / 'v.avi', frames=2), tmp_path / 'o', calib)
    (tmp_path / 'bad.mp4').write_bytes(b'not a video')
    with pytest.raises(ValueError, match='cannot decode'):
        video.video_to_folder(tmp_path / 'bad.mp4', tmp_path / 'o2', calib)
