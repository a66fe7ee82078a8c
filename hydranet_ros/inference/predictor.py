"""Predictor: HxWx3 uint8 images in, typed per-image results out (no ROS).

Wraps a loaded checkpoint with everything around the forward pass: letterboxing and
normalisation from the checkpoint metadata, device and precision, the per-stream flow cache,
detection decoding and mapping every output back to each image's own pixels.
"""
from __future__ import annotations

import contextlib
import itertools
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from hydranet_ros.inference.backends import BACKENDS, OnnxOptions, OnnxRuntimeRunner, TorchRunner
from hydranet_ros.inference.instances import group_instances, upsample_offsets
from hydranet_ros.inference.letterbox import Letterbox
from hydranet_ros.inference.results import Detection, FlowStatus, FrameResult
from hydranet_ros.model.checkpoint import LoadedCheckpoint, load_checkpoint
from hydranet_ros.model.config import check_tasks
from hydranet_ros.model.detection_decode import decode_detections
from hydranet_ros.model.fuse import fuse_conv_bn
from hydranet_ros.model.hydranet import FLOW_FEATURES, MIN_INPUT_SIZE, is_network_input_size
from hydranet_ros.inference.temporal_cache import FlowFeatureCache
from hydranet_ros.world.camera import checkpoint_focal_px
from hydranet_ros import DEFAULT_BACKEND, DEFAULT_SCORE_THRESHOLD, EXTRA_OUTPUTS

PRECISIONS = {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cpu'; 'cuda' / 'cuda:N' (checked)."""
    device = (device or 'auto').strip().lower()
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if device == 'cpu':
        return torch.device('cpu')
    if device.startswith('cuda'):
        if not torch.cuda.is_available():
            raise ValueError(f"device '{device}' requested but CUDA is not available on this machine "
                             "(use 'cpu' or 'auto')")
        dev = torch.device(device)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device '{device}' requested but only {torch.cuda.device_count()} CUDA "
                             'device(s) exist')
        return dev
    raise ValueError(f"unknown device '{device}'; use 'auto', 'cpu', 'cuda' or 'cuda:N'")


class OutOfMemory(MemoryError):
    """The forward pass ran out of device memory (CUDA) or host memory (the CPU allocator).

    One type for callers to catch: torch raises torch.OutOfMemoryError on CUDA, but a failed CPU
    allocation only as a RuntimeError whose text names the allocator; the predictor tells them
    apart here, once."""


def _as_out_of_memory(exc: BaseException) -> OutOfMemory | None:
    if isinstance(exc, torch.OutOfMemoryError):
        return OutOfMemory(str(exc))
    text = str(exc)
    if isinstance(exc, RuntimeError) and "can't allocate memory" in text:   # torch's DefaultCPUAllocator
        return OutOfMemory(text)
    # onnxruntime: its own exception types; its allocators and the CUDA provider say so in words
    if type(exc).__module__.startswith('onnxruntime') and ('Failed to allocate memory' in text
                                                            or 'out of memory' in text):
        return OutOfMemory(text)
    return None


