"""The ground plane under one camera and a free-space grid on it, from depth and segmentation.

Camera optical frame (x right, y down, z forward, metres). A plane is n . p + offset = 0 with the
unit normal n pointing up (out of the ground, to the camera's side), so offset is the camera's
height above it and n . p + offset a point's height over the ground. The plane is fitted per
frame to the points of the ground classes (RANSAC over a prior, then least squares on the
inliers) or given by the camera's mount (height and pitch). The grid lies on that plane: its x
axis the optical axis projected onto the plane (forward), its z axis the plane's normal, y to the
left; cell (0, 0) is the right-hand corner at the camera's foot, so the grid's origin is a pose in
the optical frame and RViz draws a nav_msgs/OccupancyGrid of it in place without any TF.
ROS-free: numpy in, dataclasses out.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

#: OccupancyGrid cell values (nav_msgs): unknown, free, occupied
UNKNOWN, FREE, OCCUPIED = -1, 0, 100


@dataclass(frozen=True)
class GroundPlane:
    """n . p + offset = 0 in the optical frame; n unit, pointing up; offset: the camera's height (m)."""
    normal: np.ndarray
    offset: float
    fitted: bool = True          # False: from the mount parameters (no fit, or the fit failed)

    @classmethod
    def from_mount(cls, height_m: float, pitch_rad: float = 0.0, roll_rad: float = 0.0) -> GroundPlane:
        """The plane under a camera height_m above flat ground, pitched down by pitch_rad (REP 103:
        positive pitch looks down) and rolled by roll_rad about its optical axis (positive: the
        image turns clockwise as seen by the camera)."""
        if not height_m > 0:
            raise ValueError(f'camera height must be > 0 m, got {height_m}')
        cp, sp = math.cos(pitch_rad), math.sin(pitch_rad)
        up = np.array([0.0, -cp, -sp])
        cr, sr = math.cos(roll_rad), math.sin(roll_rad)
        up = np.array([cr * up[0] - sr * up[1], sr * up[0] + cr * up[1], up[2]])
        return cls(up / np.linalg.norm(up), float(height_m), fitted=False)

    def height(self, xyz: np.ndarray) -> np.ndarray:
        """Height of each point [N, 3] over the plane (m; negative below it)."""
        return np.asarray(xyz, np.float64) @ self.normal + self.offset

    @property
    def pitch_rad(self) -> float:
        """How far the optical axis looks down against the plane (REP 103 sign)."""
        return float(math.asin(float(np.clip(-self.normal[2], -1.0, 1.0))))


def fit_ground_plane(xyz: np.ndarray, prior: GroundPlane, max_tilt_deg: float = 15.0, inlier_m: float = 0.15,
                     min_points: int = 50, iterations: int = 64, max_points: int = 4000,
                     seed: int = 0) -> GroundPlane:
    """The plane through the most of xyz [N, 3] (points of the ground classes) within inlier_m, its
    normal within max_tilt_deg of the prior's and its height between half and twice the prior's;
    the prior itself (fitted=False) when fewer than min_points points are given or none fits.
    Deterministic (seeded), so one frame always gives one plane."""
    xyz = np.asarray(xyz).reshape(-1, 3)
    if not np.isfinite(xyz).all():                 # the row-wise filter only where it has work
        xyz = xyz[np.isfinite(xyz).all(axis=1)]
    if len(xyz) < max(min_points, 3):
        return prior
    rng = np.random.default_rng(seed)
    if len(xyz) > max_points:
        xyz = xyz[rng.choice(len(xyz), max_points, replace=False)]
    xyz = np.asarray(xyz, np.float64)              # after the sample: only its points are converted
    triples = xyz[rng.integers(0, len(xyz), size=(iterations, 3))]
    normals = np.cross(triples[:, 1] - triples[:, 0], triples[:, 2] - triples[:, 0])
    norm = np.linalg.norm(normals, axis=1)
    ok = norm > 1e-9
    normals[ok] /= norm[ok, None]
    normals *= np.sign(normals @ prior.normal)[:, None]          # point up, as the prior does
    offsets = -np.einsum('ij,ij->i', normals, triples[:, 0])
    ok &= (normals @ prior.normal) >= math.cos(math.radians(max_tilt_deg))
    ok &= (offsets > 0.5 * prior.offset) & (offsets < 2.0 * prior.offset)
    if not ok.any():
        return prior
    residual = xyz @ np.ascontiguousarray(normals[ok].T)           # [N, candidates]; in place below:
    residual += offsets[ok]                                        # a fresh temporary per step costs
    np.abs(residual, out=residual)                                 # more than the product itself
    counts = (residual < inlier_m).sum(axis=0)
    best = int(np.argmax(counts))
    inliers = xyz[residual[:, best] < inlier_m]
    if len(inliers) < min_points:
        return prior
    centre = inliers.mean(axis=0)
    normal = np.linalg.svd(inliers - centre, full_matrices=False)[2][-1]
    normal *= np.sign(normal @ prior.normal) or 1.0
    offset = float(-normal @ centre)
    tilted = normal @ prior.normal < math.cos(math.radians(max_tilt_deg))
    if tilted or not 0.5 * prior.offset < offset < 2 * prior.offset:
        return prior
    return GroundPlane(normal, offset, fitted=True)


