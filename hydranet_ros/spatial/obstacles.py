"""One frame's obstacles and ground for a planner: the ground and obstacle point clouds (nav2's
marking and clearing observation sources), the ground plane, and the free-space grid.

Classes are split by name into ground (free to drive on) and obstacle (blocking) sets; every
other class (sky, anything the model has that a user leaves out) goes to neither. ROS-free.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hydranet_ros.spatial.cloud import Intrinsics, SemanticCloud, semantic_cloud
from hydranet_ros.spatial.ground import GridSpec, GroundGrid, GroundPlane, fit_ground_plane, free_space_grid

#: a plane is fitted only to ground points this close (far ones carry the largest depth errors)
FIT_RANGE_M = 40.0


@dataclass(frozen=True)
class GroundSettings:
    """How a frame is split and its plane found."""
    ground_ids: tuple               # segmentation class ids that are drivable ground
    obstacle_ids: tuple             # segmentation class ids that block
    plane: str = 'fit'              # 'fit' (per frame, the mount as prior and fallback) or 'fixed' (the mount)
    camera_height_m: float = 1.65
    camera_pitch_deg: float = 0.0   # REP 103: positive looks down
    max_tilt_deg: float = 15.0      # a fitted plane's normal may differ this much from the mount's

    @classmethod
    def from_names(cls, names, ground_classes, obstacle_classes, **kwargs) -> GroundSettings:
        """Class names -> ids of a model's segmentation classes (names it lacks are skipped)."""
        names = [str(n) for n in names]
        return cls(tuple(names.index(n) for n in ground_classes if n in names),
                   tuple(names.index(n) for n in obstacle_classes if n in names), **kwargs)

    def mount(self) -> GroundPlane:
        return GroundPlane.from_mount(self.camera_height_m, math.radians(self.camera_pitch_deg))


#: What a caller can ask of ground_scene: the two clouds as outputs ('ground', 'obstacles'), the
#: plane under them ('plane': heights over the ground) and the free-space grid ('grid': both
#: clouds' points and the plane).
SCENE_PARTS = frozenset({'ground', 'obstacles', 'plane', 'grid'})


@dataclass
class GroundScene:
    """The ground and obstacle clouds of one frame (None where no asked-for part publishes them),
    the plane under them, and the points the free-space grid is built from (see ground_scene)."""
    ground: SemanticCloud | None
    obstacles: SemanticCloud | None
    plane: GroundPlane
    grid_points: tuple[np.ndarray, np.ndarray] | None = None     # ground xyz, obstacle xyz

    def grid(self, spec: GridSpec, min_obstacle_height_m: float, max_obstacle_height_m: float) -> GroundGrid:
        """The free-space grid of this frame (see ground.free_space_grid)."""
        if self.grid_points is None:
            raise ValueError("this scene was split without 'grid'")
        return free_space_grid(*self.grid_points, self.plane, spec, min_obstacle_height_m, max_obstacle_height_m)


def ground_scene(depth: np.ndarray, labels: np.ndarray, intrinsics: Intrinsics, settings: GroundSettings,
                 rgb: np.ndarray | None = None, stride: int = 1, min_m: float = 0.0,
                 max_m: float = float('inf'), sigma: np.ndarray | None = None,
                 max_sigma: float = float('inf'), parts=SCENE_PARTS, grid_stride: int | None = None,
                 obstacle_band: tuple[float, float] = (0.0, 0.0)) -> GroundScene:
    """Split a frame's depth by class into ground and obstacle clouds (points whose depth
    uncertainty sigma is above max_sigma left out) and find the plane, as far as `parts` (a subset
    of SCENE_PARTS) needs: the clouds 'ground' and 'obstacles' from every stride-th pixel, coloured
    by rgb; the plane (for 'plane' and 'grid'; fitted to the ground points within FIT_RANGE_M, or
    the mount's) and the grid's points from every grid_stride-th pixel (default: stride; the clouds
    serve where the strides agree). obstacle_band (min, max height over the plane, m; 0 and 0: no
    band; max 0: no upper bound): 'obstacles' holds only the points in it, cut while the cloud is
    built (the plane is found first), so the points outside cost no gathering; the grid still gets
    every obstacle point."""
    parts = frozenset(parts)
    if not parts <= SCENE_PARTS:
        raise ValueError(f'unknown scene parts {sorted(parts - SCENE_PARTS)}; known: {sorted(SCENE_PARTS)}')
    grid_stride = stride if grid_stride is None else int(grid_stride)
    obstacle_band = (float(obstacle_band[0]), float(obstacle_band[1]))
    banded = 'obstacles' in parts and obstacle_band != (0.0, 0.0)
    if banded:
        parts |= {'plane'}
    fit = settings.plane == 'fit' and bool(parts & {'plane', 'grid'})

    def cloud(ids, step, colour=False, far=max_m, band=None):
        return semantic_cloud(depth, intrinsics, rgb if colour else None, labels, step, min_m, far, keep_labels=ids,
                              sigma=sigma, max_sigma=max_sigma, band=band)
    ground = cloud(settings.ground_ids, stride, True) if 'ground' in parts else None
    reuse = grid_stride == stride
    ground_points = obstacle_points = None
    if 'grid' in parts or fit:
        # for the fit alone, only the points it uses (those within FIT_RANGE_M)
        far = max_m if 'grid' in parts else min(max_m, FIT_RANGE_M)
        ground_points = ground if reuse and ground is not None else cloud(settings.ground_ids, grid_stride, far=far)
    plane = settings.mount()
    if fit:
        near = ground_points.xyz
        if not near.size or near[:, 2].max() > FIT_RANGE_M:
            near = near[near[:, 2] <= FIT_RANGE_M]
        plane = fit_ground_plane(near, plane, max_tilt_deg=settings.max_tilt_deg)
    obstacles = None
    if 'obstacles' in parts:
        obstacles = cloud(settings.obstacle_ids, stride, True,
                          band=(plane, *obstacle_band) if banded else None)
    if 'grid' in parts:
        obstacle_points = (obstacles if reuse and obstacles is not None and not banded
                           else cloud(settings.obstacle_ids, grid_stride))
    grid_points = (ground_points.xyz, obstacle_points.xyz) if 'grid' in parts else None
    return GroundScene(ground, obstacles, plane, grid_points)
