"""Cost of the derived outputs per 640x480 frame, against the all-heads frame time.

    python bench/bench_outputs_3d.py [--frames 20]

For each frame of a synthetic 640x480 drive: the Predictor (onnxruntime, all four heads) on the
bundled model and on the default architecture (random weights), then, on the bundled model's
outputs (the cost of the derived outputs does not depend on the model), each derived output
built as the node builds it, message included: the point cloud at stride 1 and 2, the 3D boxes
(+ markers), flow-guided track ids, the compressed segmentation and depth. Everything in this
one process, round-robin per frame; medians, and each output's median as a share of each
model's median frame time.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from std_msgs.msg import Header

from hydranet_ros.inference import Predictor
from hydranet_ros.model import HydraNet, HydraNetConfig
from hydranet_ros.model.checkpoint import CheckpointMetadata, save_checkpoint
from hydranet_ros.model.registry import weights
from hydranet_ros.ros import messages
from hydranet_ros.spatial import FlowTracker, Intrinsics, lift_detections, semantic_cloud
from hydranet_ros.spatial.objects3d import class_label_map
from hydranet_ros.world import World
from hydranet_ros.world.classes import SEG_ID


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, default=20)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp())
    torch.manual_seed(0)
    config = HydraNetConfig()
    default = tmp / 'default.pt'
    save_checkpoint(default, HydraNet(config), CheckpointMetadata(architecture=config.to_dict(), input_size=[480, 640]))
    world = World(2000, camera='vga')
    frames = list(world.frames(args.frames))
    k = Intrinsics.from_k(world.camera.k, 480, 640)
    predictors = {'bundled': Predictor(weights().path(), device='cpu', backend='onnxruntime'),
                  'default': Predictor(default, device='cpu', backend='onnxruntime')}
    for p in predictors.values():
        p.warmup(2)
    seg_names = predictors['bundled'].segmentation_names
    cmap = class_label_map(predictors['bundled'].class_names, seg_names)
    colors = [(0, 0, 142), (220, 20, 60)]
    tracker = FlowTracker()
    header = Header(frame_id='camera_optical')
    times: dict[str, list] = {}

    def timed(name, fn):
        s = time.perf_counter()
        out = fn()
        times.setdefault(name, []).append((time.perf_counter() - s) * 1e3)
        return out

    for i, frame in enumerate(frames):
        stamp = 1_000_000_000 + i * 100_000_000
        r = None
        for name, p in predictors.items():
            res = timed(f'frame {name}', lambda: p.predict(frame.rgb, stamps_ns=[stamp])[0])
            r = res if name == 'bundled' else r
        for stride in (1, 2):
            timed(f'points stride {stride}', lambda: messages.point_cloud(header, semantic_cloud(
                r.depth, k, frame.rgb, r.segmentation, stride, drop_labels=[SEG_ID['sky']])))
        boxes = np.array([[d.x1, d.y1, d.x2, d.y2] for d in r.detections]).reshape(-1, 4)
        classes = [d.class_id for d in r.detections]
        ids = timed('track ids (flow)', lambda: tracker.update(boxes, classes, stamp, r.flow, r.image_size))

        def boxes_3d():
            objects = lift_detections(boxes, classes, r.depth, k, r.segmentation, cmap)
            return (messages.detections_3d(header, objects, r.detections, ids),
                    messages.markers_3d(header, objects, r.detections, ids, colors))
        timed('3D boxes + markers', boxes_3d)
        timed('segmentation/compressed', lambda: messages.compressed_segmentation(header, r.segmentation))
        timed('depth/compressedDepth', lambda: messages.compressed_depth(header, r.depth, 80.0, 100.0))
    med = {name: statistics.median(v[1:]) for name, v in times.items()}
    print(f'Machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, onnxruntime backend; 640x480 frames of '
          f'a synthetic drive, median of {args.frames - 1} frames (the first left out)\n')
    print('| output | ms per frame | share of bundled frame | share of default-architecture frame |')
    print('|---|---|---|---|')
    for name in ('frame bundled', 'frame default'):
        print(f'| {name.replace("frame ", "all heads, ")} model | {med[name]:.1f} | | |')
    for name, value in med.items():
        if not name.startswith('frame'):
            print(f'| {name} | {value:.2f} | {100 * value / med["frame bundled"]:.1f}% | '
                  f'{100 * value / med["frame default"]:.1f}% |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
