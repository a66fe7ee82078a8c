"""`make demo`: run the perception node end to end on a short drive and save what it publishes.

A lifecycle node is started and driven through configure and activate exactly as
`perception_node --autostart` does; a driver node publishes the drive's frames and
camera_info over DDS and records every output. Per frame, a mosaic of the input and the
node's debug images (segmentation overlay, depth colour map, flow wheel, boxes) is written to
demo_output/, with a summary of latency, drops and outputs at the end.

Model: --model, else the bundled models/hydranet_default.pt. Drive: a sequence of the
synthetic world (a seed never used in training), so the outputs are also scored against its
ground truth with the same metrics as training.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from hydranet_ros.paths import bundled_model_path


def drive_frames(n: int, seed: int = 4242, size=(188, 624)):
    """A drive through the synthetic world (held-out seed): frames with their ground truth."""
    from hydranet_ros.world import World
    world = World(seed, 'kitti', size=size)
    return world.camera, list(world.frames(n))


def untrained_checkpoint(path: Path) -> Path:
    """A random-weight checkpoint of the default architecture (cached)."""
    if not path.is_file():
        import torch

        from hydranet_ros.model import HydraNet, HydraNetConfig
        from hydranet_ros.model.checkpoint import CheckpointMetadata, save_checkpoint
        torch.manual_seed(0)
        config = HydraNetConfig()
        save_checkpoint(path, HydraNet(config), CheckpointMetadata(
            architecture=config.to_dict(), input_size=[480, 640], name='untrained',
            training={'note': 'random weights, for demonstrating the pipeline only'}))
    return path


def score(got: dict, truth: dict, metadata) -> str:
    """The node's published outputs against the world's ground truth, as a small table."""
    from hydranet_ros.metrics import DepthMetric, DetectionMetric, FlowMetric, SegmentationMetric
    from hydranet_ros.image_codec import image_to_numpy
    cfg = metadata.config
    seg_m, depth_m = SegmentationMetric(cfg.num_classes), DepthMetric(cfg.depth_min, cfg.depth_max)
    flow_m, det_m = FlowMetric(), DetectionMetric(cfg.num_detection_classes)
    counts = {k: 0 for k in ('segmentation', 'depth', 'flow', 'detections')}
    order = list(truth)
    previous_of = dict(zip(order[1:], order[:-1]))
    for stamp, wf in truth.items():
        if stamp in got.get('segmentation', {}):
            seg_m.update(image_to_numpy(got['segmentation'][stamp]), wf.segmentation)
            counts['segmentation'] += 1
        if stamp in got.get('depth', {}):
            depth_m.update(image_to_numpy(got['depth'][stamp]), wf.depth)
            counts['depth'] += 1
        flow_msg = got.get('flow', {}).get(stamp)
        if flow_msg is not None and (flow_msg.previous_stamp.sec, flow_msg.previous_stamp.nanosec) == \
                previous_of.get(stamp):
            # Scored only where the node's previous frame is the world's previous frame (the
            # ground truth is one world step of motion; a dropped frame makes the node's flow span two).
            flow_m.update(image_to_numpy(flow_msg.flow), wf.flow)
            counts['flow'] += 1
        if stamp in got.get('detections', {}):
            dets = got['detections'][stamp].detections
            boxes = [[d.bbox.center.position.x - d.bbox.size_x / 2, d.bbox.center.position.y - d.bbox.size_y / 2,
                      d.bbox.center.position.x + d.bbox.size_x / 2, d.bbox.center.position.y + d.bbox.size_y / 2]
                     for d in dets]
            det_m.update(boxes, [d.results[0].hypothesis.score for d in dets],
                         [int(d.results[0].hypothesis.class_id) for d in dets],
                         [[b.x1, b.y1, b.x2, b.y2] for b in wf.boxes], [b.class_id for b in wf.boxes],
                         [not b.detectable() for b in wf.boxes])
            counts['detections'] += 1
    rows = [('segmentation mIoU', seg_m.compute()['miou'], counts['segmentation']),
            ('depth AbsRel', depth_m.compute()['abs_rel'], counts['depth']),
            ('flow EPE (px)', flow_m.compute()['epe'], counts['flow']),
            ('detection mAP@0.5 (score >= 0.3)', det_m.compute()['map50'], counts['detections'])]
    lines = ['scored against the synthetic ground truth (frames the node processed):']
    lines += [f'  {name:<34} {value:8.3f}   over {n} frames' for name, value, n in rows]
    return '\n'.join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='hydranet_demo', description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', help='checkpoint (default: the bundled model)')
    parser.add_argument('--frames', type=int, default=20)
    parser.add_argument('--output', default='demo_output')
    parser.add_argument('--fps', type=float, default=5.0, help='rate the drive is published at')
    args = parser.parse_args(argv)
    model = Path(args.model) if args.model else bundled_model_path()
    if not model.is_file():
        if args.model:
            print(f'hydranet_demo: no checkpoint at {model}', file=sys.stderr)
            return 2
        model = untrained_checkpoint(Path('.cache') / 'hydranet_untrained.pt')
        print('=' * 78 + f'\nWARNING: no bundled model at {bundled_model_path()} yet (the training pipeline\n'
              'that produces it is not built). Running the node with an UNTRAINED network of the\n'
              'default architecture: the pipeline is real, the predictions are meaningless.\n' + '=' * 78)
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    from vision_msgs.msg import Detection2DArray

    from hydranet_ros.msg import InferenceStats, OpticalFlow
    from hydranet_ros.image_codec import image_to_numpy, numpy_to_image
    from hydranet_ros.ros.perception_main import drive, take_down
    from hydranet_ros.ros.perception_node import PerceptionNode

    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob('frame_*.png'):   # mosaics of an earlier run
        stale.unlink()
    rclpy.init()
    node = PerceptionNode(namespace='hydranet', parameter_overrides=[
        Parameter('model_path', value=str(model)), Parameter('debug_images', value=True),
        Parameter('always_run', value=True), Parameter('input_reliability', value='reliable'),
        Parameter('qos_depth', value=20), Parameter('detection.score_threshold', value=0.3)])
    driver = rclpy.create_node('demo_driver')
    qos = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
    received = {}
    lock = threading.Lock()

    def keep(name):
        def cb(msg):
            with lock:
                received.setdefault(name, {})[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg
        return cb
    for name in ('debug/segmentation', 'debug/depth', 'debug/flow', 'debug/detections', 'depth', 'segmentation'):
        driver.create_subscription(Image, f'/hydranet/{name}', keep(name), qos)
    driver.create_subscription(InferenceStats, '/hydranet/stats', keep('stats'), qos)
    driver.create_subscription(OpticalFlow, '/hydranet/flow', keep('flow'), qos)
    driver.create_subscription(Detection2DArray, '/hydranet/detections', keep('detections'), qos)
    image_pub = driver.create_publisher(Image, '/hydranet/image', qos)
    info_pub = driver.create_publisher(CameraInfo, '/hydranet/camera_info', qos)
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    executor.add_node(driver)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    code = 0
    try:
        if not drive(node, ['configure', 'activate']):
            print(f'hydranet_demo: the node did not start: {node._last_error}', file=sys.stderr)
            return 1
        deadline = time.monotonic() + 10
        while image_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        camera, world_frames = drive_frames(args.frames)
        info = CameraInfo(width=camera.width, height=camera.height, k=camera.k,
                          p=[camera.fx, 0, camera.cx, 0, 0, camera.fy, camera.cy, 0, 0, 0, 1, 0])
        info.header.frame_id = 'demo_camera'
        stamps, frames = [], []
        truth = {}
        for i, wf in enumerate(world_frames):
            rgb = wf.rgb
            msg = numpy_to_image(rgb, 'rgb8')
            t = 1000.0 + i / args.fps
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(t), int(round((t % 1) * 1e9))
            msg.header.frame_id = info.header.frame_id
            info.header.stamp = msg.header.stamp
            info_pub.publish(info)
            image_pub.publish(msg)
            stamps.append((msg.header.stamp.sec, msg.header.stamp.nanosec))
            frames.append(rgb)
            truth[stamps[-1]] = wf
            time.sleep(1.0 / args.fps)
        # Wait for the last frame's outputs (or give up after a generous limit).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with lock:
                if stamps[-1] in received.get('stats', {}):
                    break
            time.sleep(0.05)
        with lock:
            got = {k: dict(v) for k, v in received.items()}
        written = 0
        for stamp, rgb in zip(stamps, frames):
            panels = [rgb] + [image_to_numpy(got[name][stamp]) for name in
                              ('debug/segmentation', 'debug/depth', 'debug/flow', 'debug/detections')
                              if stamp in got.get(name, {})]
            if len(panels) == 1:
                continue   # dropped under the latest-frame policy
            panels += [np.zeros_like(rgb)] * (6 - len(panels))
            mosaic = np.vstack([np.hstack(panels[:3]), np.hstack(panels[3:6])])
            cv2.imwrite(str(out_dir / f'frame_{stamp[0]}_{stamp[1]:09d}.png'), cv2.cvtColor(mosaic, cv2.COLOR_RGB2BGR))
            written += 1
        stats = list(got.get('stats', {}).values())
        counters = node.counters
        print(f'model: {node._predictor.model_id} on {node._predictor.device}')
        print(f'frames published: {len(stamps)}, processed: {counters["processed"]}, '
              f'dropped (latest-frame policy): {counters["dropped"]}, rejected: {counters["rejected"]}')
        if stats:
            total = [s.total_ms for s in stats]
            print(f'latency receipt -> outputs: median {statistics.median(total):.1f} ms, '
                  f'max {max(total):.1f} ms; inference median '
                  f'{statistics.median(s.inference_ms for s in stats):.1f} ms')
            depth_means = [float(np.nanmean(image_to_numpy(m))) for m in got.get('depth', {}).values()]
            if depth_means:
                print(f'depth: mean over frames {statistics.mean(depth_means):.2f} m')
        print(score(got, truth, node._predictor.metadata))
        print(f'wrote {written} mosaics (input | segmentation | depth / flow | detections) to {out_dir}/')
        if written == 0:
            code = 1
    finally:
        take_down(node, executor, spinner, others=(driver,))
    return code


if __name__ == '__main__':
    sys.exit(main())
