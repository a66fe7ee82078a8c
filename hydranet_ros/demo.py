"""`make demo`: the main job end to end on the bundled model and the sample drive.

1. make-bag: write (or reuse) the sample drive, a synthetic world sequence with ground truth
   (held-out seed 4242, never used in training) as an MCAP bag in .cache/.
2. Start the perception node (`perception_node --autostart`, bundled model) in its own process.
3. Play the bag into it and record its outputs with the bag's camera and ground-truth topics.
4. evaluate: score the recorded outputs against the ground truth (the training metrics), write
   metrics.json and report.html, and a montage PNG
   (input | segmentation overlay | depth colour map | flow colour wheel | detections).

On a real ROS install the same is `ros2 launch hydranet_ros perception.launch.py
image:=/camera/image_raw record:=true` plus
`ros2 bag play <sample bag>`.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from hydranet_ros import topics
from hydranet_ros.model.registry import resolve
from hydranet_ros.paths import SOURCE_ROOT

SAMPLE = {'seed': 4242, 'frames': 30, 'size': (188, 624)}


def sample_bag(cache: Path, seed: int, frames: int, size, log=print) -> Path:
    """The sample drive bag, generated once per (seed, frames, size) and reused."""
    from hydranet_ros.bag.make_bag import write_drive
    from hydranet_ros.bag.storage import BagError, open_reader
    path = cache / f'sample_drive_seed{seed}_{frames}f_{size[1]}x{size[0]}'
    if path.exists():
        try:
            open_reader(path).close()
            log(f'reusing sample drive {path}')
            return path
        except BagError:
            shutil.rmtree(path)      # an interrupted earlier run: make it again
    cache.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    tmp = path.with_name(path.name + '.partial')
    shutil.rmtree(tmp, ignore_errors=True)
    write_drive(tmp, seed, frames, size, progress=sys.stderr.isatty())
    tmp.rename(path)
    log(f'wrote sample drive {path} ({frames} frames, {time.monotonic() - start:.1f} s)')
    return path


def montage(recorded: Path, out: Path, rows: int = 4) -> Path:
    """A PNG: one row per chosen frame, input | segmentation | depth | depth uncertainty | flow |
    detections (with track ids) | instances | a bird's-eye view of the semantic point cloud and the 3D boxes |
    the free-space grid."""
    import cv2

    from hydranet_ros import visualize
    from hydranet_ros.bag import convert
    from hydranet_ros.bag.storage import deserialize, open_reader, read_messages
    from hydranet_ros.world.classes import SEG_ID, SEGMENTATION_CLASSES
    colors = [c for _, c in SEGMENTATION_CLASSES]
    ns = topics.NODE_NAMESPACE
    wanted = {'/camera/image_raw': 'rgb', **{topics.absolute(ns, topics.TASK_TOPICS[t]): k for t, k in (
        ('segmentation', 'seg'), ('depth', 'depth'), ('flow', 'flow'), ('detection', 'det'))},
        topics.absolute(ns, topics.EXTRA_TOPICS['depth_uncertainty']): 'sigma',
        topics.absolute(ns, topics.EXTRA_TOPICS['instances']): 'instances',
        topics.absolute(ns, topics.POINTS): 'points', topics.absolute(ns, topics.DETECTIONS_3D): 'det3d',
        topics.absolute(ns, topics.FREE_SPACE): 'free'}
    names, frames = {}, {}
    reader = open_reader(recorded)
    try:
        label_info = topics.absolute(ns, topics.LABEL_INFO['detection'])
        for conn, _, raw in read_messages(reader, set(wanted) | {label_info}):
            msg = deserialize(raw, conn.msgtype)
            if conn.topic.endswith('label_info'):
                names = {c.class_id: c.class_name for c in msg.class_map}
                continue
            frames.setdefault(convert.stamp_ns(msg.header.stamp), {})[wanted[conn.topic]] = \
                _decoded(wanted[conn.topic], msg, names)
    finally:
        reader.close()
    complete = [s for s in sorted(frames) if len(frames[s]) == len(wanted)]
    if not complete:
        raise RuntimeError('no frame has all outputs to show')
    chosen = [complete[int(i)] for i in np.linspace(0, len(complete) - 1, min(rows, len(complete)))]
    lines = []
    for stamp in chosen:
        f = frames[stamp]
        rgb = f['rgb']
        h, w = rgb.shape[:2]

        def fit(img):
            return img if img.shape[:2] == (h, w) else cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)
        dets, ids = f['det']
        det_colors = {str(i): colors[SEG_ID[n]] if n in SEG_ID else (255, 64, 0) for i, n in names.items()}
        boxes = [(c, s, det_colors.get(cls, (255, 64, 0)), f'{names.get(int(cls), cls)} #{i}')
                 for c, s, cls, i in f['det3d']]
        top = visualize.birds_eye(*f['points'], boxes, (h, w))
        lines.append(np.hstack([rgb, fit(visualize.segmentation_overlay(f['seg'], colors, rgb)),
                                fit(visualize.depth_colormap(f['depth'], 0.5, 80.0)),
                                fit(visualize.depth_colormap(np.clip(f['sigma'], 0.05, 20.0), 0.05, 20.0)),
                                fit(visualize.flow_to_color(f['flow'])),
                                visualize.draw_detections(rgb, dets, ids=ids or None),
                                visualize.instance_overlay(fit(f['instances']), rgb), top,
                                _grid_picture(f['free'], (h, w))]))
    header = np.full((24, lines[0].shape[1], 3), 255, np.uint8)
    titles = ('input', 'segmentation', 'depth (0.5-80 m, log)', 'depth sigma (0.05-20 m, log)', 'optical flow',
              'detections #track id', 'instances', 'top view: points, 3D boxes', 'free space (grey unknown)')
    for i, title in enumerate(titles):
        cv2.putText(header, title, (i * (lines[0].shape[1] // len(titles)) + 6, 17), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (0, 0, 0), 1, cv2.LINE_AA)
    image = np.vstack([header, *lines])
    cv2.imwrite(str(out), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return out


def _decoded(key: str, msg, names: dict):
    """What the montage draws of one recorded message."""
    from hydranet_ros.bag import convert
    from hydranet_ros.image_codec import image_to_numpy, image_to_rgb
    from hydranet_ros.inference.results import Detection
    if key == 'rgb':
        return image_to_rgb(msg)
    if key == 'flow':
        return image_to_numpy(msg.flow)
    if key == 'det':
        boxes, scores, classes = convert.detection_boxes(msg)
        return ([Detection(*b, int(c), names.get(int(c), str(c)), float(s)) for b, s, c in zip(boxes, scores, classes)],
                [d.id for d in msg.detections])
    if key == 'points':
        return _cloud_arrays(msg)
    if key == 'det3d':
        return [((d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.center.position.z),
                 (d.bbox.size.x, d.bbox.size.y, d.bbox.size.z), d.results[0].hypothesis.class_id, d.id)
                for d in msg.detections]
    if key == 'free':
        return np.array(msg.data, np.int8).reshape(msg.info.height, msg.info.width)
    return image_to_numpy(msg)


def _grid_picture(cells: np.ndarray, size_hw) -> np.ndarray:
    """The free-space grid seen from above, forward up, left to the left: free white, occupied
    black, unknown grey."""
    import cv2
    picture = np.full(cells.shape, 128, np.uint8)
    picture[cells == 0], picture[cells == 100] = 255, 0
    # rows run leftwards and columns forward: turn so forward is up and left is left
    picture = np.rot90(picture, k=1)[:, ::-1]
    h, w = size_hw
    scale = min(h / picture.shape[0], w / picture.shape[1])
    small = cv2.resize(np.ascontiguousarray(picture), (max(int(picture.shape[1] * scale), 1),
                                                       max(int(picture.shape[0] * scale), 1)),
                       interpolation=cv2.INTER_NEAREST)
    out = np.full((h, w), 128, np.uint8)
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    out[y:y + small.shape[0], x:x + small.shape[1]] = small
    return np.repeat(out[..., None], 3, axis=2)


def _cloud_arrays(msg):
    """(xyz [N, 3], rgb [N, 3] uint8) of a PointCloud2 in the node's layout (with or without sigma)."""
    from hydranet_ros.spatial.cloud import CLOUD_DTYPE, CLOUD_SIGMA_DTYPE
    points = np.frombuffer(bytes(msg.data), CLOUD_SIGMA_DTYPE if msg.point_step == 24 else CLOUD_DTYPE)
    xyz = np.stack([points['x'], points['y'], points['z']], axis=1)
    packed = points['rgb']
    rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1).astype(np.uint8)
    return xyz, rgb


