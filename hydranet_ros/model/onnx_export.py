"""ONNX export: the single-frame heads, and the flow head with previous features as an input.

Two graphs because flow has state: a deployment runs `single_frame` on every image (which also
yields the features to keep), and `flow` with the kept features of the previous frame.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from hydranet_ros.model.hydranet import FLOW_FEATURES, HydraNet

SINGLE_FRAME_TASKS = ('segmentation', 'depth', 'detection')
OPSET = 17


class SingleFrameGraph(nn.Module):
    """The exported graph for one frame: segmentation, depth, detection and the flow features to keep."""
    def __init__(self, model: HydraNet, tasks=SINGLE_FRAME_TASKS):
        super().__init__()
        self.model, self.tasks = model, tuple(tasks)

    def forward(self, images):
        out = self.model(images, self.tasks, return_flow_features=True)
        return tuple(out[t] for t in self.tasks) + (out[FLOW_FEATURES],)


class FlowGraph(nn.Module):
    """The exported flow graph: this frame's image and the previous frame's features in, flow out."""
    def __init__(self, model: HydraNet):
        super().__init__()
        self.model = model

    def forward(self, images, previous_features):
        out = self.model(images, ('flow',), previous_features=previous_features,
                         return_flow_features=True)
        return out['flow'], out[FLOW_FEATURES]


def export_onnx(model: HydraNet, out_dir, input_size=(384, 640), tasks=SINGLE_FRAME_TASKS) -> dict:
    """Write single_frame.onnx and flow.onnx for a fixed input size; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval().float().cpu()
    h, w = int(input_size[0]), int(input_size[1])
    images = torch.zeros(1, 3, h, w)
    single = SingleFrameGraph(model, tasks).eval()
    with torch.no_grad():
        features = single(images)[-1]
    paths = {'single_frame': out_dir / 'single_frame.onnx', 'flow': out_dir / 'flow.onnx'}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(single, (images,), str(paths['single_frame']), dynamo=False,
                          input_names=['images'], output_names=[*single.tasks, FLOW_FEATURES],
                          opset_version=OPSET)
        torch.onnx.export(FlowGraph(model).eval(), (images, features), str(paths['flow']), dynamo=False,
                          input_names=['images', 'previous_features'],
                          output_names=['flow', FLOW_FEATURES], opset_version=OPSET)
    return paths