@dataclass(frozen=True)
class GridSpec:
    """The grid's extent on the plane: forward range_m from the camera's foot, width_m across it."""
    resolution_m: float = 0.2
    range_m: float = 30.0
    width_m: float = 20.0

    def __post_init__(self):
        if not (self.resolution_m > 0 and self.range_m >= self.resolution_m and self.width_m >= self.resolution_m):
            raise ValueError(f'grid needs resolution > 0 and range, width >= resolution, got {self}')

    @property
    def shape(self) -> tuple[int, int]:
        """(rows: across, columns: forward) cells."""
        return int(round(self.width_m / self.resolution_m)), int(round(self.range_m / self.resolution_m))


@dataclass
class GroundGrid:
    """cells [rows, cols] int8 (UNKNOWN, FREE, OCCUPIED), row = across (y, leftwards), col = forward
    (x); origin: cell (0, 0)'s corner in the optical frame; axes: the grid's x, y, z axes as the
    columns of a rotation matrix in the optical frame; plane: the plane it lies on."""
    cells: np.ndarray
    resolution_m: float
    origin: np.ndarray
    axes: np.ndarray
    plane: GroundPlane

    def cell_centres(self) -> np.ndarray:
        """[rows, cols, 3] centre of every cell in the optical frame."""
        rows, cols = self.cells.shape
        x = (np.arange(cols) + 0.5) * self.resolution_m
        y = (np.arange(rows) + 0.5) * self.resolution_m
        return (self.origin + x[None, :, None] * self.axes[:, 0] + y[:, None, None] * self.axes[:, 1])

    def forward_distance(self) -> np.ndarray:
        """[rows, cols] distance of each cell centre from the camera's foot along the grid's x (m)."""
        rows, cols = self.cells.shape
        return np.broadcast_to((np.arange(cols) + 0.5) * self.resolution_m, (rows, cols))

    def lookup(self, xyz: np.ndarray) -> np.ndarray:
        """This grid's value at points [..., 3] of the optical frame (UNKNOWN outside it)."""
        row, col, inside = _cell_index(xyz, self.origin, self.axes, self.resolution_m, self.cells.shape)
        out = np.full(row.shape, UNKNOWN, np.int8)
        out[inside] = self.cells[row[inside], col[inside]]
        return out


def grid_frame(plane: GroundPlane, spec: GridSpec) -> tuple[np.ndarray, np.ndarray]:
    """(origin [3], axes [3, 3]) of a grid of spec on plane, in the optical frame."""
    z = plane.normal / np.linalg.norm(plane.normal)
    forward = np.array([0.0, 0.0, 1.0]) - z[2] * z
    if np.linalg.norm(forward) < 1e-6:
        raise ValueError('the camera looks straight along the ground normal: no forward direction on the plane')
    x = forward / np.linalg.norm(forward)
    y = np.cross(z, x)
    foot = -plane.offset * z
    origin = foot - 0.5 * spec.width_m * y
    return origin, np.stack([x, y, z], axis=1)


