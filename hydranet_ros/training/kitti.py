"""KITTI as downloaded: raw drives, the tracking benchmark, flow 2015 and depth completion.

Layouts read (no conversion step):
  raw        <root>/<date>/<date>_drive_<n>_sync/image_02/data/<frame>.png
             <root>/<date>/<date>_drive_<n>_sync/velodyne_points/data/<frame>.bin
             <root>/<date>/calib_cam_to_cam.txt (P_rect_02, R_rect_00), calib_velo_to_cam.txt (R, T)
             depth from the LiDAR, or (depth_source 'completion') from the depth-completion
             ground truth <completion_root>/<drive>_sync/proj_depth/groundtruth/image_02/<frame>.png
  tracking   <root>/image_02|image_2/<seq>/<frame>.png, velodyne/<seq>/<frame>.bin,
             label_02|label_2/<seq>.txt, calib/<seq>.txt (P2, R_rect, Tr_velo_cam)
  flow 2015  <root>/image_2/<id>_10.png, <id>_11.png, flow_occ/<id>_10.png

Depth from LiDAR: each point X_velo goes to the rectified camera by R_rect (Tr_velo_cam X) and
into the image by P2; it lands on pixel (round(u), round(v)) with depth = the third row of
P2 [X; 1] (the nearest point wins a pixel). Sparse: a 64-beam scan covers ~5% of the pixels;
the depth loss and metrics use only valid pixels.

Flow 2015 flow is forward (defined at frame 10's pixels, pointing into frame 11); this package's
flow is previous -> current defined at the current frame's pixels (p came from p - flow(p)).
The pair is therefore used time-reversed: previous = frame 11, current = frame 10, flow =
-flow_kitti, which satisfies that definition exactly.
"""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

_NUMBER = re.compile(r'[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?')
_LABEL_TOKEN = re.compile(r'[A-Za-z_][A-Za-z_0-9]*|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?')
#: KITTI object types in label files.
KITTI_TYPES = ('Car', 'Van', 'Truck', 'Pedestrian', 'Person_sitting', 'Cyclist', 'Tram', 'Misc')


def read_calib(path) -> dict[str, np.ndarray]:
    """A KITTI calibration text file: `KEY: v v ...` or `KEY v v ...` lines -> float arrays."""
    out = {}
    for line in Path(path).read_text().splitlines():
        parts = line.replace(':', ' ', 1).split() if ':' in line.split(' ', 1)[0] else line.split()
        if len(parts) < 2:
            continue
        try:
            out[parts[0]] = np.array([float(v) for v in parts[1:]])
        except ValueError:
            continue          # calib_time and similar text entries
    return out


def read_velodyne(path) -> np.ndarray:
    """[N, 4] float32 (x, y, z, reflectance) of a velodyne .bin file."""
    data = np.fromfile(path, dtype=np.float32)
    if data.size % 4:
        raise ValueError(f'{path}: {data.size} floats is not a whole number of (x, y, z, r) points')
    return data.reshape(-1, 4)


def lidar_depth(points: np.ndarray, p2: np.ndarray, r_rect: np.ndarray, tr_velo_cam: np.ndarray,
                image_size) -> np.ndarray:
    """Sparse metric depth [H, W] float32 (NaN where no point) from LiDAR points [N, >=3]."""
    h, w = image_size
    p2 = np.asarray(p2, np.float64).reshape(3, 4)
    r = np.eye(4)
    r[:3, :3] = np.asarray(r_rect, np.float64).reshape(3, 3)
    tr = np.eye(4)
    tr[:3, :4] = np.asarray(tr_velo_cam, np.float64).reshape(3, 4)
    xyz1 = np.concatenate([points[:, :3].astype(np.float64), np.ones((len(points), 1))], axis=1)
    cam = (r @ tr @ xyz1.T)                      # [4, N] rectified camera coordinates
    uvw = p2 @ cam
    depth = uvw[2]
    front = (cam[2] > 0) & (depth > 0)
    u = np.round(uvw[0, front] / depth[front]).astype(np.int64)
    v = np.round(uvw[1, front] / depth[front]).astype(np.int64)
    d = depth[front]
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    u, v, d = u[inside], v[inside], d[inside]
    order = np.argsort(-d)                       # far first, so the nearest is written last
    out = np.full((h, w), np.nan, np.float32)
    out[v[order], u[order]] = d[order]
    return out


def read_flow_png(path) -> tuple[np.ndarray, np.ndarray]:
    """KITTI flow PNG (16-bit RGB: u, v as value / 64 - 512, valid bit) -> (flow [H, W, 2], valid)."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 3:
        raise ValueError(f'{path} is not a 16-bit 3-channel KITTI flow PNG')
    bgr = raw.astype(np.float32)               # OpenCV reads B, G, R = valid, v, u
    flow = np.stack([(bgr[..., 2] - 2 ** 15) / 64.0, (bgr[..., 1] - 2 ** 15) / 64.0], axis=-1)
    valid = raw[..., 0] > 0
    flow[~valid] = np.nan
    return flow, valid


def read_depth_png(path) -> np.ndarray:
    """KITTI depth-completion PNG (uint16, depth = value / 256, 0 = none) -> metres, NaN invalid."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f'{path} is not a 16-bit single-channel KITTI depth PNG')
    depth = raw.astype(np.float32) / 256.0
    depth[raw == 0] = np.nan
    return depth


