"""ONNX export: one deployment graph per set of heads, cached on disk by checkpoint and size.

The graph takes this frame's images, the previous frame's flow features and a per-image flag
saying whether those are valid, and returns every requested head plus this frame's flow
features to keep: the state of optical flow lives in the caller (one cache per camera), not
in the graph, so one graph serves single frames, flow sequences and multi-camera batches
(the batch dimension is dynamic). Graphs without flow take the images alone.

Segmentation leaves the graph as class ids (uint8), the other heads as the network's raw
outputs; detection maps are decoded by the caller exactly as on the torch path.
"""
from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from hydranet_ros.model.config import check_tasks
from hydranet_ros.model.fuse import fuse_conv_bn
from hydranet_ros.model.hydranet import FLOW_FEATURES, HydraNet

OPSET = 17
#: Graph input names.
IMAGES, PREVIOUS_FEATURES, PREVIOUS_VALID = 'images', 'previous_features', 'previous_valid'
_MODEL_SOURCES = Path(__file__).resolve().parent


class DeploymentGraph(nn.Module):
    """forward(images, [previous_features, previous_valid]) -> (*heads, flow_features), in
    the order of `tasks`; segmentation as uint8 class ids."""

    def __init__(self, model: HydraNet, tasks, fp16: bool = False):
        super().__init__()
        self.model, self.tasks, self.fp16 = model, tuple(check_tasks(tasks)), fp16

    @property
    def input_names(self) -> list[str]:
        return [IMAGES, PREVIOUS_FEATURES, PREVIOUS_VALID] if 'flow' in self.tasks else [IMAGES]

    @property
    def output_names(self) -> list[str]:
        return [*self.tasks, FLOW_FEATURES]

    def forward(self, images, previous_features=None, previous_valid=None):
        dtype = torch.float16 if self.fp16 else torch.float32
        if previous_features is not None:
            previous_features = previous_features.to(dtype)
        out = self.model(images.to(dtype), self.tasks, previous_features=previous_features,
                         previous_valid=previous_valid, return_flow_features=True)
        outputs = []
        for task in self.tasks:
            value = out[task]
            outputs.append(value.argmax(dim=1).to(torch.uint8) if task == 'segmentation' else value.float())
        return (*outputs, out[FLOW_FEATURES].float())


def export_graph(model: HydraNet, path, input_size, tasks=None, fp16: bool = False) -> Path:
    """Write the deployment graph of `tasks` (default: every head) for input (height, width)
    to path. BatchNorm is folded first; the export is deterministic (same bytes for the same
    weights, size, heads and software)."""
    path = Path(path)
    h, w = int(input_size[0]), int(input_size[1])
    model = fuse_conv_bn(model.float().cpu().eval())
    if fp16:
        model = model.half()
    graph = DeploymentGraph(model, tasks if tasks is not None else model.heads.keys(), fp16).eval()
    images = torch.zeros(1, 3, h, w)
    args = (images,)
    if 'flow' in graph.tasks:
        with torch.no_grad():
            features = model.encode_flow_features(images.to(torch.float16 if fp16 else torch.float32)).float()
        args = (images, features, torch.ones(1, dtype=torch.bool))
    dynamic = {name: {0: 'batch'} for name in [*graph.input_names, *graph.output_names]}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')
        torch.onnx.export(graph, args, str(path), dynamo=False, input_names=graph.input_names,
                          output_names=graph.output_names, dynamic_axes=dynamic, opset_version=OPSET)
    return path


def export_onnx(model: HydraNet, out_dir, input_size=(384, 640), tasks=None) -> Path:
    """Write `hydranet.onnx`, the deployment graph of every head (or `tasks`), to out_dir."""
    return export_graph(model, Path(out_dir) / 'hydranet.onnx', input_size, tasks)


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Short hash of what shapes an exported graph besides the weights: the model code, torch's
    version and the opset. Part of every cache key, so an upgrade never reuses a stale graph."""
    digest = hashlib.sha256(f'{torch.__version__}|{OPSET}'.encode())
    for source in sorted(_MODEL_SOURCES.glob('*.py')):
        digest.update(source.name.encode() + source.read_bytes())
    return digest.hexdigest()[:10]


class GraphCache:
    """Exported deployment graphs on disk, one file per (checkpoint sha256, input size, heads,
    precision, code fingerprint): a node configures with an export once per machine and
    reuses it afterwards. Files appear atomically, so processes can share a directory."""

    def __init__(self, directory=None):
        self.directory = Path(directory) if directory else default_cache_dir()

    def path_for(self, sha256: str, input_size, tasks, fp16: bool = False) -> Path:
        h, w = int(input_size[0]), int(input_size[1])
        heads = '+'.join(check_tasks(tasks))
        name = f'hydranet-{sha256[:16]}-{w}x{h}-{heads}-{"fp16" if fp16 else "fp32"}-{code_fingerprint()}.onnx'
        return self.directory / name

    def get(self, model: HydraNet, sha256: str, input_size, tasks, fp16: bool = False) -> tuple[Path, bool]:
        """(path of the graph, whether it was exported now)."""
        path = self.path_for(sha256, input_size, tasks, fp16)
        if path.is_file():
            return path, False
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f'cannot create the ONNX cache directory {self.directory}: {exc}') from None
        fd, tmp = tempfile.mkstemp(prefix=path.name + '.', suffix='.tmp', dir=self.directory)
        os.close(fd)
        try:
            export_graph(model, tmp, input_size, tasks, fp16)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path, True


def default_cache_dir() -> Path:
    """$HYDRANET_ONNX_CACHE_DIR, else $XDG_CACHE_HOME/hydranet_ros/onnx, else ~/.cache/hydranet_ros/onnx."""
    if os.environ.get('HYDRANET_ONNX_CACHE_DIR'):
        return Path(os.environ['HYDRANET_ONNX_CACHE_DIR'])
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return Path(base) / 'hydranet_ros' / 'onnx'