def _cell_index(xyz: np.ndarray, origin: np.ndarray, axes: np.ndarray, resolution_m: float, shape):
    """(row, col, inside) of points [..., 3] in a grid of shape (rows, cols) at origin/axes."""
    rel = np.asarray(xyz, np.float64) - origin
    col = np.floor(rel @ axes[:, 0] / resolution_m).astype(np.int64)
    row = np.floor(rel @ axes[:, 1] / resolution_m).astype(np.int64)
    return row, col, (row >= 0) & (row < shape[0]) & (col >= 0) & (col < shape[1])


@functools.lru_cache(maxsize=8)
def _angular_cells(spec: GridSpec) -> tuple:
    """What _seen_free needs of a grid that does not depend on the frame (cached per spec): the
    angle bins' width and count, the cells grouped by the sparse-table level their angular extent
    needs (level, flat cell indices, first bin, last bin), and each cell's near-edge distance."""
    rows, cols = spec.shape
    res = spec.resolution_m
    step = 0.5 * res / math.hypot(spec.range_m, 0.5 * spec.width_m)
    n = int(math.ceil(math.pi / step)) + 1
    ca = np.arange(cols + 1) * res                      # cell corners, forward from the foot
    cb = np.arange(rows + 1) * res - 0.5 * spec.width_m  # and leftwards
    corner = np.arctan2(cb[:, None], np.maximum(ca[None, :], 1e-9))
    quad = np.stack([corner[:-1, :-1], corner[:-1, 1:], corner[1:, :-1], corner[1:, 1:]])
    lo = np.clip(((quad.min(axis=0) + math.pi / 2) / step).astype(np.int64), 0, n - 1).ravel()
    hi = np.clip(((quad.max(axis=0) + math.pi / 2) / step).astype(np.int64), 0, n - 1).ravel()
    k = np.floor(np.log2(hi - lo + 1)).astype(np.int64)
    groups = []
    for level in np.unique(k):
        cells = np.flatnonzero(k == level)
        groups.append((int(level), cells, lo[cells], hi[cells] - 2 ** int(level) + 1))
    centre = np.hypot((np.arange(cols) + 0.5)[None, :] * res, (np.arange(rows) + 0.5)[:, None] * res
                      - 0.5 * spec.width_m)
    near_edge = (centre - res / math.sqrt(2)).ravel()
    for array in (near_edge, *(a for g in groups for a in g[1:])):
        array.flags.writeable = False                   # shared by every frame of this spec
    return step, n, tuple(groups), near_edge


def _seen_free(ground_xyz: np.ndarray, plane: GroundPlane, origin: np.ndarray, axes: np.ndarray,
               spec: GridSpec) -> np.ndarray:
    """[rows, cols] bool: the cells a line of sight from the camera's foot to a seen ground point
    passes over (nav2's clearing rays). Angles around the foot are binned finely (half a cell at
    the grid's far corner); per bin the farthest seen ground; a cell is free when some bin its
    angular extent spans reaches past its near edge (a range maximum over bins: O(cells + points),
    where marching every ray cell by cell costs a frame time)."""
    rows, cols = spec.shape
    foot = -plane.offset * plane.normal
    rel = ground_xyz - foot
    a, b = rel @ axes[:, 0], rel @ axes[:, 1]           # forward, left of the foot, on the plane
    ahead = a > 0
    a, b = a[ahead], b[ahead]
    if not len(a):
        return np.zeros((rows, cols), bool)
    step, n, groups, near_edge = _angular_cells(spec)
    farthest = np.zeros(n)
    np.maximum.at(farthest, np.clip(((np.arctan2(b, a) + math.pi / 2) / step).astype(np.int64), 0, n - 1),
                  np.hypot(a, b))
    # sparse table: level k holds the maximum over 2^k consecutive bins
    levels = [farthest]
    while 2 ** len(levels) <= n:
        last, width = levels[-1], 2 ** (len(levels) - 1)
        levels.append(np.maximum(last[:-width], last[width:]))
    reach = np.empty(rows * cols)
    for level, cells, first, second in groups:
        table = levels[level]
        reach[cells] = np.maximum(table[first], table[second])
    return (reach >= near_edge).reshape(rows, cols)