def read_tracking_labels(path) -> dict[int, list[dict]]:
    """A tracking label_02/<seq>.txt -> {frame: [{type, track, truncated, occluded, box}]}."""
    frames: dict[int, list[dict]] = {}
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if len(f) < 10:
            continue
        frames.setdefault(int(f[0]), []).append({
            'type': f[2], 'track': int(f[1]), 'truncated': float(f[3]), 'occluded': int(float(f[4])),
            'box': np.array([float(v) for v in f[6:10]], np.float32)})
    return frames


def read_object_labels(path) -> list[dict]:
    """An object-benchmark label_2/<frame>.txt -> [{type, truncated, occluded, box}].

    Read as tokens, a record starting at each type name: some exports (the nuScenes frames in
    KITTI layout among them) run records together without a newline. A record with fewer than
    the 8 leading fields is an error naming the file."""
    text = Path(path).read_text()
    out, record = [], None
    for token in _LABEL_TOKEN.findall(text) + ['']:
        if not token or not _NUMBER.fullmatch(token):
            if record is not None:
                if len(record) < 8:
                    raise ValueError(f'{path}: a {record[0]!r} record has {len(record) - 1} fields, 7 or more needed')
                out.append({'type': record[0], 'truncated': float(record[1]), 'occluded': int(float(record[2])),
                            'box': np.array([float(v) for v in record[4:8]], np.float32)})
            record = [token]
        elif record is None:
            raise ValueError(f'{path}: starts with a number ({token}), not an object type')
        else:
            record.append(token)
    return out


def _first_dir(root: Path, *names) -> Path:
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(f'{root}: none of {list(names)} found (is this the KITTI layout?)')


def raw_frames(root, depth_source: str = 'lidar', completion_root=None) -> list[dict]:
    """Every frame of every raw drive under root, with what it needs to load."""
    root = Path(root)
    frames = []
    for drive in sorted(root.glob('*/*_sync')):
        images = sorted((drive / 'image_02' / 'data').glob('*.png'))
        if not images:
            continue
        date = drive.parent
        cam, velo = read_calib(date / 'calib_cam_to_cam.txt'), read_calib(date / 'calib_velo_to_cam.txt')
        tr = np.concatenate([velo['R'].reshape(3, 3), velo['T'].reshape(3, 1)], axis=1)
        calib = {'P2': cam['P_rect_02'], 'R_rect': cam['R_rect_00'], 'Tr_velo_cam': tr}
        for k, image in enumerate(images):
            item = {'image': image, 'previous': images[k - 1] if k else None, 'calib': calib,
                    'sequence': drive.name}
            if depth_source == 'completion':
                base = Path(completion_root) if completion_root else root
                gt = base / drive.name / 'proj_depth' / 'groundtruth' / 'image_02' / image.name
                item['depth_png'] = gt if gt.is_file() else None
            else:
                item['velodyne'] = drive / 'velodyne_points' / 'data' / f'{image.stem}.bin'
            frames.append(item)
    if not frames:
        raise FileNotFoundError(f'{root}: no KITTI raw drives (<date>/<drive>_sync/image_02/data/*.png)')
    return frames


def tracking_frames(root, sequences=None) -> list[dict]:
    """Every frame of the tracking benchmark's sequences under root (training/ or testing/)."""
    root = Path(root)
    image_dir = _first_dir(root, 'image_02', 'image_2')
    label_dir = next((root / n for n in ('label_02', 'label_2') if (root / n).is_dir()), None)
    frames = []
    for seq_dir in sorted(p for p in image_dir.iterdir() if p.is_dir()):
        seq = seq_dir.name
        if sequences and seq not in sequences:
            continue
        c = read_calib(root / 'calib' / f'{seq}.txt')
        calib = {'P2': c['P2'], 'R_rect': c.get('R_rect', c.get('R0_rect')),
                 'Tr_velo_cam': c.get('Tr_velo_cam', c.get('Tr_velo_to_cam'))}
        labels = read_tracking_labels(label_dir / f'{seq}.txt') if label_dir and (label_dir / f'{seq}.txt').is_file() \
            else None
        images = sorted(seq_dir.glob('*.png'))
        for k, image in enumerate(images):
            frames.append({'image': image, 'previous': images[k - 1] if k else None, 'calib': calib,
                           'velodyne': root / 'velodyne' / seq / f'{image.stem}.bin', 'sequence': seq,
                           'labels': None if labels is None else labels.get(int(image.stem), [])})
    if not frames:
        raise FileNotFoundError(f'{root}: no tracking sequences (image_02/<seq>/*.png)')
    return frames


def flow_frames(root) -> list[dict]:
    """The flow 2015 pairs under root (training/): image_2/<id>_10.png, _11.png, flow_occ/<id>_10.png."""
    root = Path(root)
    frames = []
    for first in sorted((root / 'image_2').glob('*_10.png')):
        ident = first.name[:-len('_10.png')]
        second = first.with_name(f'{ident}_11.png')
        flow = root / 'flow_occ' / first.name
        if second.is_file():
            # time-reversed pair: see the module docstring
            frames.append({'image': first, 'previous': second, 'flow_png': flow if flow.is_file() else None,
                           'sequence': ident})
    if not frames:
        raise FileNotFoundError(f'{root}: no flow 2015 pairs (image_2/<id>_10.png and _11.png)')
    return frames
