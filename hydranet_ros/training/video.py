"""A dashcam video as a dataset folder: `ros2 run hydranet_ros video-to-folder`.

    ros2 run hydranet_ros video-to-folder VIDEO -o OUT [--chessboards DIR [--board 9x6]
        | --camera-info camera.yaml | --hfov-deg 60] [--every 2] [--width 640] [--max-frames N]

The video is decoded (OpenCV), every `--every`-th frame kept, undistorted with the camera's
calibration into a rectified pinhole image (no black border: the rectified intrinsics keep only
valid pixels) and resized to `--width`; `--crop-bottom` cuts that share of the rows off the bottom
(the car's own bonnet, which no teacher should call road; K is unchanged by it). The frames keep
their order and their spacing, so each is the previous one's next frame, which the photometric
terms of training need (FolderDataset pairs each image with the one before it). OUT is a dataset
folder (`hydranet_ros.dataset_folder`): images/ and camera.json with the rectified K at the
written size, the frame rate after subsampling, the video's SHA-1 and how the calibration was
found; pseudo-label and the trainer read it as any other folder.

Calibration, one of:
- `--chessboards DIR`: images of a chessboard (`--board` inner corners, columns x rows) taken
  with the same camera; OpenCV's calibrateCamera gives K and the distortion; images where the
  board is not found are listed and left out, the reprojection error is reported.
- `--camera-info FILE`: a ROS camera_info YAML (camera_calibration's format: camera_matrix,
  distortion_coefficients, image_width/height).
- `--hfov-deg DEG`: no calibration: a distortion-free pinhole with that horizontal field of view,
  marked as assumed in camera.json (its metric depth is only as right as the guess).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml

from hydranet_ros import dataset_folder as folder_io


@dataclass
class Calibration:
    """A camera's intrinsics at `size` (w, h) and its distortion (OpenCV's model)."""
    k: np.ndarray
    dist: np.ndarray
    size: tuple
    source: dict = field(default_factory=dict)


def calibrate_chessboards(folder, board=(9, 6)) -> Calibration:
    """K and distortion from chessboard images; ValueError when too few boards are found."""
    images = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in folder_io.IMAGE_SUFFIXES)
    grid = np.zeros((board[0] * board[1], 3), np.float32)
    grid[:, :2] = np.mgrid[0:board[0], 0:board[1]].T.reshape(-1, 2)
    objects, corners, used, missed, size = [], [], [], [], None
    for path in images:
        grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            raise ValueError(f'{path}: not an image')
        if size is not None and grey.shape[::-1] != size:
            grey = cv2.resize(grey, size)            # a few of a set can be a pixel off
        size = grey.shape[::-1]
        found, pts = cv2.findChessboardCorners(grey, board)
        if not found:
            missed.append(path.name)
            continue
        pts = cv2.cornerSubPix(grey, pts, (11, 11), (-1, -1),
                               (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-3))
        objects.append(grid)
        corners.append(pts)
        used.append(path.name)
    if len(used) < 3:
        raise ValueError(f'{folder}: a {board[0]}x{board[1]} chessboard was found in {len(used)} of {len(images)} '
                         f'images; at least 3 are needed')
    rms, k, dist, _, _ = cv2.calibrateCamera(objects, corners, size, None, None)
    return Calibration(k, dist.reshape(-1), size, {'kind': 'chessboards', 'folder': str(folder),
                                                   'board': list(board), 'images_used': used,
                                                   'images_without_board': missed, 'rms_px': float(rms)})


def read_camera_info_yaml(path) -> Calibration:
    """camera_calibration's YAML (image_width, image_height, camera_matrix, distortion_coefficients)."""
    try:
        d = yaml.safe_load(Path(path).read_text()) or {}
        k = np.array(d['camera_matrix']['data'], np.float64).reshape(3, 3)
        dist = np.array((d.get('distortion_coefficients') or {}).get('data') or [], np.float64)
        size = (int(d['image_width']), int(d['image_height']))
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise ValueError(f'{path}: not a camera_info YAML (image_width, image_height, camera_matrix.data with 9 '
                         f'numbers, distortion_coefficients.data): {exc}') from exc
    model = d.get('distortion_model', 'plumb_bob')
    if model not in ('plumb_bob', 'rational_polynomial'):
        raise ValueError(f'{path}: distortion_model {model!r}; plumb_bob or rational_polynomial can be undone here')
    return Calibration(k, dist, size, {'kind': 'camera_info', 'file': str(path)})


def assumed_pinhole(size, hfov_deg: float) -> Calibration:
    """A distortion-free pinhole of the given horizontal field of view, centred."""
    if not 10.0 <= hfov_deg <= 170.0:
        raise ValueError(f'--hfov-deg is a horizontal field of view in degrees, 10-170; got {hfov_deg}')
    w, h = size
    f = w / 2 / np.tan(np.radians(hfov_deg) / 2)
    k = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], np.float64)
    return Calibration(k, np.zeros(5), size, {'kind': 'assumed', 'hfov_deg': float(hfov_deg)})


