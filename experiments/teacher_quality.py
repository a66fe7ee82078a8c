"""How good a segmentation teacher's pseudo-labels are on a look, per class (issue 17; docs/MODEL.md,
"Adapting to an unseen look"): precision and recall of all its pixels, and of the pixels it is at
least --min-confidence sure of (what pseudo-label keeps), with the classes each true class is
taken for. A confident error (low precision among the sure pixels) is one self-training on the
teacher's labels cannot undo.

    python -m experiments.teacher_quality models/hydranet_adapted2.pt [--style heldout] [--seeds 3000-3003]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch


from hydranet_ros.model.checkpoint import load_checkpoint
from hydranet_ros.training.datasets import SyntheticDataset
from hydranet_ros.training.evaluation import parse_seeds
from hydranet_ros.world.classes import IGNORE, SEGMENTATION_CLASSES


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('checkpoint')
    p.add_argument('--style', default='heldout')
    p.add_argument('--seeds', default='3000-3003', help='drives (the bags of the adaptation experiment, rendered '
                                                        'with their ground truth)')
    p.add_argument('--frames', type=int, default=4)
    p.add_argument('--cameras', default='kitti,vga')
    p.add_argument('--min-confidence', type=float, default=0.8)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    loaded = load_checkpoint(args.checkpoint)
    model = loaded.model.eval()
    size = tuple(loaded.metadata.input_size)
    names = [n for n, _ in SEGMENTATION_CLASSES]
    n = len(names)
    every, sure = np.zeros((n, n)), np.zeros((n, n))
    for camera in args.cameras.split(','):
        ds = SyntheticDataset(parse_seeds(args.seeds), args.frames, size, camera, model.config.num_detection_classes,
                              style=args.style)
        with torch.no_grad():
            for i in range(len(ds)):
                item = ds[i]
                gt = item['segmentation'].numpy()
                prob = torch.softmax(model(item['image'][None], ['segmentation'])['segmentation'][0], 0).numpy()
                pred, conf = prob.argmax(0), prob.max(0)
                m = gt != IGNORE
                np.add.at(every, (gt[m], pred[m]), 1)
                m &= conf >= args.min_confidence
                np.add.at(sure, (gt[m], pred[m]), 1)
    print(f'{args.checkpoint} on {args.style} drives {args.seeds} ({args.cameras}); sure: >= {args.min_confidence}')
    print('| class | precision | recall | sure: precision | sure: share of its pixels kept | sure: recall | '
          'taken for |\n|---|---|---|---|---|---|---|')
    for k, name in enumerate(names):
        col, row = max(every[:, k].sum(), 1), max(every[k].sum(), 1)
        top = np.argsort(-every[k])[:3]
        taken = ', '.join(f'{names[j]} {every[k, j] / row:.2f}' for j in top)
        sure_precision = sure[k, k] / max(sure[:, k].sum(), 1)
        print(f'| {name} | {every[k, k] / col:.2f} | {every[k, k] / row:.2f} | {sure_precision:.2f} '
              f'| {sure[:, k].sum() / col:.2f} | {sure[k, k] / row:.2f} | {taken} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
