"""A HydraNet checkpoint as pseudo-label teachers: `python -m hydranet_ros.training.teachers`.

Writes seg.onnx, depth.onnx and det.onnx, each with the YAML description pseudo-label reads
(docs/TRAINING.md, section 7): the network's input size, ImageNet normalisation and letterboxing
as the node does; segmentation as logits, depth as metric depth with the focal length it is
metric for (pseudo-label rescales it to each bag's lens, as the node does), detection decoded
into boxes, scores and classes by the same peak finding as the node. Use it to distil a larger
HydraNet into a smaller one, or to self-train the bundled model on a new robot's bags (the
adaptation experiment of docs/MODEL.md).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
import yaml
from torch import nn

from hydranet_ros.model.detection_decode import decode_detections
from hydranet_ros.model.onnx_export import OPSET
from hydranet_ros.world.camera import checkpoint_focal_px
from hydranet_ros import DEFAULT_SCORE_THRESHOLD
from hydranet_ros.model.hydranet import is_network_input_size


class _Head(nn.Module):
    """One task of a HydraNet as a plain images -> output(s) graph."""

    def __init__(self, model, task: str, top_k: int = 100):
        super().__init__()
        self.model, self.task, self.top_k = model, task, top_k

    def forward(self, images):
        out = self.model(images, [self.task])[self.task]
        if self.task != 'detection':
            return out
        dec = decode_detections(out, self.model.config.num_detection_classes, top_k=self.top_k)
        return dec.boxes, dec.scores, dec.classes


def export_teachers(checkpoint, out_dir, tasks=('segmentation', 'depth', 'detection'), input_size=None,
                    score_threshold: float = DEFAULT_SCORE_THRESHOLD) -> list[Path]:
    """ONNX teachers + YAML descriptions of a checkpoint's heads in out_dir; returns the ONNX paths."""
    from hydranet_ros.model.checkpoint import load_checkpoint
    loaded = load_checkpoint(checkpoint)
    meta, model = loaded.metadata, loaded.model.eval()
    unknown = [t for t in tasks if t not in ('segmentation', 'depth', 'detection')]
    if unknown:
        raise ValueError(f'teachers are segmentation, depth and detection; not {unknown}')
    missing = [t for t in tasks if t not in meta.tasks]
    if missing:
        raise ValueError(f'{checkpoint}: the model has no {missing} head (it has {meta.tasks})')
    h, w = (int(v) for v in (input_size or meta.input_size))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    norm = meta.normalization
    common = {'input': {'name': 'images', 'size': [h, w], 'resize': 'letterbox', 'layout': 'NCHW', 'color': 'rgb',
                        'scale': 255, 'mean': [float(v) for v in norm['mean']], 'std': [float(v) for v in norm['std']]},
              'source': {'checkpoint': str(checkpoint), 'sha256': loaded.sha256, 'name': meta.name}}
    seg_names = [c['name'] if isinstance(c, dict) else str(c) for c in meta.segmentation_classes]
    paths = []
    for task in tasks:
        stem = {'segmentation': 'seg', 'depth': 'depth', 'detection': 'det'}[task]
        names = ['boxes', 'scores', 'classes'] if task == 'detection' else [task]
        path = out / f'{stem}.onnx'
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')       # tracer notes on shape checks: the input size is fixed
            torch.onnx.export(_Head(model, task), torch.zeros(1, 3, h, w), str(path), dynamo=False,
                              input_names=['images'], output_names=names, opset_version=OPSET)
        desc = {'task': task, **common}
        if task == 'segmentation':
            desc.update(output={'name': 'segmentation', 'kind': 'logits'}, classes=seg_names)
        elif task == 'depth':
            desc.update(output={'name': 'depth', 'kind': 'metric'})
            focal = checkpoint_focal_px(meta)
            if focal:
                desc['focal_px'] = float(focal) * w / float(meta.input_size[1])
        else:
            desc.update(outputs={'boxes': 'boxes', 'scores': 'scores', 'classes': 'classes'}, box_format='xyxy',
                        normalized=False, score_threshold=float(score_threshold),
                        classes=[str(c) for c in meta.detection_classes])
        path.with_suffix('.yaml').write_text(yaml.safe_dump(desc, sort_keys=False))
        paths.append(path)
    return paths


def main(argv=None) -> int:
    """The command line: export the teachers, print their paths; 2 on a bad checkpoint or option."""
    p = argparse.ArgumentParser(prog='python -m hydranet_ros.training.teachers', description=__doc__.split('\n')[0])
    p.add_argument('checkpoint', help='a HydraNet checkpoint (.pt), e.g. models/hydranet_default.pt')
    p.add_argument('out', help='folder for seg/depth/det .onnx + .yaml')
    p.add_argument('--tasks', default='segmentation,depth,detection')
    p.add_argument('--size', help='HxW network input (default: the checkpoint\'s)')
    p.add_argument('--score-threshold', type=float, default=DEFAULT_SCORE_THRESHOLD,
                   help='detection: boxes below are not labels')
    args = p.parse_args(argv)
    try:
        size = [int(v) for v in args.size.lower().split('x')] if args.size else None
        if size is not None and not is_network_input_size(size):
            raise ValueError(f'--size must be HxW, multiples of 32, got {args.size!r}')
        paths = export_teachers(args.checkpoint, args.out, [t.strip() for t in args.tasks.split(',') if t.strip()],
                                size, args.score_threshold)
    except (OSError, ValueError) as exc:
        print(f'teachers: {exc}', file=sys.stderr)
        return 2
    for path in paths:
        print(f'{path} (+ {path.with_suffix(".yaml").name})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