def main(argv=None) -> int:
    """The `make demo` job (python -m hydranet_ros.demo)."""
    parser = argparse.ArgumentParser(prog='hydranet_demo', description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', help='checkpoint (default: the bundled model)')
    parser.add_argument('--frames', type=int, default=SAMPLE['frames'])
    parser.add_argument('--seed', type=int, default=SAMPLE['seed'])
    parser.add_argument('--output', default='demo_output')
    parser.add_argument('--flow-mode', default='ego_motion', choices=('network', 'ego_motion'),
                        help="the node's flow.mode (default ego_motion: the sample drive carries its odometry, "
                             'and its base_link is the camera, so the default mount is exact)')
    parser.add_argument('--rate', type=float, default=0.25,
                        help='playback rate factor (default 0.25: the 10 Hz drive at 2.5 Hz, so the CPU node '
                             'keeps up with every frame)')
    args = parser.parse_args(argv)
    model, _ = resolve(args.model)
    if not model.is_file():
        print(f'hydranet_demo: no checkpoint at {model}', file=sys.stderr)
        return 2
    if args.frames < 2 or args.rate <= 0:
        print('hydranet_demo: --frames must be >= 2 and --rate > 0', file=sys.stderr)
        return 2
    from hydranet_ros.bag.evaluate import Options, evaluate_bag, format_table, write_results
    from hydranet_ros.bag.storage import BagError
    from hydranet_ros.ros.replay import ReplayError, replay
    started = time.monotonic()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    recorded = out / 'recorded'
    if recorded.exists():
        shutil.rmtree(recorded)     # the previous demo run's recording
    try:
        bag = sample_bag(SOURCE_ROOT / '.cache', args.seed, args.frames, SAMPLE['size'])
        counts = replay(bag, recorded, model, rate=args.rate, node_log=out / 'node.log',
                        params={'flow.mode': args.flow_mode})
        scores = evaluate_bag(recorded, Options())
    except (BagError, ReplayError) as exc:
        print(f'hydranet_demo: error: {exc}', file=sys.stderr)
        return 1
    summary, report = write_results(scores, out / 'evaluation')
    picture = montage(recorded, out / 'montage.png')
    outputs = {t: counts.get(topics.absolute(topics.NODE_NAMESPACE, t), 0)
               for t in (*topics.TASK_TOPICS.values(), *topics.EXTRA_TOPICS.values(), topics.POINTS,
                         topics.POINTS_OBSTACLES, topics.POINTS_GROUND, topics.FREE_SPACE, topics.DETECTIONS_3D,
                         topics.MOTION, topics.STATS)}
    print()
    print(f'model: {model.name}; node outputs recorded per topic: '
          + ', '.join(f'{k} {v}' for k, v in outputs.items()))
    print(format_table(summary))
    print(f'report:        {report}')
    print(f'recorded bag:  {recorded}   (open with Foxglove, rosbags, or `ros2 bag info`)')
    print(f'picture:       {picture}   (rows: frames; input | segmentation | depth | depth sigma | flow | '
          'detections #id | instances | top view: points, 3D boxes | free space)')
    print(f'node log:      {out / "node.log"}')
    print(f'demo took {time.monotonic() - started:.0f} s')
    return 0 if outputs['stats'] > 0 else 1


if __name__ == '__main__':
    sys.exit(main())
