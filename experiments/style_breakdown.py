"""Which part of a style costs a model what (issue 17; docs/MODEL.md, "Adapting to an unseen look"):
a model scored on drives rendered with only some of the held-out style's ranges (the camera, the
look, the sensor) and varied's for the rest, or with the held-out style and a clean sensor.

    python -m experiments.style_breakdown models/hydranet_default.pt [--parts camera,look,sensor,clean_sensor]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys


from hydranet_ros.training import evaluation
from hydranet_ros.world import styles

LAYOUT = ('curve_amplitude_m', 'curve_wavelength_m', 'hill_amplitude_m', 'hill_wavelength_m', 'junctions_per_km',
          'car_shapes', 'pedestrian_height_m', 'cyclists_per_km', 'trees_per_km', 'signs_per_km')
CAMERA = ('camera_height_m', 'camera_pitch_deg', 'camera_roll_deg', 'focal_scale')
SENSOR = ('noise_sigma', 'blur_sigma', 'jpeg_probability', 'jpeg_quality')
LOOK = tuple(f.name for f in dataclasses.fields(styles.Style) if f.name not in LAYOUT + CAMERA + SENSOR + ('name',))


def variant(part: str) -> styles.Style:
    """The style scored as 'heldout' for one part."""
    held, varied = styles.HELDOUT, styles.VARIED
    if part == 'clean_sensor':
        return dataclasses.replace(held, noise_sigma=(0.0, 3.0), jpeg_probability=0.0)
    fields = {'camera': CAMERA, 'look': LOOK, 'sensor': SENSOR}[part]
    return dataclasses.replace(varied, name='heldout', **{k: getattr(held, k) for k in fields})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('checkpoint')
    p.add_argument('--parts', default='camera,look,sensor,clean_sensor')
    p.add_argument('--seeds', default='2000-2009')
    args = p.parse_args(argv)
    original = styles.STYLES['heldout']
    try:
        for part in args.parts.split(','):
            styles.STYLES['heldout'] = variant(part)
            print(f'== held-out {part} only' if part != 'clean_sensor' else '== held-out, clean sensor', flush=True)
            evaluation.main(['--checkpoint', args.checkpoint, '--seeds', args.seeds, '--style', 'heldout',
                             '--camera', 'kitti,vga'])
    finally:
        styles.STYLES['heldout'] = original
    return 0


if __name__ == '__main__':
    sys.exit(main())
