"""Write a synthetic drive to disk in the folder layout the training FolderDataset reads.

    python -m hydranet_ros.world.export --seed 7 --frames 50 --out drive_7 [--camera kitti] [--size 375x1242]

images/<i>.png, segmentation/<i>.png (class ids), depth/<i>.npy (metres, inf = sky),
flow/<i>.npy ([H, W, 2], NaN invalid), boxes/<i>.json, and camera.json (intrinsics, classes).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from hydranet_ros.world.classes import DETECTION_CLASSES, SEGMENTATION_CLASSES
from hydranet_ros.world.render import World


def export_sequence(world: World, n: int, out: Path) -> int:
    """Write n frames of the world in the folder layout FolderDataset reads; returns the frames written."""
    out = Path(out)
    for sub in ('images', 'segmentation', 'depth', 'flow', 'boxes'):
        (out / sub).mkdir(parents=True, exist_ok=True)
    cam = world.camera
    (out / 'camera.json').write_text(json.dumps({
        'width': cam.width, 'height': cam.height, 'k': cam.k, 'dt': world.dt, 'seed': world.scene.seed,
        'segmentation_classes': [n for n, _ in SEGMENTATION_CLASSES], 'detection_classes': DETECTION_CLASSES},
        indent=1))
    count = 0
    for frame in world.frames(n):
        stem = f'{frame.index:06d}'
        cv2.imwrite(str(out / 'images' / f'{stem}.png'), cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(out / 'segmentation' / f'{stem}.png'), frame.segmentation)
        np.save(out / 'depth' / f'{stem}.npy', frame.depth)
        if frame.index > 0:
            np.save(out / 'flow' / f'{stem}.npy', frame.flow)
        (out / 'boxes' / f'{stem}.json').write_text(json.dumps([
            {'x1': b.x1, 'y1': b.y1, 'x2': b.x2, 'y2': b.y2, 'class_id': b.class_id,
             'occlusion': round(b.occlusion, 3), 'truncation': round(b.truncation, 3)} for b in frame.boxes]))
        count += 1
    return count


def main(argv=None) -> int:
    """The world export command line."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seed', type=int, required=True)
    parser.add_argument('--frames', type=int, default=50)
    parser.add_argument('--out', required=True)
    parser.add_argument('--camera', default='kitti', choices=['kitti', 'vga'])
    parser.add_argument('--size', help='WIDTHxHEIGHT (default: the camera preset\'s)')
    args = parser.parse_args(argv)
    size = None
    if args.size:
        w, h = (int(v) for v in args.size.lower().split('x'))
        size = (h, w)
    n = export_sequence(World(args.seed, args.camera, size=size), args.frames, Path(args.out))
    print(f'wrote {n} frames to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
