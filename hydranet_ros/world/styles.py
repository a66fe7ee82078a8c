"""Looks and layouts of the synthetic world beyond the classic street: styles.

A style is a set of ranges a camera and a street vary over in the real world: surface palettes
and textures, sun direction and shadows, exposure and white balance, haze, road curvature,
hills and junctions, object shapes and sizes, camera height, pitch, roll and focal length,
sensor noise, blur and JPEG artefacts. Every drive of a style draws its own values from those
ranges (by seed), and every label stays exact: appearance never changes geometry, and geometry
is ray-cast as before.

Named styles:
- ``classic``: the original world (flat, straight, sunny, box-shaped objects); the default.
- ``varied``: what training uses: wide ranges of everything above.
- ``heldout``: looks training never uses: palettes, textures, low sun, a taller camera with a
  wider lens and more roll. Its drives measure how a model trained on ``varied`` generalises.

Geometry (layout, objects, camera pose and lens) is drawn from the seed; the look (colours,
textures, light, sensor) from (seed, look_seed), so the same street can be shown in many looks
with identical labels.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from hydranet_ros.world.classes import SEG_ID

#: Texture kinds the renderer knows (hydranet_ros.world.render._texture).
TEXTURES = ('plain', 'noise', 'grain', 'patches', 'stripes', 'bricks', 'slabs', 'siding',
            'checker', 'panels', 'joints')


@dataclass(frozen=True)
class Style:
    """Ranges one style draws each drive's look and layout from ((lo, hi) pairs are uniform)."""
    name: str
    # Palettes: base colours per surface (one is chosen per drive, then jittered).
    road_colors: tuple
    sidewalk_colors: tuple
    terrain_colors: tuple
    building_colors: tuple
    vegetation_colors: tuple
    marking_colors: tuple
    sky_horizon: tuple
    sky_zenith: tuple
    color_jitter: float
    # Textures per surface (one kind per drive for ground surfaces, per building for walls).
    road_textures: tuple
    sidewalk_textures: tuple
    terrain_textures: tuple
    wall_textures: tuple
    # Light.
    sun_elevation_deg: tuple
    sun_warmth: tuple          # 0 white .. 1 orange
    shadow_strength: tuple
    ambient: tuple
    exposure: tuple
    white_balance: float       # per-channel gain spread
    haze: tuple                # haze amount at 200 m
    # Layout.
    curve_amplitude_m: tuple
    curve_wavelength_m: tuple
    hill_amplitude_m: tuple
    hill_wavelength_m: tuple
    junctions_per_km: tuple
    car_shapes: tuple          # 'box', 'sedan', 'van'
    pedestrian_height_m: tuple
    cyclists_per_km: tuple
    trees_per_km: tuple
    signs_per_km: tuple
    # Camera.
    camera_height_m: tuple
    camera_pitch_deg: tuple
    camera_roll_deg: tuple
    focal_scale: tuple         # multiplies the camera preset's focal length
    # Sensor.
    noise_sigma: tuple
    blur_sigma: tuple
    jpeg_probability: float
    jpeg_quality: tuple


