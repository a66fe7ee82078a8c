"""Back-projection of a depth image through pinhole intrinsics into a labelled, coloured cloud.

Camera optical frame (REP 103/105): x right, y down, z forward, metres. A pixel (u, v) is
taken at its centre as camera_info's K defines it: x = (u - cx) z / fx, y = (v - cy) z / fy,
exactly as depth_image_proc does, so this cloud and depth_image_proc's agree point for point.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def cloud_dtype(sigma: bool = False, instance: bool = False) -> np.dtype:
    """PointCloud2 (sensor_msgs) layout of the semantic cloud: x, y, z float32 metres, rgb as RViz
    reads it (a float32 whose bytes are 0x00RRGGBB, little endian), label uint8 (segmentation class
    id), a byte of padding, instance uint16 (the `instances` image's id, 0: none) where the cloud
    carries it, else 2 more bytes of padding, so each point starts 4-byte aligned (point_step 20);
    with the depth's uncertainty, sigma float32 metres (the Laplace scale of the depth error along
    the ray) after that (point_step 24)."""
    names, formats, offsets = ['x', 'y', 'z', 'rgb', 'label'], ['<f4', '<f4', '<f4', '<u4', 'u1'], [0, 4, 8, 12, 16]
    if instance:
        names, formats, offsets = [*names, 'instance'], [*formats, '<u2'], [*offsets, 18]
    if sigma:
        names, formats, offsets = [*names, 'sigma'], [*formats, '<f4'], [*offsets, 20]
    return np.dtype({'names': names, 'formats': formats, 'offsets': offsets, 'itemsize': 24 if sigma else 20})


CLOUD_DTYPE = cloud_dtype()
CLOUD_SIGMA_DTYPE = cloud_dtype(sigma=True)


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of an image of (height, width) pixels."""
    fx: float
    fy: float
    cx: float
    cy: float
    height: int
    width: int

    @classmethod
    def from_k(cls, k, height: int, width: int) -> Intrinsics:
        """From a row-major 3x3 K (camera_info.k)."""
        k = [float(v) for v in k]
        if len(k) != 9 or k[0] <= 0 or k[4] <= 0:
            raise ValueError(f'K must be 9 values with fx, fy > 0, got {k}')
        return cls(k[0], k[4], k[2], k[5], int(height), int(width))

    @classmethod
    def from_camera_info(cls, k, p, height: int, width: int) -> Intrinsics:
        """The intrinsics of a rectified image: camera_info's P (row-major 3x4: fx' = P[0], fy' =
        P[5], cx' = P[2], cy' = P[6]) where it is set, K where P is all zeros (a camera that
        publishes no rectification). sensor_msgs/CameraInfo defines K for the raw (distorted) image
        and P for the rectified one, which is what this package takes as input, as
        depth_image_proc and image_geometry do. P's Tx (a right stereo camera's baseline term) does
        not enter a monocular back-projection."""
        if uses_projection(p):
            p = [float(v) for v in p]
            return cls(p[0], p[5], p[2], p[6], int(height), int(width))
        return cls.from_k(k, height, width)


def uses_projection(p) -> bool:
    """Whether a camera_info's P is set (positive focal lengths) and so gives the intrinsics."""
    p = [float(v) for v in (p if p is not None else ())]
    return len(p) == 12 and all(math.isfinite(v) for v in p) and p[0] > 0 and p[5] > 0


@dataclass
class SemanticCloud:
    """N points: xyz [N, 3] float32 metres, rgb [N, 3] uint8 (or None), label [N] uint8 (or None),
    sigma [N] float32 metres (or None), instance [N] uint16 ids (or None); rows and cols give the
    pixel each came from."""
    xyz: np.ndarray
    rgb: np.ndarray | None
    label: np.ndarray | None
    _keep: np.ndarray
    _stride: int
    sigma: np.ndarray | None = None
    instance: np.ndarray | None = None

    @property
    def dtype(self) -> np.dtype:
        """Its PointCloud2 layout (cloud_dtype)."""
        return cloud_dtype(self.sigma is not None, self.instance is not None)

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    @property
    def rows(self) -> np.ndarray:
        return np.nonzero(self._keep)[0] * self._stride

    @property
    def cols(self) -> np.ndarray:
        return np.nonzero(self._keep)[1] * self._stride


#: up to this many ids, label_mask compares each (a pass per id costs less than one gather)
_FEW_IDS = 8


