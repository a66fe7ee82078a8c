"""`make-bag`: write a drive through the synthetic world as a rosbag2 bag.

Topics (frame_id `camera`; every message of a frame carries the same header stamp):

| topic | type | content |
|---|---|---|
| /camera/image_raw | sensor_msgs/Image | rgb8 camera frame |
| /camera/camera_info | sensor_msgs/CameraInfo | pinhole intrinsics, no distortion |
| /odom | nav_msgs/Odometry | base_link in odom, the car's true motion (pose only; unless --no-odometry) |
| /tf_static | tf2_msgs/TFMessage | the camera mount, base_link -> camera (once, latched) |
| /ground_truth/segmentation | sensor_msgs/Image | mono8 class ids, 255 = no label |
| /ground_truth/segmentation/label_info | vision_msgs/LabelInfo | class id -> name (once, latched) |
| /ground_truth/depth | sensor_msgs/Image | 32FC1 metres, +Inf where there is no surface (sky) |
| /ground_truth/flow | hydranet_ros/OpticalFlow | 32FC2 previous -> this frame, NaN occluded; from frame 2 |
| /ground_truth/detections | vision_msgs/Detection2DArray | boxes; score 1 counts, score 0 = ignore |
| /ground_truth/detections/label_info | vision_msgs/LabelInfo | detection class id -> name |
| /ground_truth/instances | sensor_msgs/Image | mono16 instance ids (0 = none), each object's own id all drive long |

Ground-truth boxes that are mostly hidden or tiny (see BoxLabel.detectable) are kept with
score 0: the evaluator neither counts them as misses nor detections on them as false positives.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from hydranet_ros.bag import convert
from hydranet_ros.bag.storage import STORAGES, BagError, BagWriter, format_counts, qos_profile
from hydranet_ros.world.styles import STYLE_NAMES

CAMERA = '/camera'
GROUND_TRUTH = '/ground_truth'
FRAME_ID = 'camera'
ODOMETRY, ODOM_FRAME, BASE_FRAME = '/odom', 'odom', 'base_link'
# The world's axes (x right, y up, z forward at the start) -> odom's (REP 103: x forward, y left, z up)
WORLD_TO_ODOM = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
# The camera's optical axes (x right, y down, z forward) -> base_link's (x forward, y left, z up)
OPTICAL_TO_BASE = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def camera_odometry(world, stamp: float) -> np.ndarray:
    """4x4 base_link -> odom at a drive time: the car's true motion, as wheel/visual odometry would
    report it (base_link sits at the camera, turned to REP 103 axes; /tf_static holds the mount)."""
    to_odom, to_base = np.eye(4), np.eye(4)
    to_odom[:3, :3], to_base[:3, :3] = WORLD_TO_ODOM, OPTICAL_TO_BASE
    return to_odom @ world.scene.camera_to_world(stamp) @ to_base.T
START_NS = 1_700_000_000 * 1_000_000_000     # fixed, so the same seed gives the same bag


def write_drive(path, seed: int = 4242, frames: int = 30, size=(188, 624), camera: str = 'kitti',
                storage: str = 'mcap', ground_truth: bool = True, dt: float = 0.1, progress: bool = False,
                style: str = 'classic', odometry: bool = True) -> dict:
    """Render and write the drive; returns message counts per topic. odometry: /odom (base_link in
    odom) per frame and the camera mount on /tf_static, as a robot records them."""
    from hydranet_ros.world import World
    from hydranet_ros.world.classes import DETECTION_CLASSES, SEGMENTATION_CLASSES
    if frames < 1:
        raise BagError('frames must be at least 1')
    world = World(seed, camera, size=size, dt=dt, style=style)
    latched = qos_profile(transient_local=True, depth=1)
    with BagWriter(path, storage) as bag:
        hdr0 = convert.header(START_NS, FRAME_ID)
        if odometry:
            mount = np.eye(4)
            mount[:3, :3] = OPTICAL_TO_BASE
            bag.write('/tf_static', START_NS, convert.transforms(convert.header(START_NS, BASE_FRAME),
                                                                [(FRAME_ID, mount)]), latched)
        if ground_truth:
            bag.write(f'{GROUND_TRUTH}/segmentation/label_info', START_NS,
                      convert.label_info(hdr0, [n for n, _ in SEGMENTATION_CLASSES]), latched)
            bag.write(f'{GROUND_TRUTH}/detections/label_info', START_NS,
                      convert.label_info(hdr0, DETECTION_CLASSES), latched)
        iterator = world.frames(frames)
        if progress:
            from tqdm import tqdm
            iterator = tqdm(iterator, total=frames, desc=f'make-bag seed {seed}', unit='frame')
        previous_ns = None
        for frame in iterator:
            ns = START_NS + int(round(frame.index * dt * 1e9))
            hdr = convert.header(ns, FRAME_ID)
            bag.write(f'{CAMERA}/camera_info', ns, convert.camera_info(hdr, world.camera))
            bag.write(f'{CAMERA}/image_raw', ns, convert.image(hdr, frame.rgb, 'rgb8'))
            if odometry:
                bag.write(ODOMETRY, ns, convert.odometry(convert.header(ns, ODOM_FRAME), BASE_FRAME,
                                                         camera_odometry(world, frame.stamp)))
            if ground_truth:
                bag.write(f'{GROUND_TRUTH}/segmentation', ns, convert.image(hdr, frame.segmentation, 'mono8'))
                bag.write(f'{GROUND_TRUTH}/depth', ns, convert.image(hdr, frame.depth, '32FC1'))
                bag.write(f'{GROUND_TRUTH}/instances', ns,
                          convert.image(hdr, frame.instances.astype(np.uint16), 'mono16'))
                if previous_ns is not None:
                    bag.write(f'{GROUND_TRUTH}/flow', ns, convert.optical_flow(hdr, previous_ns, frame.flow))
                bag.write(f'{GROUND_TRUTH}/detections', ns, convert.detections(
                    hdr, [(b.x1, b.y1, b.x2, b.y2, b.class_id, 1.0 if b.detectable() else 0.0, b.instance)
                          for b in frame.boxes]))
            previous_ns = ns
        return dict(bag.counts)


def parse_size(text: str):
    """'640x480' -> (480, 640) for argparse."""
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 624x188, got '{text}'") from None
    if not (32 <= w <= 4096 and 32 <= h <= 4096):
        raise argparse.ArgumentTypeError(f'size must be between 32 and 4096 pixels per side, got {text}')
    return h, w


def main(argv=None) -> int:
    """The `make-bag` command line."""
    parser = argparse.ArgumentParser(prog='make-bag', description=__doc__.split('\n\n')[0])
    parser.add_argument('output', help='bag directory to create (must not exist)')
    parser.add_argument('--seed', type=int, default=4242, help='world seed (default 4242, never used in training)')
    parser.add_argument('--frames', type=int, default=30)
    parser.add_argument('--size', type=parse_size, default=(188, 624), metavar='WxH', help='default 624x188')
    parser.add_argument('--camera', choices=('kitti', 'vga'), default='kitti', help='intrinsics preset')
    parser.add_argument('--rate', type=float, default=10.0, help='frames per second of the drive (default 10)')
    parser.add_argument('--storage', default='mcap', help=f"storage id: {', '.join(STORAGES)} (default mcap)")
    parser.add_argument('--no-ground-truth', action='store_true', help='camera topics only')
    parser.add_argument('--no-odometry', action='store_true', help='no /odom and /tf_static')
    parser.add_argument('--style', choices=STYLE_NAMES, default='classic',
                        help="the world's look (default classic; heldout is never used in training)")
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error('--rate must be > 0')
    try:
        counts = write_drive(args.output, args.seed, args.frames, args.size, args.camera, args.storage,
                             not args.no_ground_truth, 1.0 / args.rate, progress=sys.stderr.isatty(), style=args.style,
                             odometry=not args.no_odometry)
    except BagError as exc:
        print(f'make-bag: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'make-bag: interrupted; {args.output} holds the frames written so far', file=sys.stderr)
        return 130
    print(f'wrote {args.output} ({args.storage}):')
    print(format_counts(counts))
    return 0


if __name__ == '__main__':
    sys.exit(main())
