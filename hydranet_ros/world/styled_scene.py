"""The street of a styled world (world/styles.py holds the style data): layout and camera from a
seed, the look from (seed, look_seed). The classic world (scene.generate_scene) is kept beside it
rather than expressed as one style: its drives are the regression baseline of the bundled models'
classic-world numbers (docs/MODEL.md), which a re-expression would re-randomise."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from hydranet_ros.world.classes import SEG_ID
from hydranet_ros.world.road import Road
from hydranet_ros.world.scene import Box, Scene
from hydranet_ros.world.styles import Style, _pick, _uniform, sample_look


class _Street:
    """What one styled street is being built from: its random streams, road, sizes and junctions,
    and the boxes placed so far. Every draw happens in the order the street has always been
    drawn in, so a seed gives the same street."""

    def __init__(self, seed: int, style: Style, duration_s: float, look_seed: int):
        self.style = style
        self.rng = rng = np.random.default_rng([seed, 7919])
        self.look = sample_look(style, np.random.default_rng([seed, 104729, look_seed]))
        self.lane = rng.uniform(3.0, 3.8)
        self.road_half = self.lane
        self.sidewalk = rng.uniform(1.8, 3.5)
        self.speed = rng.uniform(6.0, 14.0)
        self.z_end = self.speed * duration_s + 150.0
        self.road = Road(_uniform(rng, style.curve_amplitude_m), _uniform(rng, style.curve_wavelength_m),
                         rng.uniform(0, 2 * np.pi), _uniform(rng, style.hill_amplitude_m),
                         _uniform(rng, style.hill_wavelength_m), rng.uniform(0, 2 * np.pi))
        self.boxes: list = []
        self._next_id = 1
        self.lrng = np.random.default_rng([seed, 104729, look_seed, 1])   # colours of objects: part of the look
        self.junctions = []
        n_junctions = rng.poisson(_uniform(rng, style.junctions_per_km) * self.z_end / 1000.0)
        for _ in range(n_junctions):
            self.junctions.append((float(rng.uniform(30.0, self.z_end - 20.0)), float(rng.uniform(4.0, 7.0))))

    def jitter(self, base, spread=None):
        spread = self.style.color_jitter if spread is None else spread
        return np.clip(np.asarray(base, float) + self.lrng.uniform(-spread, spread, 3), 0.02, 0.98)

    def new_instance(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def in_junction(self, z0, z1, margin=2.0) -> bool:
        return any(z1 > zj - hw - margin and z0 < zj + hw + margin for zj, hw in self.junctions)

    def add(self, lo, hi, cls, col, vel=None, instance=0, accent=None, follows=False, texture='plain'):
        """A box placed relative to the road: x offset from the centre line, y from the ground."""
        road = self.road
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        zc = 0.5 * (lo[2] + hi[2])
        shift_x = float(road.centre_x(zc))
        if road.flat:
            shift_y = 0.0
        else:   # sink the box to the lowest ground under it, so no end floats
            zs = np.linspace(lo[2], hi[2], 5)
            shift_y = float(road.height(zs).min()) if hi[1] > 1.0 or not follows else float(road.height(zc))
        lo, hi = lo + [shift_x, shift_y, 0], hi + [shift_x, shift_y, 0]
        self.boxes.append(Box(lo, hi, SEG_ID[cls], col, np.zeros(3) if vel is None else np.asarray(vel, float),
                              instance, accent, follows_road=follows, texture=texture))

    def blocks(self, side: int):
        """Buildings and vegetation blocks along one side."""
        rng, style, lrng = self.rng, self.style, self.lrng
        edge = self.road_half + self.sidewalk
        max_heading = abs(self.road.curve_amplitude) * 2 * np.pi / self.road.curve_wavelength
        z = rng.uniform(-30, -10)
        while z < self.z_end:
            length = rng.uniform(8, 22)
            setback = edge + rng.uniform(0.5, 6.0) + max_heading * length / 2
            depth = rng.uniform(6, 15)
            if not self.in_junction(z, z + length):
                if rng.random() < 0.75:
                    height = rng.uniform(5, 24)
                    x0, x1 = sorted([side * setback, side * (setback + depth)])
                    self.add([x0, 0, z], [x1, height, z + length], 'building',
                             self.jitter(_pick(lrng, style.building_colors)), texture=_pick(lrng, style.wall_textures))
                else:
                    height = rng.uniform(1.5, 8)
                    x0, x1 = sorted([side * setback, side * (setback + rng.uniform(2, 6))])
                    self.add([x0, 0, z], [x1, height, z + length], 'vegetation',
                             self.jitter(_pick(lrng, style.vegetation_colors)), texture='noise')
            z += length + rng.uniform(0.5, 8)

    def street_furniture(self, side: int):
        """Street lights, signs (post and plate) and trees (trunk and crown) along one side."""
        rng, style, lrng, road_half, z_end = self.rng, self.style, self.lrng, self.road_half, self.z_end
        z = rng.uniform(0, 25)
        while z < z_end:                                   # street lights
            x = side * (road_half + rng.uniform(0.3, 0.8))
            if not self.in_junction(z, z):
                self.add([x - 0.08, 0, z - 0.08], [x + 0.08, rng.uniform(3.5, 7), z + 0.08], 'pole',
                         self.jitter([0.5, 0.5, 0.5], 0.1))
            z += rng.uniform(18, 40)
        for _ in range(rng.poisson(_uniform(rng, style.signs_per_km) * z_end / 2000.0)):
            z = rng.uniform(5, z_end)
            x = side * (road_half + rng.uniform(0.3, 1.0))
            if self.in_junction(z, z):
                continue
            top = rng.uniform(2.2, 3.2)
            plate = rng.uniform(0.5, 0.9)
            self.add([x - 0.05, 0, z - 0.05], [x + 0.05, top, z + 0.05], 'pole', self.jitter([0.55, 0.55, 0.55], 0.1))
            self.add([x - plate / 2, top - 0.1, z - 0.04], [x + plate / 2, top + plate - 0.1, z + 0.04], 'pole',
                     self.jitter(lrng.choice([[0.8, 0.1, 0.1], [0.1, 0.3, 0.8], [0.9, 0.8, 0.1], [0.9, 0.9, 0.9]]),
                                 0.05))
        for _ in range(rng.poisson(_uniform(rng, style.trees_per_km) * z_end / 2000.0)):
            z = rng.uniform(0, z_end)
            x = side * (road_half + self.sidewalk + rng.uniform(0.3, 1.5))
            if self.in_junction(z, z):
                continue
            trunk_h, crown = rng.uniform(1.8, 3.5), rng.uniform(2.0, 5.0)
            trunk_w = rng.uniform(0.2, 0.45)
            self.add([x - trunk_w / 2, 0, z - trunk_w / 2], [x + trunk_w / 2, trunk_h + 0.3, z + trunk_w / 2],
                     'vegetation', self.jitter([0.35, 0.25, 0.15], 0.05))
            self.add([x - crown / 2, trunk_h, z - crown / 2],
                     [x + crown / 2, trunk_h + crown * rng.uniform(0.7, 1.2), z + crown / 2], 'vegetation',
                     self.jitter(_pick(lrng, style.vegetation_colors)), texture='noise')

    def car(self, x, z, vel, follows, park=False) -> float:
        """A car of the style's shapes (a sedan is body and cabin); returns its length."""
        rng, lrng = self.rng, self.lrng
        shape = _pick(rng, self.style.car_shapes)
        inst = self.new_instance()
        body = self.jitter(lrng.uniform(0.05, 0.95, 3), 0.0)
        glass = np.array([0.1, 0.12, 0.15])
        if shape == 'van':
            w, h, length = rng.uniform(1.8, 2.1), rng.uniform(1.9, 2.6), rng.uniform(4.5, 6.0)
        else:
            w, h, length = rng.uniform(1.6, 1.95), rng.uniform(1.35, 1.75), rng.uniform(3.8, 4.9)
        if park:
            x = np.sign(x) * (self.road_half - w / 2 - 0.2)
        if shape == 'sedan':
            cut = 0.55 * h
            self.add([x - w / 2, 0.0, z], [x + w / 2, cut, z + length], 'car', body, vel, inst, glass, follows)
            f0, f1 = rng.uniform(0.18, 0.3), rng.uniform(0.2, 0.35)
            self.add([x - w / 2 + 0.08, cut, z + f0 * length], [x + w / 2 - 0.08, h, z + (1 - f1) * length], 'car',
                     body, vel, inst, glass, follows)
        else:
            self.add([x - w / 2, 0.0, z], [x + w / 2, h, z + length], 'car', body, vel, inst, glass, follows)
        return length

    def person(self, x, z, vel, follows, height):
        inst = self.new_instance()
        lrng = self.lrng
        shirt, trousers = self.jitter(lrng.uniform(0.1, 0.9, 3), 0.0), self.jitter(lrng.uniform(0.05, 0.5, 3), 0.0)
        half = 0.2 + 0.06 * (height - 1.1)
        neck = 0.86 * height
        self.add([x - half, 0, z - 0.18], [x + half, neck, z + 0.18], 'pedestrian', shirt, vel, inst, trousers,
                 follows)
        self.add([x - 0.11, neck, z - 0.11], [x + 0.11, height, z + 0.11], 'pedestrian',
                 self.jitter([0.75, 0.6, 0.5], 0.15), vel, inst, None, follows)

    def cyclist(self, x, z, vel):
        inst = self.new_instance()
        lrng = self.lrng
        frame_col = self.jitter(lrng.uniform(0.05, 0.95, 3), 0.0)
        self.add([x - 0.08, 0, z], [x + 0.08, 0.95, z + 1.7], 'pedestrian', frame_col, vel, inst, None, True)
        self.add([x - 0.22, 0.95, z + 0.45], [x + 0.22, self.rng.uniform(1.6, 1.85), z + 1.0], 'pedestrian',
                 self.jitter(lrng.uniform(0.1, 0.9, 3), 0.0), vel, inst, self.jitter(lrng.uniform(0.05, 0.5, 3), 0.0),
                 True)

    def vehicles(self):
        """Traffic in both lanes, parked cars, cross traffic at junctions."""
        rng, lane, z_end = self.rng, self.lane, self.z_end
        for lane_sign, direction in ((1, 1), (-1, -1)):
            z = rng.uniform(10, 30)
            while z < z_end:
                v = direction * rng.uniform(4, 12) if direction < 0 else rng.uniform(0.4, 1.1) * self.speed
                length = self.car(lane_sign * lane / 2 + rng.uniform(-0.3, 0.3), z, [0, 0, v], True)
                z += length + rng.uniform(8, 45)
        for side in (-1, 1):
            z = rng.uniform(5, 40)
            while z < z_end:
                if rng.random() < 0.5 and not self.in_junction(z, z + 5):
                    self.car(side * self.road_half, z, None, False, park=True)
                z += rng.uniform(12, 50)
        for zj, hw in self.junctions:
            for k in range(int(rng.integers(0, 3))):
                direction = rng.choice([-1, 1])
                x0 = -direction * rng.uniform(15, 60)
                self.car(x0, zj + direction * rng.uniform(0.5, hw - 2.5) - 2.0,
                         [direction * rng.uniform(4, 10), 0, 0], False)

    def people(self):
        """Pedestrians of many sizes (some crossing) and cyclists at the kerb."""
        rng, style, road_half, z_end = self.rng, self.style, self.road_half, self.z_end
        n_people = int(z_end / rng.uniform(8, 15))
        for _ in range(n_people):
            side = rng.choice([-1, 1])
            z = rng.uniform(5, z_end)
            x = side * (road_half + rng.uniform(0.3, self.sidewalk - 0.3))
            vel = [0, 0, rng.choice([-1, 1]) * rng.uniform(0.8, 1.6)]
            follows = True
            if rng.random() < 0.15:
                vel, follows = [-side * rng.uniform(0.8, 1.4), 0, 0], False
            self.person(x, z, vel, follows, _uniform(rng, style.pedestrian_height_m))
        for _ in range(rng.poisson(_uniform(rng, style.cyclists_per_km) * z_end / 1000.0)):
            side = rng.choice([-1, 1])
            v = side * rng.uniform(3, 7)
            self.cyclist(side * (road_half - 0.6), rng.uniform(5, z_end), [0, 0, v])