VARIED = Style(
    name='varied',
    road_colors=((0.33, 0.33, 0.35), (0.25, 0.25, 0.27), (0.42, 0.41, 0.40), (0.30, 0.29, 0.33)),
    sidewalk_colors=((0.62, 0.60, 0.58), (0.55, 0.52, 0.47), (0.70, 0.69, 0.66), (0.50, 0.50, 0.52)),
    terrain_colors=((0.35, 0.45, 0.22), (0.30, 0.40, 0.18), (0.45, 0.48, 0.25), (0.40, 0.36, 0.22)),
    building_colors=((0.55, 0.50, 0.45), (0.60, 0.35, 0.30), (0.45, 0.45, 0.50), (0.70, 0.65, 0.55),
                     (0.80, 0.78, 0.72), (0.50, 0.30, 0.22), (0.35, 0.35, 0.38), (0.62, 0.55, 0.40)),
    vegetation_colors=((0.25, 0.45, 0.15), (0.18, 0.35, 0.12), (0.32, 0.50, 0.20)),
    marking_colors=((0.90, 0.90, 0.88), (0.92, 0.85, 0.50)),
    sky_horizon=((0.75, 0.82, 0.92), (0.85, 0.87, 0.90), (0.70, 0.75, 0.80)),
    sky_zenith=((0.35, 0.55, 0.85), (0.50, 0.62, 0.80), (0.60, 0.65, 0.70)),
    color_jitter=0.08,
    road_textures=('noise', 'grain', 'patches'),
    sidewalk_textures=('slabs', 'bricks', 'noise'),
    terrain_textures=('noise', 'grain'),
    wall_textures=('plain', 'bricks', 'siding', 'stripes', 'noise'),
    sun_elevation_deg=(25.0, 75.0),
    sun_warmth=(0.0, 0.3),
    shadow_strength=(0.2, 0.7),
    ambient=(0.35, 0.6),
    exposure=(0.7, 1.3),
    white_balance=0.1,
    haze=(0.0, 0.5),
    curve_amplitude_m=(0.0, 12.0),
    curve_wavelength_m=(250.0, 500.0),
    hill_amplitude_m=(0.0, 2.5),
    hill_wavelength_m=(150.0, 300.0),
    junctions_per_km=(0.0, 6.0),
    car_shapes=('box', 'sedan', 'sedan', 'van'),
    pedestrian_height_m=(1.1, 1.95),
    cyclists_per_km=(0.0, 10.0),
    trees_per_km=(0.0, 40.0),
    signs_per_km=(0.0, 15.0),
    camera_height_m=(1.3, 1.9),
    camera_pitch_deg=(-2.0, 2.0),
    camera_roll_deg=(-1.5, 1.5),
    focal_scale=(1.0, 1.0),
    noise_sigma=(0.0, 6.0),
    blur_sigma=(0.0, 1.2),
    jpeg_probability=0.5,
    jpeg_quality=(45.0, 95.0),
)

# Held out: nothing below is in VARIED's palettes, textures or ranges.
HELDOUT = Style(
    name='heldout',
    road_colors=((0.52, 0.50, 0.47), (0.36, 0.26, 0.24)),          # light concrete, red asphalt
    sidewalk_colors=((0.62, 0.35, 0.28), (0.40, 0.42, 0.48)),      # red pavers, blue-grey stone
    terrain_colors=((0.62, 0.55, 0.30), (0.50, 0.40, 0.28)),       # dry grass, earth
    building_colors=((0.55, 0.70, 0.85), (0.90, 0.70, 0.75), (0.95, 0.88, 0.55), (0.60, 0.85, 0.70)),
    vegetation_colors=((0.70, 0.40, 0.12), (0.60, 0.22, 0.10), (0.75, 0.62, 0.15)),   # autumn
    marking_colors=((0.95, 0.95, 0.95),),
    sky_horizon=((0.95, 0.70, 0.50), (0.78, 0.74, 0.80)),           # dusk, overcast violet
    sky_zenith=((0.45, 0.40, 0.65), (0.55, 0.55, 0.62)),
    color_jitter=0.05,
    road_textures=('joints',),
    sidewalk_textures=('checker',),
    terrain_textures=('stripes',),
    wall_textures=('panels', 'checker'),
    sun_elevation_deg=(8.0, 18.0),
    sun_warmth=(0.5, 0.9),
    shadow_strength=(0.75, 0.9),
    ambient=(0.25, 0.32),
    exposure=(1.35, 1.6),
    white_balance=0.05,
    haze=(0.55, 0.7),
    curve_amplitude_m=(6.0, 12.0),
    curve_wavelength_m=(250.0, 400.0),
    hill_amplitude_m=(1.0, 2.5),
    hill_wavelength_m=(150.0, 250.0),
    junctions_per_km=(2.0, 6.0),
    car_shapes=('sedan', 'van'),
    pedestrian_height_m=(1.1, 1.95),
    cyclists_per_km=(5.0, 10.0),
    trees_per_km=(10.0, 40.0),
    signs_per_km=(5.0, 15.0),
    camera_height_m=(2.0, 2.4),
    camera_pitch_deg=(-4.0, -2.5),
    camera_roll_deg=(2.0, 3.0),        # sign drawn per drive: |roll| outside VARIED's range
    focal_scale=(0.8, 0.8),
    noise_sigma=(7.0, 9.0),
    blur_sigma=(0.0, 0.8),
    jpeg_probability=1.0,
    jpeg_quality=(25.0, 40.0),
)