def label_mask(labels: np.ndarray, ids) -> np.ndarray:
    """labels in ids: one comparison per id for a few ids of integer labels, a lookup table for
    more of 8- and 16-bit unsigned labels (one gather, where np.isin sorts), np.isin otherwise."""
    ids = np.asarray(list(ids), dtype=np.int64)
    if labels.dtype.kind in 'ui' and len(ids) <= _FEW_IDS:
        labels = np.ascontiguousarray(labels)      # a comparison over a strided view costs ~7x more
        mask = np.zeros(labels.shape, bool)
        for i in np.unique(ids).tolist():
            np.logical_or(mask, labels == i, out=mask)
        return mask
    if labels.dtype.kind != 'u' or labels.dtype.itemsize > 2:
        return np.isin(labels, ids)
    table = np.zeros(1 << (8 * labels.dtype.itemsize), bool)
    table[ids[(ids >= 0) & (ids < len(table))]] = True
    return table[labels]


def semantic_cloud(depth: np.ndarray, intrinsics: Intrinsics, rgb: np.ndarray | None = None,
                   labels: np.ndarray | None = None, stride: int = 1, min_m: float = 0.0,
                   max_m: float = float('inf'), drop_labels=(), keep_labels=None, sigma: np.ndarray | None = None,
                   max_sigma: float = float('inf'), instances: np.ndarray | None = None,
                   band: tuple | None = None) -> SemanticCloud:
    """Every stride-th pixel (rows and columns) with a finite depth in (min_m, max_m], a label not
    in drop_labels and, when keep_labels is given, in keep_labels, and, when sigma (the depth's
    uncertainty, metres) is given, a sigma <= max_sigma, back-projected. rgb, labels, sigma and
    instances (uint16 ids), when given, must have depth's size. band, (plane, min_height_m,
    max_height_m) with plane a ground.GroundPlane: only the points whose plane.height is >=
    min_height_m and, when max_height_m > 0, <= max_height_m; the other arrays are gathered for
    those points alone."""
    depth = np.asarray(depth, dtype=np.float32)
    h, w = depth.shape
    if (h, w) != (intrinsics.height, intrinsics.width):
        raise ValueError(f'depth is {w}x{h} but the intrinsics are for '
                         f'{intrinsics.width}x{intrinsics.height}')
    for name, array in (('rgb', rgb), ('labels', labels), ('sigma', sigma), ('instances', instances)):
        if array is not None and array.shape[:2] != (h, w):
            raise ValueError(f'{name} is {array.shape[1]}x{array.shape[0]}, depth is {w}x{h}')
    if stride < 1:
        raise ValueError(f'stride must be >= 1, got {stride}')
    sub = np.ascontiguousarray(depth[::stride, ::stride])    # the masks' passes: several times cheaper
    with np.errstate(invalid='ignore'):
        keep = np.isfinite(sub) & (sub > max(min_m, 0.0)) & (sub <= max_m)
    lab = None
    if labels is not None:
        lab = labels[::stride, ::stride]
        if len(drop_labels):
            keep &= ~label_mask(lab, drop_labels)
        if keep_labels is not None:
            keep &= label_mask(lab, keep_labels)
    elif keep_labels is not None:
        raise ValueError('keep_labels needs labels')
    sub_sigma = None
    if sigma is not None:
        sub_sigma = np.ascontiguousarray(np.asarray(sigma, np.float32)[::stride, ::stride])
        if max_sigma < float('inf'):
            with np.errstate(invalid='ignore'):
                keep &= sub_sigma <= max_sigma
    # The kept pixels as flat indices (row-major, the order boolean indexing gives), gathered with
    # take from the full-resolution arrays: a boolean mask over a strided view costs several
    # times more per array.
    flat = np.flatnonzero(keep)
    rows, cols = np.divmod(flat, keep.shape[1])
    full = rows * (stride * w) + cols * stride

    def at(array):
        a = np.ascontiguousarray(array)
        return a.reshape(h * w, *a.shape[2:]).take(full, axis=0)
    z = at(depth)
    x_ray = ((np.arange(0, w, stride, dtype=np.float32) - np.float32(intrinsics.cx)) / np.float32(intrinsics.fx))
    y_ray = ((np.arange(0, h, stride, dtype=np.float32) - np.float32(intrinsics.cy)) / np.float32(intrinsics.fy))
    xyz = np.empty((z.size, 3), np.float32)
    xyz[:, 0] = x_ray.take(cols) * z
    xyz[:, 1] = y_ray.take(rows) * z
    xyz[:, 2] = z
    if band is not None:
        plane, low, high = band
        height = plane.height(xyz)
        inside = height >= low
        if high > 0.0:
            inside &= height <= high
        if not inside.all():
            np.put(keep, flat[~inside], False)
            index = np.flatnonzero(inside)
            xyz, full = xyz.take(index, axis=0), full.take(index)
    return SemanticCloud(xyz, None if rgb is None else at(rgb),
                         None if labels is None else at(labels).astype(np.uint8, copy=False), keep, stride,
                         None if sigma is None else at(np.asarray(sigma, np.float32)),
                         None if instances is None else at(np.asarray(instances, np.uint16)))

