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


@dataclass
class GroundScene:
    """The ground and obstacle points of one frame and the plane under them."""
    ground: SemanticCloud
    obstacles: SemanticCloud
    plane: GroundPlane

    def obstacles_between(self, min_height_m: float = 0.0, max_height_m: float = 0.0) -> SemanticCloud:
        """The obstacle points whose height over the plane is >= min_height_m and, when
        max_height_m > 0, <= max_height_m; 0 and 0: all of them."""
        if min_height_m == 0.0 and max_height_m == 0.0:
            return self.obstacles
        h = self.plane.height(self.obstacles.xyz)
        keep = h >= min_height_m
        if max_height_m > 0.0:
            keep &= h <= max_height_m
        return self.obstacles.subset(keep)

    def grid(self, spec: GridSpec, min_obstacle_height_m: float, max_obstacle_height_m: float) -> GroundGrid:
        return free_space_grid(self.ground.xyz, self.obstacles.xyz, self.plane, spec, min_obstacle_height_m,
                               max_obstacle_height_m)


def ground_scene(depth: np.ndarray, labels: np.ndarray, intrinsics: Intrinsics, settings: GroundSettings,
                 rgb: np.ndarray | None = None, stride: int = 1, min_m: float = 0.0,
                 max_m: float = float('inf'), sigma: np.ndarray | None = None,
                 max_sigma: float = float('inf')) -> GroundScene:
    """Split a frame's depth by class into ground and obstacle clouds (points whose depth
    uncertainty sigma is above max_sigma left out) and find the plane."""
    common = dict(sigma=sigma, max_sigma=max_sigma)
    ground = semantic_cloud(depth, intrinsics, rgb, labels, stride, min_m, max_m, keep_labels=settings.ground_ids,
                            **common)
    obstacles = semantic_cloud(depth, intrinsics, rgb, labels, stride, min_m, max_m,
                               keep_labels=settings.obstacle_ids, **common)
    prior = settings.mount()
    plane = prior
    if settings.plane == 'fit':
        near = ground.xyz[ground.xyz[:, 2] <= FIT_RANGE_M]
        plane = fit_ground_plane(near, prior, max_tilt_deg=settings.max_tilt_deg)
    return GroundScene(ground, obstacles, plane)
