"""Inference backends behind the Predictor: torch, and onnxruntime on the exported graph.

Both take the same normalised batch and give the same outputs (segmentation as uint8 class
ids, depth, flow and raw detection maps as float tensors, this frame's flow features), so
everything around the forward pass (letterbox, flow cache, detection decoding, mapping back
to image pixels) is shared and the two stay comparable frame for frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hydranet_ros.model.checkpoint import LoadedCheckpoint
from hydranet_ros.model.config import check_tasks
from hydranet_ros.model.hydranet import FLOW_FEATURES
from hydranet_ros.model.onnx_export import IMAGES, PREVIOUS_FEATURES, PREVIOUS_VALID, GraphCache

BACKENDS = ('torch', 'onnxruntime')
#: Short names accepted in a provider list, for the providers this package configures.
PROVIDER_ALIASES = {'cpu': 'CPUExecutionProvider', 'cuda': 'CUDAExecutionProvider',
                    'tensorrt': 'TensorrtExecutionProvider'}
_GPU_PROVIDERS = ('TensorrtExecutionProvider', 'CUDAExecutionProvider')
#: Largest batch (cameras per call) a TensorRT engine is built for.
TENSORRT_MAX_BATCH = 8


@dataclass(frozen=True)
class OnnxOptions:
    """How the onnxruntime backend runs: providers in order of preference ('auto': CUDA when
    onnxruntime has it and the device allows, else CPU; TensorRT only when named), the graph
    cache directory ('' = ~/.cache/hydranet_ros/onnx), TensorRT's workspace and engine cache,
    and the intra-op threads (0 = onnxruntime's default, one per physical core)."""
    providers: tuple[str, ...] = ('auto',)
    cache_dir: str = ''
    tensorrt_workspace_mb: int = 2048
    tensorrt_engine_cache: bool = True
    threads: int = 0


class TorchRunner:
    """The torch module itself (BatchNorm folded, channels-last where asked), under autocast
    for fp16/bf16."""
    name = 'torch'

    def __init__(self, model: torch.nn.Module, device: torch.device, autocast):
        self.model, self.device, self._autocast = model, device, autocast

    def prepare(self, task_sets):
        """Nothing to build: torch runs any set of heads from the one module."""

    def run(self, x, tasks, previous=None, valid=None) -> dict[str, torch.Tensor]:
        with torch.inference_mode(), self._autocast():
            out = self.model(x, tasks, previous_features=previous, previous_valid=valid,
                             return_flow_features=True)
            if 'segmentation' in out:
                out['segmentation'] = out['segmentation'].argmax(dim=1).to(torch.uint8)
        return out


def resolve_providers(requested, device: str, available=None) -> list[str]:
    """The onnxruntime providers to use, in order, for a provider request and a device request.

    Explicit names (or the aliases cpu / cuda / tensorrt) must all be available and agree with
    the device; anything else is a ValueError naming what is available. Only 'auto' chooses."""
    if available is None:
        import onnxruntime
        available = onnxruntime.get_available_providers()
    device = (device or 'auto').strip().lower()
    if device not in ('auto', 'cpu', 'cuda') and not device.startswith('cuda:'):
        raise ValueError(f"unknown device '{device}'; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    requested = [str(p).strip() for p in (requested or ['auto']) if str(p).strip()] or ['auto']
    gpu_available = [p for p in _GPU_PROVIDERS if p in available]
    if requested == ['auto']:
        if device == 'cpu':
            return ['CPUExecutionProvider']
        if 'CUDAExecutionProvider' in available:
            return ['CUDAExecutionProvider', 'CPUExecutionProvider']
        if device != 'auto':
            raise ValueError(f"device '{device}' asks for a GPU but this onnxruntime has no CUDA provider "
                             f'(available: {available}; the onnxruntime-gpu package has it)')
        return ['CPUExecutionProvider']
    if 'auto' in requested:
        raise ValueError(f"'auto' cannot be combined with named providers: {requested}")
    names = [PROVIDER_ALIASES.get(p.lower(), p) for p in requested]
    missing = [p for p in names if p not in available]
    if missing:
        raise ValueError(f'onnxruntime provider(s) {missing} are not available here; available: {available}')
    gpu = [p for p in names if p in _GPU_PROVIDERS]
    if device == 'cpu' and gpu:
        raise ValueError(f"device 'cpu' contradicts the GPU provider(s) {gpu}")
    if device.startswith('cuda') and not gpu:
        raise ValueError(f"device '{device}' asks for a GPU but the providers {names} are CPU only "
                         f'(GPU providers available here: {gpu_available or "none"})')
    if 'CPUExecutionProvider' not in names:
        names.append('CPUExecutionProvider')   # onnxruntime runs what a GPU provider cannot there
    return names


class OnnxRuntimeRunner:
    """One onnxruntime session per set of heads, each on the deployment graph exported from the
    checkpoint (cached on disk): a frame for which only depth has subscribers runs the depth
    graph, which costs well under half of all heads."""
    name = 'onnxruntime'

    def __init__(self, loaded: LoadedCheckpoint, input_size, device: str = 'auto', precision: str = 'fp32',
                 options: OnnxOptions | None = None, log=None):
        import onnxruntime
        self._ort = onnxruntime
        self.options = options = options or OnnxOptions()
        self.providers = resolve_providers(options.providers, device)
        self.precision = precision
        if precision == 'bf16':
            raise ValueError("precision 'bf16' is not available with the onnxruntime backend; use fp32 or fp16")
        gpu = [p for p in self.providers if p in _GPU_PROVIDERS]
        if precision == 'fp16' and not gpu:
            raise ValueError("precision 'fp16' with the onnxruntime backend needs the CUDA or TensorRT provider; "
                             f'the providers are {self.providers}')
        self.device_id = int(device.split(':')[1]) if device.startswith('cuda:') else 0
        # Where inputs and outputs live: the GPU when both torch and onnxruntime run there.
        self.device = (torch.device('cuda', self.device_id) if gpu and torch.cuda.is_available()
                       else torch.device('cpu'))
        # TensorRT builds fp16 engines from the fp32 graph; the CUDA provider needs an fp16 graph.
        self._fp16_graph = precision == 'fp16' and gpu[0] == 'CUDAExecutionProvider'
        self._loaded = loaded
        self.input_size = tuple(int(v) for v in input_size)
        self._cache = GraphCache(options.cache_dir or None)
        self._sessions: dict[tuple, _Session] = {}
        self._log = log or (lambda message: None)
        self.exports = 0

    @property
    def cache_dir(self) -> Path:
        return self._cache.directory

    def prepare(self, task_sets):
        """Export (or find in the cache) and load the graphs of these sets of heads now, so no
        frame pays for it later."""
        for tasks in task_sets:
            self._session(check_tasks(tasks))

    def run(self, x, tasks, previous=None, valid=None) -> dict[str, torch.Tensor]:
        session = self._session(check_tasks(tasks))
        inputs = {IMAGES: x.contiguous()}
        if session.has_flow:
            if previous is None:   # nothing to pair with: each image stands in for itself
                previous = torch.zeros((x.shape[0], *session.feature_shape), dtype=torch.float32, device=x.device)
                valid = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
            inputs[PREVIOUS_FEATURES] = previous.float().contiguous()
            inputs[PREVIOUS_VALID] = (valid if valid is not None else
                                      torch.ones(x.shape[0], dtype=torch.bool, device=x.device)).contiguous()
        return session.run(inputs, x.shape[0], self.device)

    def _session(self, tasks) -> _Session:
        session = self._sessions.get(tasks)
        if session is None:
            path, exported = self._cache.get(self._loaded.model, self._loaded.sha256, self.input_size, tasks,
                                             self._fp16_graph)
            self.exports += exported
            self._log(f'onnxruntime graph for {"+".join(tasks)}: {"exported to" if exported else "cached at"} {path}')
            session = self._sessions[tasks] = _Session(self._ort, path, tasks, self._session_options(),
                                                       self._provider_options('flow' in tasks), self.input_size)
        return session

    def _session_options(self):
        so = self._ort.SessionOptions()
        so.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.options.threads:
            so.intra_op_num_threads = int(self.options.threads)
        return so

    def _provider_options(self, flow: bool) -> list:
        result = []
        for name in self.providers:
            if name == 'CUDAExecutionProvider':
                result.append((name, {'device_id': self.device_id}))
            elif name == 'TensorrtExecutionProvider':
                result.append((name, self._tensorrt_options(flow)))
            else:
                result.append((name, {}))
        return result

    def _tensorrt_options(self, flow: bool) -> dict:
        """TensorRT settings; the optimisation profile names every dynamic input of the graph
        (batch 1 to TENSORRT_MAX_BATCH), so engines are built once and cached."""
        h, w = self.input_size
        with torch.no_grad():
            _, c, fh, fw = self._loaded.model.encode_flow_features(torch.zeros(1, 3, h, w)).shape

        def shapes(batch):
            text = f'{IMAGES}:{batch}x3x{h}x{w}'
            return text + (f',{PREVIOUS_FEATURES}:{batch}x{c}x{fh}x{fw},{PREVIOUS_VALID}:{batch}' if flow else '')
        engines = self.cache_dir / 'tensorrt'
        return {'device_id': self.device_id,
                'trt_max_workspace_size': int(self.options.tensorrt_workspace_mb) * 2 ** 20,
                'trt_fp16_enable': self.precision == 'fp16',
                'trt_engine_cache_enable': bool(self.options.tensorrt_engine_cache),
                'trt_engine_cache_path': str(engines),
                'trt_timing_cache_enable': bool(self.options.tensorrt_engine_cache),
                'trt_timing_cache_path': str(engines),
                'trt_profile_min_shapes': shapes(1), 'trt_profile_opt_shapes': shapes(1),
                'trt_profile_max_shapes': shapes(TENSORRT_MAX_BATCH)}


_NUMPY_TYPES = {'tensor(float)': np.float32, 'tensor(uint8)': np.uint8, 'tensor(bool)': np.bool_,
                'tensor(float16)': np.float16}
_TORCH_TYPES = {np.float32: torch.float32, np.uint8: torch.uint8, np.bool_: torch.bool, np.float16: torch.float16}


class _Session:
    """One graph in one onnxruntime session, run through IO binding: inputs are read from and
    outputs written into torch tensors in place (host or GPU), no copies in between."""

    def __init__(self, ort, path, tasks, session_options, providers, input_size):
        names = [p[0] for p in providers]
        try:
            self.session = ort.InferenceSession(str(path), session_options, providers=providers)
        except Exception as exc:   # onnxruntime raises its own exception types, none of them shared
            raise RuntimeError(f'onnxruntime could not load {path} with {names}: {exc}') from exc
        self.tasks = tasks
        self.has_flow = 'flow' in tasks
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_types = {i.name: _NUMPY_TYPES[i.type] for i in self.session.get_inputs()}
        # Output shapes per image, from one probe run (a static size, only the batch varies).
        h, w = input_size
        probe = {IMAGES: np.zeros((1, 3, h, w), np.float32)}
        if self.has_flow:
            shape = [d if isinstance(d, int) else 1 for d in self.session.get_inputs()[1].shape]
            probe[PREVIOUS_FEATURES] = np.zeros(shape, np.float32)
            probe[PREVIOUS_VALID] = np.zeros(1, np.bool_)
        outputs = self.session.run(None, probe)
        self.output_specs = {n: (o.shape[1:], _TORCH_TYPES[o.dtype.type]) for n, o in zip(self.output_names, outputs)}
        self.feature_shape = self.output_specs[FLOW_FEATURES][0]

    def run(self, inputs: dict, batch: int, device: torch.device) -> dict[str, torch.Tensor]:
        binding = self.session.io_binding()
        kind, index = ('cuda', device.index or 0) if device.type == 'cuda' else ('cpu', 0)
        kept = []   # the bound memory must outlive the run
        for name, tensor in inputs.items():
            tensor = tensor.to(device)
            kept.append(tensor)
            binding.bind_input(name, kind, index, self.input_types[name], tuple(tensor.shape), tensor.data_ptr())
        out = {}
        for name, (shape, dtype) in self.output_specs.items():
            out[name] = torch.empty((batch, *shape), dtype=dtype, device=device)
            numpy_type = {torch.float32: np.float32, torch.uint8: np.uint8, torch.float16: np.float16}[dtype]
            binding.bind_output(name, kind, index, numpy_type, tuple(out[name].shape), out[name].data_ptr())
        self.session.run_with_iobinding(binding)
        return out
