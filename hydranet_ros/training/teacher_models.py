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
from hydranet_ros.training.teacher_boxes import YOLOX_STRIDES, decode_yolox, merge_tiles, nms, tile_windows


TASKS = ('segmentation', 'depth', 'detection')
DEPTH_KINDS = ('metric', 'relative', 'inverse_relative')
SEGMENTATION_KINDS = ('logits', 'probabilities', 'classes')
DECODERS = ('', 'yolox')
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
    output_layout: str = 'NCHW'                   # a dense output's layout: NCHW ([1, C, h, w]) or NHWC
    pad: float | None = None                      # letterbox padding, input pixel units; None: the mean colour
    decode: str = ''                              # detection: '' (boxes, scores, classes) or 'yolox' (raw head)
    strides: tuple = YOLOX_STRIDES
    nms_iou: float = 0.45
    tiles: tuple | None = None                    # (rows, cols, overlap, whole frame too)

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
        decode = str(d.get('decode', '') or '')
        if decode not in DECODERS or (decode and task != 'detection'):
            raise TeacherError(f"{yaml_path}: decode is for detection teachers, one of {list(DECODERS)}; "
                               f"got {decode!r}")
        outputs = _outputs(task, decode, outputs, out, yaml_path)
        kind = 'boxes' if task == 'detection' else \
            str(out.get('kind', 'logits' if task == 'segmentation' else 'metric'))
        if task == 'segmentation' and kind not in SEGMENTATION_KINDS:
            raise TeacherError(f'{yaml_path}: output.kind must be one of {list(SEGMENTATION_KINDS)}, got {kind!r}')
        output_layout = str(out.get('layout', 'NCHW')).upper()
        if output_layout not in ('NCHW', 'NHWC'):
            raise TeacherError(f'{yaml_path}: output.layout must be NCHW or NHWC, got {output_layout!r}')
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
                   flip_confidence=bool(d.get('flip_confidence', True)), focal_px=focal_px,
                   output_layout=output_layout, pad=None if inp.get('pad') is None else float(inp['pad']),
                   decode=decode, strides=tuple(int(v) for v in d.get('strides', YOLOX_STRIDES)),
                   nms_iou=float(d.get('nms_iou', 0.45)), tiles=_tiles(d.get('tiles'), task, yaml_path))

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


def _outputs(task: str, decode: str, outputs: dict, out: dict, yaml_path) -> dict:
    """role -> output name (None: the graph's first output) for a teacher's task and decoding."""
    if task != 'detection':
        return {'main': out.get('name')}
    if decode == 'yolox':
        return {'raw': outputs.get('raw') or out.get('name')}
    missing = [k for k in ('boxes', 'scores', 'classes') if not outputs.get(k)]
    if missing:
        raise TeacherError(f'{yaml_path}: a detection teacher needs outputs.{{boxes, scores, classes}} (or '
                           f'decode: yolox and its raw output): missing {missing}')
    return outputs


