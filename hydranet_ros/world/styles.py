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

from dataclasses import dataclass

import numpy as np


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