class Rectifier:
    """Undistorts frames of one size into the rectified pinhole image (valid pixels only), resized."""

    def __init__(self, calib: Calibration, frame_size, width: int | None, crop_bottom: float = 0.0):
        w, h = frame_size
        k = calib.k.copy()
        if tuple(calib.size) != (w, h):            # calibrated at another resolution, same sensor
            sx, sy = w / calib.size[0], h / calib.size[1]
            if abs(sx - sy) > 0.01:
                raise ValueError(f'the calibration is for {calib.size[0]}x{calib.size[1]}, the video is {w}x{h}: '
                                 'another aspect ratio is another camera mode')
            k[0] *= sx
            k[1] *= sy
        self.maps = None
        new_k = k
        if np.any(calib.dist):
            new_k, _ = cv2.getOptimalNewCameraMatrix(k, calib.dist, (w, h), 0.0, (w, h))
            new_k[0, 0] = new_k[1, 1] = max(new_k[0, 0], new_k[1, 1])   # square pixels, zoomed to stay valid
            self.maps = cv2.initUndistortRectifyMap(k, calib.dist, None, new_k, (w, h), cv2.CV_16SC2)
        scale = (width or w) / w
        self.size = (int(round(w * scale)), int(round(h * scale)))
        self.rows = self.size[1] - int(round(self.size[1] * crop_bottom))   # kept from the top: K unchanged
        self.k = new_k * np.array([[scale], [scale], [1.0]])

    def __call__(self, bgr: np.ndarray) -> np.ndarray:
        if self.maps is not None:
            bgr = cv2.remap(bgr, *self.maps, cv2.INTER_LINEAR)
        if bgr.shape[1::-1] != self.size:
            bgr = cv2.resize(bgr, self.size, interpolation=cv2.INTER_AREA)
        return bgr[:self.rows]


def video_to_folder(video, out, calibration: Calibration | None = None, hfov_deg: float | None = None,
                    every: int = 1, width: int | None = 640, max_frames: int | None = None,
                    crop_bottom: float = 0.0) -> dict:
    """Write the video's frames as a dataset folder; returns what camera.json says."""
    video, out = Path(video), Path(out)
    if every < 1 or (max_frames is not None and max_frames < 1):
        raise ValueError('--every and --max-frames are counts of at least 1')
    if not 0.0 <= crop_bottom < 0.5:
        raise ValueError(f'--crop-bottom is a share of the rows, 0 to 0.5; got {crop_bottom}')
    if not video.is_file():
        raise FileNotFoundError(f'{video}: no such video')
    capture = cv2.VideoCapture(str(video))
    frame_size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    if not capture.isOpened() or min(frame_size) <= 0:
        raise ValueError(f'{video}: OpenCV cannot decode it')
    fps = float(capture.get(cv2.CAP_PROP_FPS)) or None
    calib = calibration or (assumed_pinhole(frame_size, hfov_deg) if hfov_deg else None)
    if calib is None:
        raise ValueError('a calibration is needed: --chessboards, --camera-info or --hfov-deg')
    rectify = Rectifier(calib, frame_size, width, crop_bottom)
    writer = folder_io.FolderWriter(out)
    written = index = 0
    try:
        while max_frames is None or written < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            if index % every == 0:
                writer.image(f'{index:06d}', cv2.cvtColor(rectify(bgr), cv2.COLOR_BGR2RGB))
                written += 1
            index += 1
    finally:
        capture.release()
    if not written:
        raise ValueError(f'{video}: no frame could be decoded')
    meta = {'width': rectify.size[0], 'height': rectify.rows, 'cropped_bottom_rows': rectify.size[1] - rectify.rows,
            'k': [float(v) for v in rectify.k.reshape(-1)], 'source': str(video),
            'sha1': hashlib.sha1(video.read_bytes()).hexdigest(), 'frames': written, 'every': every,
            'fps': None if fps is None else fps / every, 'rectified': True, 'calibration': calib.source}
    writer.camera(meta)
    return meta


def _calibration(args) -> Calibration | None:
    chosen = [a for a in (args.chessboards, args.camera_info, args.hfov_deg) if a is not None]
    if len(chosen) != 1:
        raise ValueError('give exactly one of --chessboards, --camera-info, --hfov-deg')
    if args.chessboards:
        cols, _, rows = args.board.lower().partition('x')
        return calibrate_chessboards(args.chessboards, (int(cols), int(rows)))
    if args.camera_info:
        return read_camera_info_yaml(args.camera_info)
    return None


def main(argv=None) -> int:
    """The command line: write the folder, print what was written; 2 on bad input."""
    p = argparse.ArgumentParser(prog='video-to-folder', description=__doc__.split('\n')[0])
    p.add_argument('video')
    p.add_argument('-o', '--out', required=True, help='the dataset folder to write')
    p.add_argument('--chessboards', help='folder of chessboard images from the same camera')
    p.add_argument('--board', default='9x6', help='inner corners, columns x rows (default 9x6)')
    p.add_argument('--camera-info', help='a ROS camera_info YAML of the camera')
    p.add_argument('--hfov-deg', type=float, help='no calibration: assume this horizontal field of view')
    p.add_argument('--every', type=int, default=1, help='keep every n-th frame (default: all)')
    p.add_argument('--width', type=int, default=640, help='width of the written frames (default 640; 0: as is)')
    p.add_argument('--crop-bottom', type=float, default=0.0, help='share of rows cut off the bottom (the bonnet)')
    p.add_argument('--max-frames', type=int)
    args = p.parse_args(argv)
    try:
        meta = video_to_folder(args.video, args.out, _calibration(args), args.hfov_deg, args.every,
                               args.width or None, args.max_frames, args.crop_bottom)
    except (OSError, ValueError) as exc:
        print(f'video-to-folder: {exc}', file=sys.stderr)
        return 2
    cal = meta['calibration']
    told = f", chessboards: {len(cal['images_used'])} used, rms {cal['rms_px']:.2f} px" \
        if cal['kind'] == 'chessboards' else ''
    print(f"{meta['frames']} frames {meta['width']}x{meta['height']} -> {args.out} (fx {meta['k'][0]:.1f} px{told})")
    return 0


if __name__ == '__main__':
    sys.exit(main())
