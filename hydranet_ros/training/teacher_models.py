"""Teacher networks for pseudo-labels: an ONNX file run with onnxruntime, described by a YAML file
beside it (task, input size and normalisation, output kind, classes and their map onto the
model's); `Teacher` turns an image into that task's labels and their confidence in the model's
classes. The YAML keys are in docs/TRAINING.md and the pseudo_label module's docstring."""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from hydranet_ros import DEFAULT_SCORE_THRESHOLD


TASKS = ('segmentation', 'depth', 'detection')
DEPTH_KINDS = ('metric', 'relative', 'inverse_relative')
SCALE_SOURCES = ('camera_height', 'sparse_depth')


class TeacherError(ValueError):
    """A teacher file or its description cannot be used."""


@dataclass(frozen=True)
class TeacherSpec:
    """One teacher: its ONNX file and what its YAML says about inputs and outputs."""
    path: str
    task: str
    sha256: str
    input_name: str | None = None
    size: tuple | None = None                  # (H, W); None: the image's own size
    layout: str = 'NCHW'
    color: str = 'rgb'
    scale: float = 255.0
    mean: tuple = (0.0, 0.0, 0.0)
    std: tuple = (1.0, 1.0, 1.0)
    resize: str = 'letterbox'
    outputs: dict = field(default_factory=dict)   # role -> output name
    kind: str = ''                                # logits/classes, metric/relative/inverse_relative
    classes: tuple = ()
    class_map: dict = field(default_factory=dict)
    box_format: str = 'xyxy'
    normalized: bool = False
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    flip_confidence: bool = True
    focal_px: float | None = None                 # metric depth: the focal length (input pixels) it is metric for

    @classmethod
    def load(cls, onnx_path, yaml_path=None) -> 'TeacherSpec':
        """Read and check a teacher's YAML (default: the ONNX file's name with .yaml)."""
        import yaml
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise TeacherError(f'teacher {onnx_path}: no such file')
        yaml_path = Path(yaml_path) if yaml_path else onnx_path.with_suffix('.yaml')
        if not yaml_path.is_file():
            raise TeacherError(f'teacher {onnx_path}: its description {yaml_path} is missing '
                               '(task, input, output(s), classes: see docs/TRAINING.md)')
        try:
            d = yaml.safe_load(yaml_path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise TeacherError(f'{yaml_path}: not YAML: {exc}') from exc
        task = d.get('task')
        if task not in TASKS:
            raise TeacherError(f'{yaml_path}: task must be one of {list(TASKS)}, got {task!r}')
        inp = d.get('input') or {}
        out = d.get('output') or {}
        outputs = dict(d.get('outputs') or {})
        if task == 'detection':
            missing = [k for k in ('boxes', 'scores', 'classes') if not outputs.get(k)]
            if missing:
                raise TeacherError(f'{yaml_path}: a detection teacher needs outputs.{{boxes, scores, classes}}: '
                                   f'missing {missing}')
        else:
            outputs = {'main': out.get('name')}
        kind = 'boxes' if task == 'detection' else \
            str(out.get('kind', 'logits' if task == 'segmentation' else 'metric'))
        if task == 'segmentation' and kind not in ('logits', 'classes'):
            raise TeacherError(f"{yaml_path}: output.kind must be 'logits' or 'classes', got {kind!r}")
        if task == 'depth' and kind not in DEPTH_KINDS:
            raise TeacherError(f'{yaml_path}: output.kind must be one of {list(DEPTH_KINDS)}, got {kind!r}')
        classes = tuple(str(c) for c in d.get('classes') or ())
        if task != 'depth' and not classes:
            raise TeacherError(f'{yaml_path}: classes (the teacher\'s class names in id order) are needed')
        size = inp.get('size')
        if size is not None and (len(size) != 2 or min(int(v) for v in size) < 8):
            raise TeacherError(f'{yaml_path}: input.size must be [height, width], got {size}')
        layout = str(inp.get('layout', 'NCHW')).upper()
        if layout not in ('NCHW', 'NHWC'):
            raise TeacherError(f'{yaml_path}: input.layout must be NCHW or NHWC, got {layout!r}')
        resize = str(inp.get('resize', 'letterbox'))
        if resize not in ('letterbox', 'stretch'):
            raise TeacherError(f"{yaml_path}: input.resize must be 'letterbox' or 'stretch', got {resize!r}")
        box_format = str(d.get('box_format', 'xyxy'))
        if box_format not in ('xyxy', 'cxcywh'):
            raise TeacherError(f"{yaml_path}: box_format must be 'xyxy' or 'cxcywh', got {box_format!r}")
        focal_px = d.get('focal_px')
        if focal_px is not None and (task != 'depth' or kind != 'metric' or not isinstance(focal_px, (int, float))
                                     or not focal_px > 0):
            raise TeacherError(f'{yaml_path}: focal_px (a number > 0) belongs to a metric depth teacher only')
        sha = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
        return cls(path=str(onnx_path), task=task, sha256=sha, input_name=inp.get('name'),
                   size=tuple(int(v) for v in size) if size else None, layout=layout,
                   color=str(inp.get('color', 'rgb')).lower(), scale=float(inp.get('scale', 255.0)),
                   mean=tuple(float(v) for v in inp.get('mean', (0.0, 0.0, 0.0))),
                   std=tuple(float(v) for v in inp.get('std', (1.0, 1.0, 1.0))), resize=resize,
                   outputs=outputs, kind=kind, classes=classes, class_map=dict(d.get('class_map') or {}),
                   box_format=box_format, normalized=bool(d.get('normalized', False)),
                   score_threshold=float(d.get('score_threshold', 0.3)),
                   flip_confidence=bool(d.get('flip_confidence', True)), focal_px=focal_px)

    def class_lut(self, ours: list) -> np.ndarray:
        """Teacher class id -> our class id (-1: left out), by class_map or equal names."""
        table = self.class_map or {n: n for n in self.classes if n in ours}
        lut = np.full(len(self.classes), -1, np.int64)
        for theirs, mine in table.items():
            if mine is None:
                continue
            if theirs not in self.classes:
                raise TeacherError(f'{self.path}: class_map names {theirs!r}, not one of its classes '
                                   f'{list(self.classes)}')
            if mine not in ours:
                raise TeacherError(f'{self.path}: class_map maps {theirs!r} to {mine!r}, not one of the model\'s '
                                   f'classes {ours}')
            lut[self.classes.index(theirs)] = ours.index(mine)
        if not (lut >= 0).any():
            raise TeacherError(f'{self.path}: none of its classes {list(self.classes)} maps onto the model\'s {ours}')
        return lut


@functools.lru_cache(maxsize=8)
def _session(path: str, sha256: str):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
    except Exception as exc:   # noqa: BLE001 - onnxruntime raises its own types for a bad file
        raise TeacherError(f'teacher {path}: onnxruntime cannot load it: {exc}') from exc


class Teacher:
    """A loaded teacher: run(rgb) gives its outputs in the image's own pixels."""

    def __init__(self, spec: TeacherSpec):
        self.spec = spec
        self.session = _session(spec.path, spec.sha256)
        inputs = self.session.get_inputs()
        names = [i.name for i in inputs]
        self.input_name = spec.input_name or names[0]
        if self.input_name not in names:
            raise TeacherError(f'{spec.path}: no input {self.input_name!r}; it has {names}')
        have = {o.name for o in self.session.get_outputs()}
        self.output_names = {}
        for role, name in spec.outputs.items():
            name = name or self.session.get_outputs()[0].name
            if name not in have:
                raise TeacherError(f'{spec.path}: no output {name!r}; it has {sorted(have)}')
            self.output_names[role] = name

    def _fit(self, image_hw):
        """(sx, sy, (h, w)): the teacher's input pixels per image pixel, and the image's area in the input."""
        h, w = image_hw
        big_h, big_w = self.spec.size or (h, w)
        if self.spec.resize == 'stretch':
            return big_w / w, big_h / h, (big_h, big_w)
        sx = sy = min(big_h / h, big_w / w)
        return sx, sy, (min(big_h, max(1, round(h * sy))), min(big_w, max(1, round(w * sx))))

    def _prepare(self, rgb: np.ndarray):
        """(network input, (sx, sy) input pixels per image pixel, (h, w) of the image inside it)."""
        s = self.spec
        h, w = rgb.shape[:2]
        big_h, big_w = s.size or (h, w)
        sx, sy, content = self._fit((h, w))
        img = rgb if content == (h, w) else cv2.resize(
            rgb, (content[1], content[0]), interpolation=cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR)
        img = img[..., ::-1] if s.color == 'bgr' else img
        x = np.zeros((big_h, big_w, 3), np.float32)     # padding: zero after normalisation (the mean colour)
        x[:content[0], :content[1]] = (img.astype(np.float32) / np.float32(s.scale) - np.asarray(s.mean, np.float32)) \
            / np.asarray(s.std, np.float32)
        x = x[None] if s.layout == 'NHWC' else x.transpose(2, 0, 1)[None]
        return np.ascontiguousarray(x, np.float32), (sx, sy), content

    def _dense_back(self, a: np.ndarray, content, in_h: int, image_hw, nearest: bool = False) -> np.ndarray:
        """A [h, w(, C)] output map (at the input's size or a stride of it) -> the image's pixels:
        the image's share of it (letterbox padding cut), resized."""
        f = a.shape[0] / in_h
        ch, cw = max(1, int(round(content[0] * f))), max(1, int(round(content[1] * f)))
        a = np.ascontiguousarray(a[:ch, :cw])
        if a.shape[:2] == tuple(image_hw):
            return a
        if a.ndim == 3 and a.shape[2] > 512:
            raise TeacherError(f'{self.spec.path}: {a.shape[2]} classes: at most 512 supported')
        interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        return cv2.resize(a, (image_hw[1], image_hw[0]), interpolation=interp)

    def _run(self, rgb):
        x, scale, content = self._prepare(rgb)
        outs = self.session.run(list(self.output_names.values()), {self.input_name: x})
        in_h = x.shape[1] if self.spec.layout == 'NHWC' else x.shape[2]
        return dict(zip(self.output_names, outs)), scale, content, in_h, x.shape

    def segmentation(self, rgb, lut: np.ndarray):
        """(class ids in our classes, 255 where the teacher's class maps to none; confidence)."""
        named, _, content, in_h, _ = self._run(rgb)
        out = np.asarray(named['main'])
        h, w = rgb.shape[:2]
        if self.spec.kind == 'classes':
            ids = out.reshape(out.shape[-2:]).astype(np.int32)
            ids = self._dense_back(ids, content, in_h, (h, w), nearest=True).astype(np.int64)
            mapped = np.where((ids >= 0) & (ids < len(lut)), lut[np.clip(ids, 0, len(lut) - 1)], -1)
            conf = (mapped >= 0).astype(np.float32)
        else:
            logits = out.reshape(out.shape[-3:]).astype(np.float32)   # [C, h, w]
            if logits.shape[0] != len(lut):
                raise TeacherError(f'{self.spec.path}: {logits.shape[0]} output channels, {len(lut)} classes named')
            e = np.exp(logits - logits.max(axis=0, keepdims=True))
            prob = e / e.sum(axis=0, keepdims=True)
            n_ours = int(lut.max()) + 1
            ours = np.zeros((n_ours, *prob.shape[1:]), np.float32)
            for t, o in enumerate(lut):
                if o >= 0:
                    ours[o] += prob[t]
            ours = self._dense_back(ours.transpose(1, 2, 0), content, in_h, (h, w)).reshape(h, w, -1)
            mapped = ours.argmax(axis=2)
            conf = ours.max(axis=2)
            left_out = 1.0 - ours.sum(axis=2)          # probability of classes that map to none of ours
            mapped = np.where(left_out > conf, -1, mapped)
        labels = np.where(mapped >= 0, mapped, 255).astype(np.uint8)
        return labels, np.where(mapped >= 0, conf, 0).astype(np.float32)

    def depth(self, rgb, focal_px: float | None = None):
        """(depth in the teacher's units: metres for a metric teacher, else relative; confidence).
        A metric teacher that names its focal_px is rescaled to this image's lens (focal_px, the
        image's own pixels) as the node does: a longer lens sees the same object larger, nearer."""
        d = self._depth_once(rgb)
        if not self.spec.flip_confidence:
            conf = np.isfinite(d).astype(np.float32)
        else:
            mirrored = self._depth_once(np.ascontiguousarray(rgb[:, ::-1]))[:, ::-1]
            ok = np.isfinite(d) & np.isfinite(mirrored) & (d > 0) & (mirrored > 0)
            conf = np.zeros(d.shape, np.float32)
            conf[ok] = np.exp(-np.abs(np.log(d[ok]) - np.log(mirrored[ok])) / 0.05)
        if self.spec.focal_px and focal_px:
            d = d * np.float32(focal_px * self._fit(rgb.shape[:2])[0] / self.spec.focal_px)
        return d, conf

    def _depth_once(self, rgb):
        named, _, content, in_h, _ = self._run(rgb)
        out = np.asarray(named['main'], np.float32)
        d = self._dense_back(out.reshape(out.shape[-2:]), content, in_h, rgb.shape[:2])
        if self.spec.kind == 'inverse_relative':
            d = np.where(d > 1e-6, 1.0 / np.maximum(d, 1e-6), np.nan)
        return np.where(np.isfinite(d) & (d > 0), d, np.nan).astype(np.float32)

    def detection(self, rgb, lut: np.ndarray):
        """(boxes [N, 4] x1 y1 x2 y2 in image pixels, scores [N], our class ids [N])."""
        named, (sx, sy), _, _, xshape = self._run(rgb)
        boxes = np.asarray(named['boxes'], np.float32).reshape(-1, 4)
        scores = np.asarray(named['scores'], np.float32).reshape(-1)
        classes = np.asarray(named['classes']).reshape(-1).astype(np.int64)
        if not len(boxes) == len(scores) == len(classes):
            raise TeacherError(f'{self.spec.path}: {len(boxes)} boxes, {len(scores)} scores, {len(classes)} classes')
        if self.spec.box_format == 'cxcywh':
            boxes = np.stack([boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2,
                              boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2], axis=1)
        if self.spec.normalized:
            in_h, in_w = (xshape[1], xshape[2]) if self.spec.layout == 'NHWC' else (xshape[2], xshape[3])
            boxes = boxes * np.array([in_w, in_h, in_w, in_h], np.float32)
        boxes = boxes / np.array([sx, sy, sx, sy], np.float32)
        h, w = rgb.shape[:2]
        boxes = np.clip(boxes, 0, [w, h, w, h])
        ok = (classes >= 0) & (classes < len(lut))
        ours = np.where(ok, lut[np.clip(classes, 0, len(lut) - 1)], -1)
        keep = (scores >= self.spec.score_threshold) & (ours >= 0) & (boxes[:, 2] - boxes[:, 0] >= 1) & \
            (boxes[:, 3] - boxes[:, 1] >= 1)
        return boxes[keep], scores[keep], ours[keep]
