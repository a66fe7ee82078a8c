"""A procedural street, deterministic by seed: road, lane marks, sidewalks, terrain, buildings,
vegetation, poles, and cars and pedestrians that move on their own.

World frame: x to the right of the road, y up, z along the road; the ground is y = 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hydranet_ros.world.classes import SEG_ID
from hydranet_ros.world.road import Road

#: The farthest a ray meets anything (metres); rays that meet nothing by then see sky.
MAX_RANGE = 200.0


@dataclass
class Box:
    """An axis-aligned box moving at constant velocity (metres, m/s)."""

    lo: np.ndarray
    hi: np.ndarray
    cls: int
    color: np.ndarray
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))
    instance: int = 0           # > 0 for countable objects (cars, pedestrians); parts share it
    accent: np.ndarray | None = None   # second colour (car windows, trousers, tree crown)
    follows_road: bool = False  # moves along the road's curve and hills (styled worlds)
    texture: str = 'plain'      # surface texture kind (styled worlds)


@dataclass
class Scene:
    """The procedural street of one seed: boxes with classes, colours and velocities."""
    seed: int
    road_half: float
    lane_width: float
    sidewalk: float
    boxes: list
    ego_speed: float
    ego_x: float
    sway: float
    camera_height: float
    ground_colors: dict
    sky_colors: tuple
    sun: np.ndarray
    exposure: float
    noise_sigma: float
    blur_sigma: float
    # Styled worlds (hydranet_ros.world.styles); the defaults are the classic flat, straight street.
    road: Road = field(default_factory=Road)
    pitch: float = 0.0          # camera pitch (radians, positive looks up) relative to the road
    roll: float = 0.0           # camera roll (radians)
    junctions: list = field(default_factory=list)   # (z, half width) of cross roads
    look: object = None         # styles.Look; None: the classic shading
    focal_scale: float = 1.0    # the style's lens: multiplies the camera preset's focal length

    def camera_pose(self, t: float):
        """Camera centre (world) and yaw (radians, positive turns towards +x) at time t."""
        z = self.ego_speed * t
        x = self.ego_x + self.sway * np.sin(0.7 * t)
        yaw = self.sway * 0.7 * np.cos(0.7 * t) / max(self.ego_speed, 1e-3)
        if self.look is None:
            return np.array([x, self.camera_height, z]), float(yaw)
        x = x + float(self.road.centre_x(z))
        yaw = yaw + float(np.arctan(self.road.heading(z)))
        return np.array([x, self.camera_height + float(self.road.height(z)), z]), float(yaw)

    def camera_frame(self, t: float):
        """Camera centre (world) and camera-to-world rotation (camera axes x right, y down,
        z forward) at time t: yaw along the road, pitch with the road's grade plus the mount's."""
        centre, yaw = self.camera_pose(t)
        if self.look is None:
            return centre, rotation(yaw)
        pitch = self.pitch + float(np.arctan(self.road.grade(centre[2])))
        return centre, rotation(yaw, pitch, self.roll)

    def camera_to_world(self, t: float) -> np.ndarray:
        """camera_frame(t) as one 4x4 transform (camera -> world): the true ego-motion that
        odometry reports."""
        centre, r = self.camera_frame(t)
        out = np.eye(4)
        out[:3, :3], out[:3, 3] = r, centre
        return out

    def _motion_arrays(self):
        if getattr(self, '_motion_cache', None) is None or self._motion_cache[0] != len(self.boxes):
            lo = np.stack([b.lo for b in self.boxes])
            hi = np.stack([b.hi for b in self.boxes])
            vel = np.stack([b.velocity for b in self.boxes])
            follows = np.array([b.follows_road for b in self.boxes])
            self._motion_cache = (len(self.boxes), lo, hi, vel, follows, 0.5 * (lo[:, 2] + hi[:, 2]))
        return self._motion_cache[1:]

    def box_arrays(self, t: float):
        """[N, 3] lower and upper corners of every box at time t."""
        if self.look is None:
            lo = np.stack([b.lo + b.velocity * t for b in self.boxes])
            hi = np.stack([b.hi + b.velocity * t for b in self.boxes])
            return lo, hi
        lo, hi, vel, follows, zc = self._motion_arrays()
        shift = vel * t
        if follows.any():
            z0, z1 = zc[follows], zc[follows] + shift[follows, 2]
            shift[follows, 0] += self.road.centre_x(z1) - self.road.centre_x(z0)
            shift[follows, 1] += self.road.height(z1) - self.road.height(z0)
        return lo + shift, hi + shift

    def box_motion(self, t: float, dt: float) -> np.ndarray:
        """[N, 3] how far every box moved from t - dt to t (boxes translate, never rotate)."""
        if self.look is None:
            return np.stack([b.velocity * dt for b in self.boxes])
        return self.box_arrays(t)[0] - self.box_arrays(t - dt)[0]


def rotation(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world rotation; camera axes (x right, y down, z forward), world y up. Yaw turns
    towards +x, positive pitch looks up, roll turns about the optical axis."""
    c, s = np.cos(yaw), np.sin(yaw)
    m = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    if pitch or roll:
        cp, sp, cr, sr = np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
        m = m @ np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]]) @ np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return m @ np.diag([1.0, -1.0, 1.0])