STYLES = {'varied': VARIED, 'heldout': HELDOUT}
STYLE_NAMES = ('classic', *STYLES)


def get_style(name: str) -> Style | None:
    """The named style (None for 'classic', the original world)."""
    if name == 'classic':
        return None
    if name not in STYLES:
        raise ValueError(f"unknown world style '{name}'; known: {list(STYLE_NAMES)}")
    return STYLES[name]


@dataclass
class Look:
    """One drive's appearance, drawn from a style: everything here changes pixels, never labels."""
    ground_colors: dict
    ground_textures: dict
    marking_color: np.ndarray
    sky_colors: tuple
    sun: np.ndarray            # unit vector towards the sun (world frame)
    sun_color: np.ndarray
    ambient: float
    shadow_strength: float
    exposure: float
    white_balance: np.ndarray
    haze: float
    noise_sigma: float
    blur_sigma: float
    jpeg_quality: int          # 0: no JPEG round trip
    texture_scale: float


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _uniform(rng, pair):
    lo, hi = pair
    return float(lo) if hi <= lo else float(rng.uniform(lo, hi))


def sample_look(style: Style, rng: np.random.Generator) -> Look:
    """A drive's look drawn from style with rng."""
    def jitter(base):
        return np.clip(np.asarray(base, float) + rng.uniform(-style.color_jitter, style.color_jitter, 3), 0.02, 0.98)
    elevation = np.radians(_uniform(rng, style.sun_elevation_deg))
    azimuth = rng.uniform(0, 2 * np.pi)
    sun = np.array([np.cos(elevation) * np.sin(azimuth), np.sin(elevation), np.cos(elevation) * np.cos(azimuth)])
    warmth = _uniform(rng, style.sun_warmth)
    jpeg = rng.random() < style.jpeg_probability
    return Look(
        ground_colors={'road': jitter(_pick(rng, style.road_colors)),
                       'sidewalk': jitter(_pick(rng, style.sidewalk_colors)),
                       'terrain': jitter(_pick(rng, style.terrain_colors))},
        ground_textures={'road': _pick(rng, style.road_textures), 'sidewalk': _pick(rng, style.sidewalk_textures),
                         'terrain': _pick(rng, style.terrain_textures)},
        marking_color=jitter(_pick(rng, style.marking_colors)),
        sky_colors=(jitter(_pick(rng, style.sky_horizon)), jitter(_pick(rng, style.sky_zenith))),
        sun=sun, sun_color=np.array([1.0, 1.0 - 0.25 * warmth, 1.0 - 0.55 * warmth]),
        ambient=_uniform(rng, style.ambient), shadow_strength=_uniform(rng, style.shadow_strength),
        exposure=_uniform(rng, style.exposure),
        white_balance=1.0 + rng.uniform(-style.white_balance, style.white_balance, 3),
        haze=_uniform(rng, style.haze), noise_sigma=_uniform(rng, style.noise_sigma),
        blur_sigma=_uniform(rng, style.blur_sigma),
        jpeg_quality=int(round(_uniform(rng, style.jpeg_quality))) if jpeg else 0,
        texture_scale=float(rng.uniform(0.8, 1.25)))


@dataclass(frozen=True)
class Road:
    """The road's centre line x_c(z) (a sine curve) and the ground height y = g(z) (hills)."""
    curve_amplitude: float = 0.0
    curve_wavelength: float = 1.0
    curve_phase: float = 0.0
    hill_amplitude: float = 0.0
    hill_wavelength: float = 1.0
    hill_phase: float = 0.0

    @property
    def flat(self) -> bool:
        """True when the ground is the plane y = 0."""
        return self.hill_amplitude == 0.0

    def centre_x(self, z):
        """x of the road's centre line at z (0 at z = 0)."""
        k = 2 * np.pi / self.curve_wavelength
        return self.curve_amplitude * (np.sin(k * np.asarray(z, float) + self.curve_phase) - np.sin(self.curve_phase))

    def heading(self, z):
        """dx_c/dz: the road's direction at z."""
        k = 2 * np.pi / self.curve_wavelength
        return self.curve_amplitude * k * np.cos(k * np.asarray(z, float) + self.curve_phase)

    def height(self, z):
        """Ground height at z (0 at z = 0)."""
        k = 2 * np.pi / self.hill_wavelength
        return self.hill_amplitude * (np.cos(self.hill_phase) - np.cos(k * np.asarray(z, float) + self.hill_phase))

    def grade(self, z):
        """dg/dz: the road's slope at z."""
        k = 2 * np.pi / self.hill_wavelength
        return self.hill_amplitude * k * np.sin(k * np.asarray(z, float) + self.hill_phase)