def free_space_grid(ground_xyz: np.ndarray, obstacle_xyz: np.ndarray, plane: GroundPlane, spec: GridSpec,
                    min_height_m: float = 0.0, max_height_m: float = 2.5) -> GroundGrid:
    """The grid on plane: free, the cells under the line of sight from the camera to each ground
    point (the ground there was seen, or a ray to it passed over); occupied (over free), the cells
    under an obstacle point whose height over the plane is in [min_height_m, max_height_m];
    unknown, the rest (not seen, or hidden behind an obstacle)."""
    origin, axes = grid_frame(plane, spec)
    cells = np.full(spec.shape, UNKNOWN, np.int8)
    ground_xyz = np.asarray(ground_xyz, np.float64).reshape(-1, 3)
    obstacle_xyz = np.asarray(obstacle_xyz, np.float64).reshape(-1, 3)
    if len(obstacle_xyz):
        h = plane.height(obstacle_xyz)
        obstacle_xyz = obstacle_xyz[(h >= min_height_m) & (h <= max_height_m)]
    cells[_seen_free(ground_xyz, plane, origin, axes, spec)] = FREE
    row, col, inside = _cell_index(obstacle_xyz, origin, axes, spec.resolution_m, spec.shape)
    cells[row[inside], col[inside]] = OCCUPIED
    return GroundGrid(cells, spec.resolution_m, origin, axes, plane)


def rotation_quaternion(axes: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix (its columns the rotated frame's axes), w >= 0."""
    m = np.asarray(axes, np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = ((m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s)
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        v = [0.0, 0.0, 0.0]
        v[i] = 0.25 * s
        v[j] = (m[j, i] + m[i, j]) / s
        v[k] = (m[k, i] + m[i, k]) / s
        q = (v[0], v[1], v[2], (m[k, j] - m[j, k]) / s)
    q = np.array(q) / np.linalg.norm(q)
    if q[3] < 0:
        q = -q
    return tuple(float(v) for v in q)


def grid_agreement(predicted: GroundGrid, truth: GroundGrid, bands=((0, 10), (10, 20), (20, 30)),
                   tolerance_m: float = 1.0) -> dict:
    """predicted against truth by forward range band of truth's grid (predicted is looked up at
    truth's cell centres, so their planes may differ): IoU of free cells and of occupied cells, and,
    as thin obstacle outlines rarely share cells exactly, occupied recall (truth's occupied cells
    with a predicted one within tolerance_m) and precision (the converse)."""
    import cv2
    pred = predicted.lookup(truth.cell_centres())
    dist = truth.forward_distance()
    k = 2 * int(round(tolerance_m / truth.resolution_m)) + 1
    kernel = np.ones((k, k), np.uint8)
    pred_occ, true_occ = pred == OCCUPIED, truth.cells == OCCUPIED
    near_pred = cv2.dilate(pred_occ.astype(np.uint8), kernel) > 0
    near_true = cv2.dilate(true_occ.astype(np.uint8), kernel) > 0
    out = {}
    for lo, hi in bands:
        band = (dist >= lo) & (dist < hi)
        for name, value in (('free', FREE), ('occupied', OCCUPIED)):
            p, t = (pred == value) & band, (truth.cells == value) & band
            out[f'{name}_iou_{lo}_{hi}m'] = _ratio((p & t).sum(), (p | t).sum())
        out[f'occupied_recall_{lo}_{hi}m'] = _ratio((true_occ & band & near_pred).sum(), (true_occ & band).sum())
        out[f'occupied_precision_{lo}_{hi}m'] = _ratio((pred_occ & band & near_true).sum(), (pred_occ & band).sum())
    return out


def _ratio(num, den) -> float:
    return float(num) / float(den) if den else float('nan')