def generate_scene(seed: int, duration_s: float = 30.0, static: bool = False) -> Scene:
    """A new street. static=True: no moving objects and no sway (pure ego translation)."""
    rng = np.random.default_rng(seed)
    lane = rng.uniform(3.0, 3.8)
    road_half = lane
    sidewalk = rng.uniform(1.8, 3.5)
    speed = rng.uniform(6.0, 14.0)
    z_end = speed * duration_s + 150.0
    boxes: list[Box] = []
    next_id = [1]

    def color(base, spread=0.08):
        return np.clip(np.asarray(base) + rng.uniform(-spread, spread, 3), 0.02, 0.98)

    def add(lo, hi, cls, col, vel=None, thing=False, accent=None):
        inst = 0
        if thing:
            inst = next_id[0]
            next_id[0] += 1
        boxes.append(Box(np.asarray(lo, float), np.asarray(hi, float), SEG_ID[cls], col,
                         np.zeros(3) if vel is None else np.asarray(vel, float), inst, accent))

    edge = road_half + sidewalk
    for side in (-1, 1):
        z = rng.uniform(-30, -10)
        while z < z_end:                                   # buildings and vegetation blocks
            length = rng.uniform(8, 22)
            setback = edge + rng.uniform(0.5, 6.0)
            depth = rng.uniform(6, 15)
            if rng.random() < 0.75:
                height = rng.uniform(5, 24)
                x0, x1 = sorted([side * setback, side * (setback + depth)])
                add([x0, 0, z], [x1, height, z + length], 'building',
                    color(rng.choice([[0.55, 0.5, 0.45], [0.6, 0.35, 0.3], [0.45, 0.45, 0.5], [0.7, 0.65, 0.55]])))
            else:
                height = rng.uniform(1.5, 8)
                x0, x1 = sorted([side * setback, side * (setback + rng.uniform(2, 6))])
                add([x0, 0, z], [x1, height, z + length], 'vegetation', color([0.25, 0.45, 0.15], 0.1))
            z += length + rng.uniform(0.5, 8)
        z = rng.uniform(0, 25)
        while z < z_end:                                   # street lights / sign posts
            x = side * (road_half + rng.uniform(0.3, 0.8))
            add([x - 0.08, 0, z - 0.08], [x + 0.08, rng.uniform(3.5, 7), z + 0.08], 'pole',
                color([0.5, 0.5, 0.5], 0.05))
            z += rng.uniform(18, 40)
    if not static:
        # Traffic in both lanes; the ego lane is +x, oncoming is -x.
        for lane_sign, direction in ((1, 1), (-1, -1)):
            z = rng.uniform(10, 30)
            while z < z_end:
                w, h, length = rng.uniform(1.6, 2.0), rng.uniform(1.4, 1.9), rng.uniform(3.8, 4.9)
                x = lane_sign * lane / 2 + rng.uniform(-0.3, 0.3)
                v = direction * rng.uniform(4, 12) if direction < 0 else rng.uniform(0.4, 1.1) * speed
                body = color(rng.uniform(0.05, 0.95, 3), 0.0)
                add([x - w / 2, 0.0, z], [x + w / 2, h, z + length], 'car', body, [0, 0, v], True,
                    accent=np.array([0.1, 0.12, 0.15]))
                z += length + rng.uniform(8, 45)
        for side in (-1, 1):                               # parked cars at the kerb
            z = rng.uniform(5, 40)
            while z < z_end:
                w, h, length = rng.uniform(1.6, 1.9), rng.uniform(1.4, 1.7), rng.uniform(3.8, 4.6)
                x = side * (road_half - w / 2 - 0.2)
                if rng.random() < 0.5:
                    add([x - w / 2, 0, z], [x + w / 2, h, z + length], 'car', color(rng.uniform(0.05, 0.95, 3), 0.0),
                        None, True, accent=np.array([0.1, 0.12, 0.15]))
                z += rng.uniform(12, 50)
        n_people = int(z_end / rng.uniform(8, 15))
        for _ in range(n_people):                          # pedestrians walk along or across
            side = rng.choice([-1, 1])
            z = rng.uniform(5, z_end)
            x = side * (road_half + rng.uniform(0.3, sidewalk - 0.3))
            vel = [0, 0, rng.choice([-1, 1]) * rng.uniform(0.8, 1.6)]
            if rng.random() < 0.15:
                vel = [-side * rng.uniform(0.8, 1.4), 0, 0]
            h = rng.uniform(1.55, 1.9)
            add([x - 0.25, 0, z - 0.2], [x + 0.25, h, z + 0.2], 'pedestrian',
                color(rng.uniform(0.1, 0.9, 3), 0.0), vel, True, accent=color(rng.uniform(0.05, 0.5, 3), 0.0))
    ground = {'road': color([0.33, 0.33, 0.35], 0.06), 'lane_marking': color([0.9, 0.9, 0.88], 0.05),
              'sidewalk': color([0.62, 0.6, 0.58], 0.08), 'terrain': color([0.35, 0.45, 0.22], 0.1)}
    sun = np.array([rng.uniform(-1, 1), rng.uniform(0.5, 1.5), rng.uniform(-1, 1)])
    return Scene(seed=seed, road_half=road_half, lane_width=lane, sidewalk=sidewalk, boxes=boxes,
                 ego_speed=speed, ego_x=lane / 2, sway=0.0 if static else rng.uniform(0.0, 0.5),
                 camera_height=rng.uniform(1.4, 1.8), ground_colors=ground,
                 sky_colors=(color([0.75, 0.82, 0.92], 0.06), color([0.35, 0.55, 0.85], 0.08)),
                 sun=sun / np.linalg.norm(sun), exposure=rng.uniform(0.75, 1.2),
                 noise_sigma=0.0 if static else rng.uniform(1.0, 5.0),
                 blur_sigma=0.0 if static else rng.choice([0.0, 0.0, 0.6, 1.0]))
