"""Write a synthetic drive to disk as a dataset folder (hydranet_ros.dataset_folder), what FolderDataset reads.

    python -m hydranet_ros.world.export --seed 7 --frames 50 --out drive_7 [--camera kitti] [--size 375x1242]

images/<i>.png, segmentation/<i>.png (class ids), depth/<i>.npy (metres, inf = sky),
flow/<i>.npy ([H, W, 2], NaN invalid), boxes/<i>.json, and camera.json (intrinsics, classes).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hydranet_ros.dataset_folder import FolderWriter, box_items
from hydranet_ros.world.classes import DETECTION_CLASSES, SEGMENTATION_CLASSES
from hydranet_ros.world.render import World


def export_sequence(world: World, n: int, out: Path) -> int:
    """Write n frames of the world as a dataset folder (hydranet_ros.dataset_folder); returns the
    frames written."""
    writer = FolderWriter(out, ('segmentation', 'depth', 'flow', 'boxes'))
    cam = world.camera
    writer.camera({'width': cam.width, 'height': cam.height, 'k': cam.k, 'dt': world.dt, 'seed': world.scene.seed,
                   'segmentation_classes': [n for n, _ in SEGMENTATION_CLASSES],
                   'detection_classes': DETECTION_CLASSES})
    count = 0
    for frame in world.frames(n):
        stem = f'{frame.index:06d}'
        writer.image(stem, frame.rgb)
        writer.segmentation(stem, frame.segmentation)
        writer.depth(stem, frame.depth)
        if frame.index > 0:
            writer.flow(stem, frame.flow)
        writer.boxes(stem, box_items([[b.x1, b.y1, b.x2, b.y2] for b in frame.boxes],
                                     [b.class_id for b in frame.boxes],
                                     occlusion=[b.occlusion for b in frame.boxes],
                                     truncation=[b.truncation for b in frame.boxes]))
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