def generate_styled_scene(seed: int, style: Style, duration_s: float = 30.0, static: bool = False,
                          look_seed: int = 0):
    """A street of the given style: layout and camera from seed, look from (seed, look_seed)."""
    from hydranet_ros.world.scene import Box, Scene
    rng = np.random.default_rng([seed, 7919])
    look = sample_look(style, np.random.default_rng([seed, 104729, look_seed]))
    if static:   # a clean sensor: no noise, blur or JPEG (geometry checks compare pixels)
        look = replace(look, jpeg_quality=0, noise_sigma=0.0, blur_sigma=0.0)
    lane = rng.uniform(3.0, 3.8)
    road_half = lane
    sidewalk = rng.uniform(1.8, 3.5)
    speed = rng.uniform(6.0, 14.0)
    z_end = speed * duration_s + 150.0
    road = Road(_uniform(rng, style.curve_amplitude_m), _uniform(rng, style.curve_wavelength_m),
                rng.uniform(0, 2 * np.pi), _uniform(rng, style.hill_amplitude_m),
                _uniform(rng, style.hill_wavelength_m), rng.uniform(0, 2 * np.pi))
    boxes: list = []
    next_id = [1]
    lrng = np.random.default_rng([seed, 104729, look_seed, 1])   # colours of objects: part of the look

    def jitter(base, spread=None):
        spread = style.color_jitter if spread is None else spread
        return np.clip(np.asarray(base, float) + lrng.uniform(-spread, spread, 3), 0.02, 0.98)

    def new_instance():
        next_id[0] += 1
        return next_id[0] - 1

    def add(lo, hi, cls, col, vel=None, instance=0, accent=None, follows=False, texture='plain'):
        """A box placed relative to the road: x offset from the centre line, y from the ground."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        zc = 0.5 * (lo[2] + hi[2])
        shift_x = float(road.centre_x(zc))
        if road.flat:
            shift_y = 0.0
        else:   # sink the box to the lowest ground under it, so no end floats
            zs = np.linspace(lo[2], hi[2], 5)
            shift_y = float(road.height(zs).min()) if hi[1] > 1.0 or not follows else float(road.height(zc))
        lo, hi = lo + [shift_x, shift_y, 0], hi + [shift_x, shift_y, 0]
        boxes.append(Box(lo, hi, SEG_ID[cls], col, np.zeros(3) if vel is None else np.asarray(vel, float),
                         instance, accent, follows_road=follows, texture=texture))

    junctions = []
    n_junctions = rng.poisson(_uniform(rng, style.junctions_per_km) * z_end / 1000.0)
    for _ in range(n_junctions):
        junctions.append((float(rng.uniform(30.0, z_end - 20.0)), float(rng.uniform(4.0, 7.0))))

    def in_junction(z0, z1, margin=2.0):
        return any(z1 > zj - hw - margin and z0 < zj + hw + margin for zj, hw in junctions)

    edge = road_half + sidewalk
    max_heading = abs(road.curve_amplitude) * 2 * np.pi / road.curve_wavelength
    for side in (-1, 1):
        z = rng.uniform(-30, -10)
        while z < z_end:                                   # buildings and vegetation blocks
            length = rng.uniform(8, 22)
            setback = edge + rng.uniform(0.5, 6.0) + max_heading * length / 2
            depth = rng.uniform(6, 15)
            if not in_junction(z, z + length):
                if rng.random() < 0.75:
                    height = rng.uniform(5, 24)
                    x0, x1 = sorted([side * setback, side * (setback + depth)])
                    add([x0, 0, z], [x1, height, z + length], 'building', jitter(_pick(lrng, style.building_colors)),
                        texture=_pick(lrng, style.wall_textures))
                else:
                    height = rng.uniform(1.5, 8)
                    x0, x1 = sorted([side * setback, side * (setback + rng.uniform(2, 6))])
                    add([x0, 0, z], [x1, height, z + length], 'vegetation',
                        jitter(_pick(lrng, style.vegetation_colors)), texture='noise')
            z += length + rng.uniform(0.5, 8)
        z = rng.uniform(0, 25)
        while z < z_end:                                   # street lights
            x = side * (road_half + rng.uniform(0.3, 0.8))
            if not in_junction(z, z):
                add([x - 0.08, 0, z - 0.08], [x + 0.08, rng.uniform(3.5, 7), z + 0.08], 'pole',
                    jitter([0.5, 0.5, 0.5], 0.1))
            z += rng.uniform(18, 40)
        for _ in range(rng.poisson(_uniform(rng, style.signs_per_km) * z_end / 2000.0)):   # signs: post + plate
            z = rng.uniform(5, z_end)
            x = side * (road_half + rng.uniform(0.3, 1.0))
            if in_junction(z, z):
                continue
            top = rng.uniform(2.2, 3.2)
            plate = rng.uniform(0.5, 0.9)
            add([x - 0.05, 0, z - 0.05], [x + 0.05, top, z + 0.05], 'pole', jitter([0.55, 0.55, 0.55], 0.1))
            add([x - plate / 2, top - 0.1, z - 0.04], [x + plate / 2, top + plate - 0.1, z + 0.04], 'pole',
                jitter(lrng.choice([[0.8, 0.1, 0.1], [0.1, 0.3, 0.8], [0.9, 0.8, 0.1], [0.9, 0.9, 0.9]]), 0.05))
        for _ in range(rng.poisson(_uniform(rng, style.trees_per_km) * z_end / 2000.0)):   # trees: trunk + crown
            z = rng.uniform(0, z_end)
            x = side * (road_half + sidewalk + rng.uniform(0.3, 1.5))
            if in_junction(z, z):
                continue
            trunk_h, crown = rng.uniform(1.8, 3.5), rng.uniform(2.0, 5.0)
            trunk_w = rng.uniform(0.2, 0.45)
            add([x - trunk_w / 2, 0, z - trunk_w / 2], [x + trunk_w / 2, trunk_h + 0.3, z + trunk_w / 2],
                'vegetation', jitter([0.35, 0.25, 0.15], 0.05))
            add([x - crown / 2, trunk_h, z - crown / 2], [x + crown / 2, trunk_h + crown * rng.uniform(0.7, 1.2),
                                                          z + crown / 2], 'vegetation',
                jitter(_pick(lrng, style.vegetation_colors)), texture='noise')

    def car(x, z, vel, follows, park=False):
        shape = _pick(rng, style.car_shapes)
        inst = new_instance()
        body = jitter(lrng.uniform(0.05, 0.95, 3), 0.0)
        glass = np.array([0.1, 0.12, 0.15])
        if shape == 'van':
            w, h, length = rng.uniform(1.8, 2.1), rng.uniform(1.9, 2.6), rng.uniform(4.5, 6.0)
        else:
            w, h, length = rng.uniform(1.6, 1.95), rng.uniform(1.35, 1.75), rng.uniform(3.8, 4.9)
        if park:
            x = np.sign(x) * (road_half - w / 2 - 0.2)
        if shape == 'sedan':
            cut = 0.55 * h
            add([x - w / 2, 0.0, z], [x + w / 2, cut, z + length], 'car', body, vel, inst, glass, follows)
            f0, f1 = rng.uniform(0.18, 0.3), rng.uniform(0.2, 0.35)
            add([x - w / 2 + 0.08, cut, z + f0 * length], [x + w / 2 - 0.08, h, z + (1 - f1) * length], 'car',
                body, vel, inst, glass, follows)
        else:
            add([x - w / 2, 0.0, z], [x + w / 2, h, z + length], 'car', body, vel, inst, glass, follows)
        return length

    def person(x, z, vel, follows, height):
        inst = new_instance()
        shirt, trousers = jitter(lrng.uniform(0.1, 0.9, 3), 0.0), jitter(lrng.uniform(0.05, 0.5, 3), 0.0)
        half = 0.2 + 0.06 * (height - 1.1)
        neck = 0.86 * height
        add([x - half, 0, z - 0.18], [x + half, neck, z + 0.18], 'pedestrian', shirt, vel, inst, trousers, follows)
        add([x - 0.11, neck, z - 0.11], [x + 0.11, height, z + 0.11], 'pedestrian',
            jitter([0.75, 0.6, 0.5], 0.15), vel, inst, None, follows)

    def cyclist(x, z, vel):
        inst = new_instance()
        frame_col = jitter(lrng.uniform(0.05, 0.95, 3), 0.0)
        add([x - 0.08, 0, z], [x + 0.08, 0.95, z + 1.7], 'pedestrian', frame_col, vel, inst, None, True)
        add([x - 0.22, 0.95, z + 0.45], [x + 0.22, rng.uniform(1.6, 1.85), z + 1.0], 'pedestrian',
            jitter(lrng.uniform(0.1, 0.9, 3), 0.0), vel, inst, jitter(lrng.uniform(0.05, 0.5, 3), 0.0), True)

    if not static:
        for lane_sign, direction in ((1, 1), (-1, -1)):                # traffic in both lanes
            z = rng.uniform(10, 30)
            while z < z_end:
                v = direction * rng.uniform(4, 12) if direction < 0 else rng.uniform(0.4, 1.1) * speed
                length = car(lane_sign * lane / 2 + rng.uniform(-0.3, 0.3), z, [0, 0, v], True)
                z += length + rng.uniform(8, 45)
        for side in (-1, 1):                                          # parked cars
            z = rng.uniform(5, 40)
            while z < z_end:
                if rng.random() < 0.5 and not in_junction(z, z + 5):
                    car(side * road_half, z, None, False, park=True)
                z += rng.uniform(12, 50)
        for zj, hw in junctions:                                      # cross traffic
            for k in range(int(rng.integers(0, 3))):
                direction = rng.choice([-1, 1])
                x0 = -direction * rng.uniform(15, 60)
                car(x0, zj + direction * rng.uniform(0.5, hw - 2.5) - 2.0, [direction * rng.uniform(4, 10), 0, 0],
                    False)
        n_people = int(z_end / rng.uniform(8, 15))
        for _ in range(n_people):                                     # pedestrians of many sizes
            side = rng.choice([-1, 1])
            z = rng.uniform(5, z_end)
            x = side * (road_half + rng.uniform(0.3, sidewalk - 0.3))
            vel = [0, 0, rng.choice([-1, 1]) * rng.uniform(0.8, 1.6)]
            follows = True
            if rng.random() < 0.15:
                vel, follows = [-side * rng.uniform(0.8, 1.4), 0, 0], False
            person(x, z, vel, follows, _uniform(rng, style.pedestrian_height_m))
        for _ in range(rng.poisson(_uniform(rng, style.cyclists_per_km) * z_end / 1000.0)):   # cyclists at the kerb
            side = rng.choice([-1, 1])
            v = side * rng.uniform(3, 7)
            cyclist(side * (road_half - 0.6), rng.uniform(5, z_end), [0, 0, v])
    height = _uniform(rng, style.camera_height_m)
    roll = _uniform(rng, style.camera_roll_deg) * (rng.choice([-1, 1]) if style.camera_roll_deg[0] > 0 else 1)
    return Scene(seed=seed, road_half=road_half, lane_width=lane, sidewalk=sidewalk, boxes=boxes,
                 ego_speed=speed, ego_x=lane / 2, sway=0.0 if static else rng.uniform(0.0, 0.5),
                 camera_height=height, ground_colors=dict(look.ground_colors, lane_marking=look.marking_color),
                 sky_colors=look.sky_colors, sun=look.sun, exposure=look.exposure,
                 noise_sigma=0.0 if static else look.noise_sigma, blur_sigma=0.0 if static else look.blur_sigma,
                 road=road, pitch=float(np.radians(_uniform(rng, style.camera_pitch_deg))),
                 roll=float(np.radians(roll)), junctions=junctions, look=look,
                 focal_scale=_uniform(rng, style.focal_scale))