class Predictor:
    """A checkpoint ready to run: numpy RGB images in, FrameResults in each image's own pixels out (letterbox,
    normalisation, device and precision, per-stream flow cache, detection decoding)."""
    def __init__(self, checkpoint, device: str = 'auto', precision: str = 'fp32',
                 tasks=None, input_size=None, channels_last: bool = True,
                 score_threshold: float = DEFAULT_SCORE_THRESHOLD, max_detections: int = 100,
                 flow_max_gap_s: float | None = 0.5, fuse: bool = True,
                 expected_sha256: str | None = None, backend: str = DEFAULT_BACKEND,
                 onnx: OnnxOptions | None = None, log=None):
        """backend: 'torch', or 'onnxruntime' on the exported deployment graph (options in
        `onnx`; device and precision keep their meaning: cpu/cuda, fp32/fp16). log: a callable
        taking one line, told about graph exports."""
        if isinstance(checkpoint, LoadedCheckpoint):
            loaded = checkpoint
        else:
            loaded = load_checkpoint(Path(checkpoint), expected_sha256=expected_sha256)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got '{precision}'")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got '{backend}'")
        self.backend = backend
        self.metadata = loaded.metadata
        self.model_id = loaded.model_id
        self.sha256 = loaded.sha256
        self.config = loaded.metadata.config
        self.precision = precision
        self.tasks = check_tasks(tasks if tasks is not None else loaded.metadata.tasks)
        missing = [t for t in self.tasks if t not in loaded.metadata.tasks]
        if missing:
            raise ValueError(f'checkpoint {self.model_id} was not trained for {missing}')
        size = input_size if input_size is not None else loaded.metadata.input_size
        if not is_network_input_size(size):
            raise ValueError(f'input_size must be (height, width), multiples of 32 and >= 32, got {size}')
        self.input_size = (int(size[0]), int(size[1]))
        if backend == 'onnxruntime':
            self.runner = OnnxRuntimeRunner(loaded, self.input_size, device, precision, onnx, log)
            self.device = self.runner.device
            self.channels_last = False
            self.model = None
        else:
            self.device = resolve_device(device)
            self.channels_last = channels_last
            model = fuse_conv_bn(loaded.model) if fuse else loaded.model.eval()
            model = model.to(self.device)
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            self.model = model
            self.runner = TorchRunner(model, self.device, self._make_autocast())
        norm = loaded.metadata.normalization
        self._mean = torch.tensor(norm['mean'], device=self.device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(norm['std'], device=self.device).view(1, 3, 1, 1) * 255.0
        # Padding with the mean colour makes the padded area exactly zero after normalisation.
        self._pad_value = np.clip(np.round(np.array(norm['mean']) * 255.0), 0, 255).astype(np.uint8)
        self.cache = FlowFeatureCache(flow_max_gap_s)
        self.set_options(score_threshold=score_threshold, max_detections=max_detections)
        self.class_names = [str(n) for n in loaded.metadata.detection_classes]
        #: [{'name', 'color'}] per segmentation class id, and their names
        self.segmentation_classes = list(loaded.metadata.segmentation_classes)
        self.segmentation_names = loaded.metadata.segmentation_names
        # the segmentation classes that have instances: those a detection class is named after
        self.thing_ids = [i for i, n in enumerate(self.segmentation_names) if str(n) in self.class_names]
        #: focal length (network-input pixels) the depth head is metric for; None: unknown
        self.training_focal_px = checkpoint_focal_px(loaded.metadata)

    @property
    def backend_description(self) -> str:
        """The backend in words: 'torch on cpu', 'onnxruntime (CUDAExecutionProvider, ...)'."""
        if self.backend == 'onnxruntime':
            return f'onnxruntime ({", ".join(self.runner.providers)})'
        return f'torch on {self.device}'

    def _make_autocast(self):
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext
        kind = self.device.type
        try:
            with torch.autocast(device_type=kind, dtype=dtype):
                pass
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f'precision {self.precision} is not supported on {self.device}: {exc}') from None
        return lambda: torch.autocast(device_type=kind, dtype=dtype)

    # ------------------------------------------------------------------------------------
    def set_options(self, score_threshold: float | None = None, max_detections: int | None = None,
                    flow_max_gap_s: float | None = None):
        """Change the options that apply per call, between calls (a node's dynamic parameters);
        an option left None keeps its value. ValueError, and nothing changed, on a bad value."""
        if score_threshold is not None and not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f'score_threshold must be in [0, 1], got {score_threshold}')
        if max_detections is not None and max_detections < 1:
            raise ValueError(f'max_detections must be >= 1, got {max_detections}')
        if flow_max_gap_s is not None and flow_max_gap_s <= 0:
            raise ValueError(f'flow_max_gap_s must be > 0, got {flow_max_gap_s}')
        if score_threshold is not None:
            self.score_threshold = float(score_threshold)
        if max_detections is not None:
            self.max_detections = int(max_detections)
        if flow_max_gap_s is not None:
            self.cache.max_gap_s = float(flow_max_gap_s)

    def reset(self, stream: str | None = None):
        """Forget the previous frame of one stream (or all): the next flow starts afresh."""
        self.cache.reset(stream)

    def prepare(self, task_sets=None):
        """Build what the backend needs for these sets of heads (default: all enabled heads,
        and the same without flow, which a stream's first frame runs; each with every subset of
        the extra outputs such as depth_uncertainty): onnxruntime exports or
        finds the graphs and loads them. Sets never prepared are built on first use."""
        if task_sets is None:
            # with every subset of the extra outputs (the node runs each only while subscribed)
            base = [t for t in self.tasks if t not in EXTRA_OUTPUTS]
            extras = [t for t in self.tasks if t in EXTRA_OUTPUTS]
            subsets = [c for k in range(len(extras), -1, -1) for c in itertools.combinations(extras, k)]
            with_extras = [check_tasks([*base, *c]) for c in subsets]
            task_sets = list(dict.fromkeys([*with_extras, *(tuple(t for t in s if t != 'flow') for s in with_extras)]))
        self.runner.prepare([t for t in task_sets if t])

    def warmup(self, iterations: int = 1):
        """Run the network on blank input so first-frame latency is not paid by real data."""
        blank = np.zeros((*self.input_size, 3), np.uint8)
        self.prepare()
        for i in range(iterations):
            self.predict([blank], tasks=self.tasks, streams=['__warmup__'], stamps_ns=[i * 1_000_000])
        self.cache.reset('__warmup__')

    @staticmethod
    def check_image(image) -> np.ndarray:
        if not isinstance(image, np.ndarray):
            raise TypeError(f'image must be a numpy array, got {type(image).__name__}')
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'image must be HxWx3, got shape {image.shape}')
        if image.dtype != np.uint8:
            raise ValueError(f'image must be uint8, got {image.dtype}')
        h, w = image.shape[:2]
        if h < MIN_INPUT_SIZE or w < MIN_INPUT_SIZE:
            raise ValueError(f'image {w}x{h} is too small for the network; each side must be at '
                             f'least {MIN_INPUT_SIZE} pixels')
        return image

    def predict(self, images, tasks=None, streams=None, stamps_ns=None, flow_size=None,
                dense_output: str = 'input', focal_px=None) -> list[FrameResult]:
        """Run the requested tasks on one image or a list of images (one per camera).

        images: HxWx3 uint8 RGB (any size >= 32x32), or a list of them.
        streams: per-image stream names (default 'default'); each has its own flow cache.
        stamps_ns: per-image times in integer nanoseconds, as in a ROS header (default: now);
            flow needs increasing stamps. Integers, so stamps stay exact at epoch times.
        flow_size: (h, w) of the returned flow, default the dense output size.
        dense_output: 'input' returns segmentation, depth and flow at each image's size; 'model'
            at the network's resolution of the image (as scaled into the input, padding cut).
            Detection boxes are always in the input image's pixels.
        focal_px: per-image horizontal focal length in that image's pixels (camera_info P[0]: the rectified image's), or
            None. Monocular depth is metric for the camera the network was trained with; given
            the actual focal length, depth is scaled by (focal at the network input) / (training
            focal): a longer lens sees the same object larger, hence nearer (FrameResult.depth_scale).
        """
        if dense_output not in ('input', 'model'):
            raise ValueError(f"dense_output must be 'input' or 'model', got '{dense_output}'")
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = [images]
        images = [self.check_image(im) for im in images]
        if not images:
            return []
        n = len(images)
        streams = list(streams) if streams is not None else ['default'] * n
        stamps = list(stamps_ns) if stamps_ns is not None else [time.time_ns()] * n
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in stamps):
            raise TypeError(f'stamps_ns must be integer nanoseconds, got {stamps}')
        stamps = [int(s) for s in stamps]
        focals = list(focal_px) if isinstance(focal_px, (list, tuple)) else [focal_px] * n
        if len(focals) != n or any(f is not None and not f > 0 for f in focals):
            raise ValueError(f'focal_px must be one focal length > 0 (or None) per image, got {focal_px}')
        if len(streams) != n or len(stamps) != n:
            raise ValueError(f'{n} images but {len(streams)} streams and {len(stamps)} stamps')
        if len(set(streams)) != n:
            raise ValueError('each image of one batch must come from a different stream')
        tasks = check_tasks(tasks if tasks is not None else self.tasks)
        if 'instances' in tasks and 'segmentation' not in tasks:    # ids are grouped over its thing classes
            tasks = check_tasks([*tasks, 'segmentation'])
        not_loaded = [t for t in tasks if t not in self.tasks]
        if not_loaded:
            raise ValueError(f'tasks {not_loaded} are not enabled in this predictor ({list(self.tasks)})')

        t0 = time.perf_counter()
        boxes = [Letterbox.fit(im.shape[:2], self.input_size) for im in images]
        batch = np.empty((n, *self.input_size, 3), np.uint8)
        for i, (lb, im) in enumerate(zip(boxes, images)):
            lb.apply(im, self._pad_value, out=batch[i])
        x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float()
        x = (x - self._mean) / self._std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)

        # Pair each image with its stream's previous features where possible.
        prev, prev_stamps, statuses = [None] * n, [None] * n, [(FlowStatus.NOT_REQUESTED, '')] * n
        if 'flow' in tasks:
            for i, (s, im, st) in enumerate(zip(streams, images, stamps)):
                prev[i], prev_stamps[i], *status = self.cache.lookup(s, im.shape[:2], st)
                statuses[i] = tuple(status)
        run_tasks = [t for t in tasks if t != 'flow' or any(p is not None for p in prev)]
        t1 = time.perf_counter()
        previous = valid = None
        if 'flow' in run_tasks:
            ref = next(p for p in prev if p is not None)
            previous = torch.stack([p if p is not None else torch.zeros_like(ref) for p in prev])
            valid = torch.tensor([p is not None for p in prev], device=self.device)
        try:
            out = self.runner.run(x, run_tasks, previous, valid)
        except Exception as exc:
            oom = _as_out_of_memory(exc)
            if oom is None:
                raise
            raise oom from exc
        with torch.inference_mode():
            for i, (s, im, st) in enumerate(zip(streams, images, stamps)):
                self.cache.store(s, out[FLOW_FEATURES][i], im.shape[:2], st)
            decoded = None
            if 'detection' in run_tasks:
                decoded = decode_detections(out['detection'].float(), self.config.num_detection_classes,
                                            top_k=self.max_detections)
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        t2 = time.perf_counter()
        results = []
        for i, (lb, im) in enumerate(zip(boxes, images)):
            results.append(self._postprocess(i, lb, out, decoded, run_tasks, tasks, prev_stamps[i],
                                             statuses[i], flow_size, streams[i], stamps[i], dense_output,
                                             focals[i]))
        t3 = time.perf_counter()
        timings = {'preprocess_ms': (t1 - t0) * 1e3, 'inference_ms': (t2 - t1) * 1e3,
                   'postprocess_ms': (t3 - t2) * 1e3}
        for r in results:
            r.timings_ms = dict(timings)
        return results

    def _instances(self, maps: np.ndarray, seg: np.ndarray, size_hw) -> np.ndarray:
        """uint16 instance ids at size_hw from the head's maps [3, H/4, W/4] (padded input) and the
        content's class ids seg [ch, cw] at model resolution."""
        ch, cw = seg.shape
        gh, gw = -(-ch // 4), -(-cw // 4)
        # the offsets at model resolution (the padded grid's, cut to the content), grouped there
        offsets = upsample_offsets(maps[1:, :gh, :gw], (gh * 4, gw * 4))[:, :ch, :cw]
        ids = group_instances(maps[0, :gh, :gw], offsets, np.isin(seg, self.thing_ids))
        h, w = size_hw
        return np.ascontiguousarray(cv2_resize(ids, (w, h), nearest=True) if (ch, cw) != (h, w) else ids,
                                    dtype=np.uint16)

    def _postprocess(self, i, lb: Letterbox, out, decoded, run_tasks, tasks, prev_stamp, status,
                     flow_size, stream, stamp, dense_output='input', focal=None) -> FrameResult:
        ch, cw = lb.content_size
        res = FrameResult(image_size=lb.image_size, stream=stream, stamp_ns=stamp)
        # Dense outputs go to (h, w): the image's size, or the content size at model resolution.
        h, w = lb.image_size if dense_output == 'input' else (ch, cw)
        if 'segmentation' in run_tasks:
            seg = out['segmentation'][i, :ch, :cw].cpu().numpy()
            res.segmentation = np.ascontiguousarray(
                cv2_resize(seg, (w, h), nearest=True) if (ch, cw) != (h, w) else seg)
        if focal is not None and self.training_focal_px and ('depth' in run_tasks or 'depth_uncertainty' in run_tasks):
            res.depth_scale = float(focal * lb.scale / self.training_focal_px)
        for key in ('depth', 'depth_uncertainty'):       # metres, scaled alike for the camera's lens
            if key in run_tasks:
                value = out[key][i, 0, :ch, :cw].float().cpu().numpy()
                value = np.ascontiguousarray(cv2_resize(value, (w, h)) if (ch, cw) != (h, w) else value,
                                             dtype=np.float32)
                if res.depth_scale is not None:
                    value *= np.float32(res.depth_scale)
                setattr(res, key, value)
        if 'flow' in tasks:
            res.flow_status, res.flow_status_detail = status
            if res.flow_status is FlowStatus.OK:
                th, tw = tuple(flow_size) if flow_size is not None else (h, w)
                # Crop to the image area (vectors in network pixels), then resize to the target
                # grid, scaling the vectors with it. HxWx2 at network resolution first: the
                # transposing copy is then the small one, and OpenCV resizes both channels at once.
                field = np.ascontiguousarray(out['flow'][i, :, :ch, :cw].float().cpu().numpy().transpose(1, 2, 0))
                if (th, tw) != (ch, cw):
                    field = cv2_resize(field, (tw, th))
                    field *= np.array([tw / cw, th / ch], np.float32)
                res.flow = field
                res.flow_previous_stamp_ns = prev_stamp
        if 'instances' in run_tasks:
            res.instances = self._instances(out['instances'][i].float().cpu().numpy(),
                                            out['segmentation'][i, :ch, :cw].cpu().numpy(), (h, w))
        if 'detection' in run_tasks:
            scores = decoded.scores[i].cpu().numpy()
            keep = scores >= self.score_threshold
            boxes = lb.box_to_image(decoded.boxes[i].float().cpu().numpy()[keep])
            classes = decoded.classes[i].cpu().numpy()[keep]
            res.detections = [
                Detection(float(b[0]), float(b[1]), float(b[2]), float(b[3]), int(c),
                          self.class_names[int(c)], float(s))
                for b, c, s in zip(boxes, classes, scores[keep]) if b[2] > b[0] and b[3] > b[1]]
        return res


def cv2_resize(array: np.ndarray, size_wh, nearest=False) -> np.ndarray:
    return cv2.resize(array, size_wh, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)


__all__ = ['Predictor', 'resolve_device', 'PRECISIONS']