def generate_styled_scene(seed: int, style: Style, duration_s: float = 30.0, static: bool = False,
                          look_seed: int = 0):
    """A street of the given style: layout and camera from seed, look from (seed, look_seed)."""
    street = _Street(seed, style, duration_s, look_seed)
    look, rng = street.look, street.rng
    if static:   # a clean sensor: no noise, blur or JPEG (geometry checks compare pixels)
        look = replace(look, jpeg_quality=0, noise_sigma=0.0, blur_sigma=0.0)
    for side in (-1, 1):
        street.blocks(side)
        street.street_furniture(side)
    if not static:
        street.vehicles()
        street.people()
    height = _uniform(rng, style.camera_height_m)
    roll = _uniform(rng, style.camera_roll_deg) * (rng.choice([-1, 1]) if style.camera_roll_deg[0] > 0 else 1)
    lane = street.lane
    return Scene(seed=seed, road_half=street.road_half, lane_width=lane, sidewalk=street.sidewalk, boxes=street.boxes,
                 ego_speed=street.speed, ego_x=lane / 2, sway=0.0 if static else rng.uniform(0.0, 0.5),
                 camera_height=height, ground_colors=dict(look.ground_colors, lane_marking=look.marking_color),
                 sky_colors=look.sky_colors, sun=look.sun, exposure=look.exposure,
                 noise_sigma=0.0 if static else look.noise_sigma, blur_sigma=0.0 if static else look.blur_sigma,
                 road=street.road, pitch=float(np.radians(_uniform(rng, style.camera_pitch_deg))),
                 roll=float(np.radians(roll)), junctions=street.junctions, look=look,
                 focal_scale=_uniform(rng, style.focal_scale))
