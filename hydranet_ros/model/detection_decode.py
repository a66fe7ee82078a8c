"""Decoding center heatmaps into boxes: max-pool peak finding, top-K, no torchvision ops."""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hydranet_ros.model.detection_head import STRIDE


@dataclass
class DecodedDetections:
    """Top-K candidates per image, best first. Boxes are x1, y1, x2, y2 in input pixels."""

    boxes: torch.Tensor    # [B, K, 4] float
    scores: torch.Tensor   # [B, K] float, center-heatmap probability
    classes: torch.Tensor  # [B, K] int64


def decode_detections(maps: torch.Tensor, num_classes: int, top_k: int = 100,
                      peak_kernel: int = 3) -> DecodedDetections:
    """maps: [B, num_classes + 4, h, w] from DetectionHead (stride 4)."""
    if maps.dim() != 4 or maps.shape[1] != num_classes + 4:
        raise ValueError(f'expected detection maps [B, {num_classes + 4}, h, w], got {tuple(maps.shape)}')
    b, _, h, w = maps.shape
    heat = maps[:, :num_classes]
    size = maps[:, num_classes:num_classes + 2]
    offset = maps[:, num_classes + 2:num_classes + 4]
    # A peak is a location equal to the max of its neighbourhood: suppression without NMS.
    pooled = F.max_pool2d(heat, peak_kernel, stride=1, padding=peak_kernel // 2)
    peaks = heat * (pooled == heat).to(heat.dtype)
    k = min(top_k, num_classes * h * w)
    scores, index = torch.topk(peaks.reshape(b, -1), k, dim=1)
    classes = torch.div(index, h * w, rounding_mode='floor')
    cell = index - classes * (h * w)
    ys = torch.div(cell, w, rounding_mode='floor')
    xs = cell - ys * w
    size_flat = size.reshape(b, 2, h * w)
    off_flat = offset.reshape(b, 2, h * w)
    gather = cell.unsqueeze(1).expand(b, 2, k)
    wh = torch.gather(size_flat, 2, gather)      # [B, 2, K], input pixels
    off = torch.gather(off_flat, 2, gather)      # [B, 2, K], cells
    cx = (xs.to(maps.dtype) + off[:, 0]) * STRIDE
    cy = (ys.to(maps.dtype) + off[:, 1]) * STRIDE
    boxes = torch.stack([cx - wh[:, 0] / 2, cy - wh[:, 1] / 2,
                         cx + wh[:, 0] / 2, cy + wh[:, 1] / 2], dim=2)
    return DecodedDetections(boxes=boxes, scores=scores, classes=classes)