def _tiles(d, task: str, yaml_path) -> tuple | None:
    """tiles: {rows, cols, overlap (0.2), whole (true): the whole frame run too} -> a tuple, checked."""
    if not d:
        return None
    if task == 'depth' or not isinstance(d, dict):
        raise TeacherError(f'{yaml_path}: tiles ({{rows, cols, overlap, whole}}) are for segmentation and '
                           f'detection teachers')
    try:
        rows, cols, overlap = int(d.get('rows', 1)), int(d.get('cols', 2)), float(d.get('overlap', 0.2))
        tile_windows(64, 64, rows, cols, overlap)
    except (TypeError, ValueError) as exc:
        raise TeacherError(f'{yaml_path}: {exc}') from exc
    return rows, cols, overlap, bool(d.get('whole', True))


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
        if not names:
            raise TeacherError(f'{spec.path}: the graph takes no input (an image is what a teacher is given)')
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
        if s.pad is not None:                           # or the colour the teacher was trained with
            x[:] = (np.float32(s.pad) / np.float32(s.scale) - np.asarray(s.mean, np.float32)) / np.asarray(s.std,
                                                                                                        np.float32)
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

    def _tiled(self, rgb, run):
        """run(image) -> [h, w, C] map, averaged over the tiles (and the whole frame) that cover a pixel."""
        rows, cols, overlap, whole = self.spec.tiles
        h, w = rgb.shape[:2]
        windows = tile_windows(h, w, rows, cols, overlap) + ([(0, 0, w, h)] if whole else [])
        total = count = None
        for x0, y0, x1, y1 in windows:
            part = run(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
            if total is None:
                total, count = np.zeros((h, w, part.shape[2]), np.float32), np.zeros((h, w, 1), np.float32)
            total[y0:y1, x0:x1] += part
            count[y0:y1, x0:x1] += 1
        return total / np.maximum(count, 1)

    def _class_probabilities(self, rgb, lut: np.ndarray) -> np.ndarray:
        """[h, w, our classes] the teacher's probability of each of our classes (the rest of the mass:
        classes that map to none of ours) at the image's pixels."""
        named, _, content, in_h, _ = self._run(rgb)
        out = np.asarray(named['main'])
        h, w = rgb.shape[:2]
        n_ours = int(lut.max()) + 1
        if self.spec.kind == 'classes':
            ids = out.reshape(out.shape[-2:]).astype(np.int32)
            ids = self._dense_back(ids, content, in_h, (h, w), nearest=True).astype(np.int64)
            mapped = np.where((ids >= 0) & (ids < len(lut)), lut[np.clip(ids, 0, len(lut) - 1)], -1)
            return (mapped[..., None] == np.arange(n_ours)).astype(np.float32)
        maps = out.reshape(out.shape[-3:]).astype(np.float32)
        maps = maps.transpose(2, 0, 1) if self.spec.output_layout == 'NHWC' else maps   # [C, h, w]
        if maps.shape[0] != len(lut):
            raise TeacherError(f'{self.spec.path}: {maps.shape[0]} output channels, {len(lut)} classes named')
        if self.spec.kind == 'logits':
            e = np.exp(maps - maps.max(axis=0, keepdims=True))
            prob = e / e.sum(axis=0, keepdims=True)
        else:
            prob = np.clip(maps, 0, None) / np.maximum(maps.clip(0, None).sum(axis=0, keepdims=True), 1e-6)
        ours = np.zeros((n_ours, *prob.shape[1:]), np.float32)
        for t, o in enumerate(lut):
            if o >= 0:
                ours[o] += prob[t]
        return self._dense_back(ours.transpose(1, 2, 0), content, in_h, (h, w)).reshape(h, w, -1)

    def segmentation(self, rgb, lut: np.ndarray):
        """(class ids in our classes, 255 where the teacher's class maps to none; confidence)."""
        run = functools.partial(self._class_probabilities, lut=lut)
        ours = self._tiled(rgb, run) if self.spec.tiles else run(rgb)
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
        """(boxes [N, 4] x1 y1 x2 y2 in image pixels, scores [N], our class ids [N]); with tiles, each
        tile's boxes (and the whole frame's) merged across the seams (teacher_boxes.merge_tiles)."""
        if not self.spec.tiles:
            return self._detect(rgb, lut)
        rows, cols, overlap, whole = self.spec.tiles
        h, w = rgb.shape[:2]
        parts = [(None, *self._detect(rgb, lut))] if whole else []
        for x0, y0, x1, y1 in tile_windows(h, w, rows, cols, overlap):
            b, s, c = self._detect(np.ascontiguousarray(rgb[y0:y1, x0:x1]), lut)
            parts.append(((x0, y0, x1, y1), b + np.array([x0, y0, x0, y0], np.float32), s, c))
        return merge_tiles(parts, (h, w), self.spec.nms_iou)

    def _raw_boxes(self, named, xshape):
        """(boxes in network input pixels, scores, the teacher's class ids) of one run."""
        in_h, in_w = (xshape[1], xshape[2]) if self.spec.layout == 'NHWC' else (xshape[2], xshape[3])
        if self.spec.decode == 'yolox':
            try:
                boxes, scores, classes = decode_yolox(named['raw'], (in_h, in_w), self.spec.strides)
            except ValueError as exc:
                raise TeacherError(f'{self.spec.path}: {exc}') from exc
            sure = scores >= self.spec.score_threshold
            boxes, scores, classes = boxes[sure], scores[sure], classes[sure]
            keep = nms(boxes, scores, classes, self.spec.nms_iou)
            return boxes[keep], scores[keep], classes[keep]
        boxes = np.asarray(named['boxes'], np.float32).reshape(-1, 4)
        scores = np.asarray(named['scores'], np.float32).reshape(-1)
        classes = np.asarray(named['classes']).reshape(-1).astype(np.int64)
        if not len(boxes) == len(scores) == len(classes):
            raise TeacherError(f'{self.spec.path}: {len(boxes)} boxes, {len(scores)} scores, {len(classes)} classes')
        if self.spec.box_format == 'cxcywh':
            boxes = np.stack([boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 1] - boxes[:, 3] / 2,
                              boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2], axis=1)
        if self.spec.normalized:
            boxes = boxes * np.array([in_w, in_h, in_w, in_h], np.float32)
        return boxes, scores, classes

    def _detect(self, rgb, lut: np.ndarray):
        named, (sx, sy), _, _, xshape = self._run(rgb)
        boxes, scores, classes = self._raw_boxes(named, xshape)
        boxes = boxes / np.array([sx, sy, sx, sy], np.float32)
        h, w = rgb.shape[:2]
        boxes = np.clip(boxes, 0, [w, h, w, h])
        ok = (classes >= 0) & (classes < len(lut))
        ours = np.where(ok, lut[np.clip(classes, 0, len(lut) - 1)], -1)
        keep = (scores >= self.spec.score_threshold) & (ours >= 0) & (boxes[:, 2] - boxes[:, 0] >= 1) & \
            (boxes[:, 3] - boxes[:, 1] >= 1)
        return boxes[keep], scores[keep], ours[keep]
