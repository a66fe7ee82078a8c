"""A training sample and what is done to it on its way to the network, augmentation aside: the
sample type, zoom (a longer lens), letterbox padding, the crop's intrinsics, sparse-depth resizing
and the tensors the collate stacks."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from hydranet_ros.model.detection_head import STRIDE
from hydranet_ros.training.targets import detection_targets
from hydranet_ros.world.classes import IGNORE


#: the images of a sample (the next frame is optional), augmented alike
IMAGE_KEYS = ('image', 'prev_image', 'next_image')


class Sample(dict):
    """One training pair (previous frame, frame) as numpy arrays; missing labels are None."""


def to_tensors(sample: Sample, num_classes_det: int, mean, std, flip: bool = False) -> dict:
    """numpy sample -> dict of tensors with has_* flags (what the collate stacks)."""
    img, prev = sample['image'], sample['prev_image']
    h, w = img.shape[:2]
    seg, depth, flow = sample.get('segmentation'), sample.get('depth'), sample.get('flow')
    boxes, classes = sample.get('boxes'), sample.get('classes')
    ignore = sample.get('ignore_boxes')
    seg_w, depth_w, box_w = sample.get('segmentation_weight'), sample.get('depth_weight'), sample.get('box_weights')
    k = sample.get('intrinsics')
    pose, nxt, next_pose = sample.get('relative_pose'), sample.get('next_image'), sample.get('next_relative_pose')
    if flip:
        if k is not None:   # a mirrored image's principal point mirrors too
            k = np.array(k, np.float64)
            k[0, 2] = w - 1 - k[0, 2]
        mirror = np.diag([-1.0, 1.0, 1.0, 1.0])     # and the camera's motions mirror in x
        pose = None if pose is None else mirror @ np.asarray(pose, np.float64) @ mirror
        next_pose = None if next_pose is None else mirror @ np.asarray(next_pose, np.float64) @ mirror
        nxt = None if nxt is None else nxt[:, ::-1]
        img, prev = img[:, ::-1], prev[:, ::-1]
        seg = None if seg is None else seg[:, ::-1]
        depth = None if depth is None else depth[:, ::-1]
        seg_w = None if seg_w is None else seg_w[:, ::-1]
        depth_w = None if depth_w is None else depth_w[:, ::-1]
        if flow is not None:
            flow = flow[:, ::-1].copy()
            flow[..., 0] *= -1
        if boxes is not None:
            boxes = boxes.copy()
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
        if ignore is not None:
            ignore = ignore.copy()
            ignore[:, [0, 2]] = w - ignore[:, [2, 0]]
    mean_t = np.asarray(mean, np.float32) * 255
    std_t = np.asarray(std, np.float32) * 255

    def norm(x):
        return torch.from_numpy(((np.ascontiguousarray(x, np.float32) - mean_t) / std_t).transpose(2, 0, 1))
    out = {'image': norm(img), 'prev_image': norm(prev),
           'has_segmentation': torch.tensor(seg is not None), 'has_depth': torch.tensor(depth is not None),
           'has_flow': torch.tensor(flow is not None and bool(sample.get('flow_valid', True))),
           'has_detection': torch.tensor(boxes is not None)}
    out['segmentation'] = torch.from_numpy(np.ascontiguousarray(seg, np.int64)) if seg is not None else \
        torch.full((h, w), IGNORE, dtype=torch.int64)
    out['depth'] = torch.from_numpy(np.ascontiguousarray(depth, np.float32)) if depth is not None else \
        torch.full((h, w), float('nan'))
    out['flow'] = torch.from_numpy(np.ascontiguousarray(flow, np.float32).transpose(2, 0, 1)) if flow is not None \
        else torch.full((2, h, w), float('nan'))
    oh, ow = (h + STRIDE - 1) // STRIDE, (w + STRIDE - 1) // STRIDE
    heat, size, offset, mask = detection_targets(
        boxes if boxes is not None else np.zeros((0, 4)), classes if classes is not None else np.zeros(0),
        num_classes_det, oh, ow)
    out.update(det_heat=torch.from_numpy(heat), det_size=torch.from_numpy(size),
               det_offset=torch.from_numpy(offset), det_mask=torch.from_numpy(mask),
               det_ignore=torch.from_numpy(ignore_cells(ignore, oh, ow)))
    # Confidence of pseudo-labels (1 for real labels): weights of each pixel and box in the losses.
    out['seg_weight'] = torch.ones((h, w)) if seg_w is None else \
        torch.from_numpy(np.ascontiguousarray(seg_w, np.float32))
    out['depth_weight'] = torch.ones((h, w)) if depth_w is None else \
        torch.from_numpy(np.ascontiguousarray(depth_w, np.float32))
    out['det_weight'] = torch.from_numpy(box_weight_cells(boxes, box_w, oh, ow))
    # Camera intrinsics at this image's pixels (self-supervised losses); identity when unknown.
    out['intrinsics'] = torch.eye(3) if k is None else torch.tensor(np.asarray(k, np.float32))
    out['has_intrinsics'] = torch.tensor(k is not None)
    # Camera motion from odometry, this frame's camera -> the previous frame's (4x4); identity when unknown.
    out['pose'] = torch.eye(4) if pose is None else torch.tensor(np.asarray(pose, np.float32))
    out['has_pose'] = torch.tensor(pose is not None)
    # The next frame, a second source for the photometric terms (this camera -> the next one's motion)
    out['next_image'] = norm(nxt) if nxt is not None else out['prev_image'].clone()
    out['has_next'] = torch.tensor(nxt is not None)
    out['next_pose'] = torch.eye(4) if next_pose is None else torch.tensor(np.asarray(next_pose, np.float32))
    out['has_next_pose'] = torch.tensor(next_pose is not None)
    return out


def box_weight_cells(boxes, weights, out_h: int, out_w: int) -> np.ndarray:
    """[h, w] weight of each detection cell: a box's weight (its pseudo-label score) at its
    centre cell, 1 elsewhere (real boxes and negatives count fully)."""
    out = np.ones((out_h, out_w), np.float32)
    if boxes is None or weights is None:
        return out
    for (x1, y1, x2, y2), wt in zip(np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(weights).reshape(-1)):
        ix, iy = int((x1 + x2) / 2 / STRIDE), int((y1 + y2) / 2 / STRIDE)
        if 0 <= ix < out_w and 0 <= iy < out_h and x2 > x1 and y2 > y1:
            out[iy, ix] = min(out[iy, ix], float(wt))
    return out


def ignore_cells(boxes, out_h: int, out_w: int) -> np.ndarray:
    """[h, w] float32, 1 at detection cells whose centre lies in an ignore box (DontCare, a class
    the model lacks): the heatmap loss neither rewards nor punishes detections there."""
    out = np.zeros((out_h, out_w), np.float32)
    if boxes is None:
        return out
    for x1, y1, x2, y2 in np.asarray(boxes, np.float64).reshape(-1, 4):
        c0, c1 = int(np.ceil(x1 / STRIDE - 0.5)), int(np.floor(x2 / STRIDE - 0.5))
        r0, r1 = int(np.ceil(y1 / STRIDE - 0.5)), int(np.floor(y2 / STRIDE - 0.5))
        out[max(r0, 0):max(r1 + 1, 0), max(c0, 0):max(c1 + 1, 0)] = 1.0
    return out


def crop_intrinsics(k, x0: float, y0: float, sx: float, sy: float) -> np.ndarray:
    """Intrinsics after cropping at (x0, y0) and scaling by (sx, sy) (pixel centres kept)."""
    k = np.asarray(k, np.float64)
    out = np.eye(3)
    out[0, 0], out[1, 1] = k[0, 0] * sx, k[1, 1] * sy
    out[0, 2], out[1, 2] = (k[0, 2] - x0 + 0.5) * sx - 0.5, (k[1, 2] - y0 + 0.5) * sy - 0.5
    return out


def zoom_sample(sample: Sample, zoom: float) -> Sample:
    """The sample as a lens `zoom` times longer would have seen it: the centre 1/zoom of every
    image and label, scaled back to full size. Depth labels are divided by zoom: the network
    learns depth for the training focal length, under which a zoomed-in object looks that much
    nearer; the Predictor multiplies by the actual focal ratio at run time (docs/MODEL.md), so
    training over a range of zooms keeps the network from memorising one camera."""
    if zoom == 1.0:
        return sample
    h, w = sample['image'].shape[:2]
    ch, cw = max(1, int(round(h / zoom))), max(1, int(round(w / zoom)))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    sx, sy = w / cw, h / ch
    out = Sample(sample)

    def crop(a):
        return a[y0:y0 + ch, x0:x0 + cw]
    for key in IMAGE_KEYS:
        if sample.get(key) is not None:
            out[key] = cv2.resize(crop(sample[key]), (w, h), interpolation=cv2.INTER_LINEAR)
    if sample.get('segmentation') is not None:
        out['segmentation'] = cv2.resize(crop(sample['segmentation']), (w, h), interpolation=cv2.INTER_NEAREST)
    for key in ('segmentation_weight', 'depth_weight'):
        if sample.get(key) is not None:
            out[key] = cv2.resize(np.ascontiguousarray(crop(sample[key]), np.float32), (w, h),
                                  interpolation=cv2.INTER_NEAREST)
    if sample.get('intrinsics') is not None:
        out['intrinsics'] = crop_intrinsics(sample['intrinsics'], x0, y0, sx, sy)
    if sample.get('depth') is not None:
        out['depth'] = resize_sparse_depth(np.asarray(crop(sample['depth']), np.float32), (h, w)) / np.float32(zoom)
    if sample.get('flow') is not None:
        flow = cv2.resize(np.ascontiguousarray(crop(sample['flow']), np.float32), (w, h),
                          interpolation=cv2.INTER_NEAREST)
        flow[..., 0] *= sx
        flow[..., 1] *= sy
        out['flow'] = flow
    for key in ('boxes', 'ignore_boxes'):
        if sample.get(key) is None:
            continue
        boxes = (np.asarray(sample[key], np.float32).reshape(-1, 4) - [x0, y0, x0, y0]) * [sx, sy, sx, sy]
        boxes = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
        keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        out[key] = boxes[keep]
        if key == 'boxes' and sample.get('classes') is not None:
            out['classes'] = np.asarray(sample['classes'])[keep]
        if key == 'boxes' and sample.get('box_weights') is not None:
            out['box_weights'] = np.asarray(sample['box_weights'])[keep]
    return out


def letterbox_content(camera: str, input_size) -> tuple:
    """(h, w) a camera preset's image takes inside input_size when letterboxed as the Predictor does."""
    from hydranet_ros.inference.letterbox import Letterbox
    from hydranet_ros.world.camera import PinholeCamera
    cam = PinholeCamera.preset(camera)
    return Letterbox.fit((cam.height, cam.width), input_size).content_size


def pad_tensors(item: dict, input_size) -> dict:
    """A to_tensors() item of the letterboxed content, padded at the right and bottom to
    input_size as the Predictor pads: zero image (the mean colour), no labels, no objects."""
    big_h, big_w = int(input_size[0]), int(input_size[1])
    h, w = item['image'].shape[-2:]
    if (h, w) == (big_h, big_w):
        return item
    fills = {'image': 0.0, 'prev_image': 0.0, 'next_image': 0.0, 'segmentation': IGNORE, 'depth': float('nan'),
             'flow': float('nan'), 'seg_weight': 1.0, 'depth_weight': 1.0}   # padding has no labels anyway
    out = dict(item)
    for key, fill in fills.items():
        t = item[key]
        padded = torch.full((*t.shape[:-2], big_h, big_w), fill, dtype=t.dtype)
        padded[..., :h, :w] = t
        out[key] = padded
    oh, ow = (big_h + STRIDE - 1) // STRIDE, (big_w + STRIDE - 1) // STRIDE
    for key in ('det_heat', 'det_size', 'det_offset', 'det_mask', 'det_ignore', 'det_weight'):
        t = item[key]
        padded = (torch.ones if key == 'det_weight' else torch.zeros)((*t.shape[:-2], oh, ow), dtype=t.dtype)
        padded[..., :t.shape[-2], :t.shape[-1]] = t
        out[key] = padded
    return out


def resize_sparse_depth(depth: np.ndarray, size) -> np.ndarray:
    """Depth [H, W] (NaN = none) onto an (h, w) grid point by point: each valid pixel lands in the
    cell its centre falls in, the nearest depth wins. Keeps sparse LiDAR depth sparse and exact
    where interpolation would invent depths between points."""
    h, w = size
    H, W = depth.shape
    rows, cols = np.nonzero(np.isfinite(depth) & (depth > 0))
    d = depth[rows, cols]
    r = np.minimum(((rows + 0.5) * h / H).astype(np.int64), h - 1)
    c = np.minimum(((cols + 0.5) * w / W).astype(np.int64), w - 1)
    order = np.argsort(-d)
    out = np.full((h, w), np.nan, np.float32)
    out[r[order], c[order]] = d[order]
    return out
