"""Per-task losses; every one masks what a sample does not label (asymmetric annotations)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from hydranet_ros import IGNORE


def segmentation_loss(logits, target, has, weight=None):
    """Cross-entropy with ignore index; samples without labels contribute nothing. weight
    [B, H, W] (pseudo-label confidence, 1 for real labels) scales each pixel's term; the mean
    stays over labelled pixels, so unsure labels teach less."""
    target = target.clone()
    target[~has] = IGNORE
    valid = target != IGNORE
    if not valid.any():
        return logits.sum() * 0.0
    if weight is None:
        return F.cross_entropy(logits, target, ignore_index=IGNORE)
    ce = F.cross_entropy(logits, target, ignore_index=IGNORE, reduction='none')
    return (ce * weight)[valid].sum() / valid.sum()


def depth_loss(pred, target, has, depth_min: float, depth_max: float, lam: float = 0.85, weight=None):
    """Scale-invariant log error (Eigen et al. 2014) with lambda < 1, so absolute scale still
    counts (metric depth): sqrt(mean d^2 - lam * mean(d)^2), d = log pred - log gt, over valid
    pixels (finite ground truth within the model's range) of labelled samples. weight [B, H, W]
    (pseudo-label confidence): weighted means, and the term scaled by the mean weight."""
    pred = pred[:, 0] if pred.dim() == 4 else pred
    valid = torch.isfinite(target) & (target >= depth_min) & (target <= depth_max) & has.view(-1, 1, 1)
    if weight is not None:
        valid = valid & (weight > 0)
    if not valid.any():
        return pred.sum() * 0.0
    d = torch.log(pred[valid]) - torch.log(target[valid])
    if weight is None:
        return torch.sqrt(torch.clamp((d ** 2).mean() - lam * d.mean() ** 2, min=1e-8)) * 10.0
    w = weight[valid]
    m2, m1 = (w * d ** 2).sum() / w.sum(), (w * d).sum() / w.sum()
    return torch.sqrt(torch.clamp(m2 - lam * m1 ** 2, min=1e-8)) * 10.0 * w.mean()


def flow_loss(pred, target, has):
    """Mean end-point error (pixels) over valid pixels of labelled samples."""
    valid = torch.isfinite(target).all(dim=1) & has.view(-1, 1, 1)
    if not valid.any():
        return pred.sum() * 0.0
    diff = pred - torch.nan_to_num(target)
    return torch.linalg.vector_norm(diff, dim=1)[valid].mean()


def focal_heatmap_loss(pred, target, alpha: float = 2.0, beta: float = 4.0, ignore=None, weight=None):
    """CenterNet's penalty-reduced focal loss, normalised by the number of object centres.
    ignore [B, h, w]: 1 where negatives do not count (DontCare and unmapped-class regions).
    weight [B, h, w]: how much each centre counts (a pseudo-label box's score)."""
    pred = pred.clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    if weight is not None:
        pos = pos * weight.unsqueeze(1)
    neg = 1 - pos
    if ignore is not None:
        neg = neg * (1 - ignore.unsqueeze(1))
    pos_loss = torch.log(pred) * (1 - pred) ** alpha * pos
    neg_loss = torch.log(1 - pred) * pred ** alpha * (1 - target) ** beta * neg
    num_pos = target.eq(1).float().sum()
    return -(pos_loss.sum() + neg_loss.sum()) / torch.clamp(num_pos, min=1.0)


def detection_loss(maps, heat, size, offset, mask, has, num_classes: int,
                   size_weight: float = 0.1, offset_weight: float = 1.0, ignore=None, weight=None):
    """Focal loss on the heatmap + L1 on size (pixels) and offset (cells) at object centres;
    ignore [B, h, w] marks cells left out of the heatmap's negatives; weight [B, h, w] scales
    each centre's terms (pseudo-label scores; 1 for real boxes)."""
    if not has.any():
        return maps.sum() * 0.0
    maps, heat, size, offset, mask = maps[has], heat[has], size[has], offset[has], mask[has]
    ignore = ignore[has] if ignore is not None else None
    weight = weight[has] if weight is not None else None
    if weight is not None:
        n_centres = torch.clamp(mask.sum(), min=1.0)
        mask = mask * weight
        n = n_centres
    else:
        n = None
    pred_heat = maps[:, :num_classes]
    pred_size = maps[:, num_classes:num_classes + 2]
    pred_off = maps[:, num_classes + 2:num_classes + 4]
    m = mask.unsqueeze(1)
    n = torch.clamp(mask.sum(), min=1.0) if n is None else n
    l_size = (torch.abs(pred_size - size) * m).sum() / n
    l_off = (torch.abs(pred_off - offset) * m).sum() / n
    return focal_heatmap_loss(pred_heat, heat, ignore=ignore, weight=weight) + size_weight * l_size + \
        offset_weight * l_off


def depth_uncertainty_loss(scale, depth, target, has, depth_min: float, depth_max: float):
    """Laplace negative log-likelihood of the depth head's own error (depth detached): mean over
    valid pixels (as depth_loss) of |target - depth| / scale + log scale (+ log 2, left out)."""
    scale = scale[:, 0] if scale.dim() == 4 else scale
    depth = (depth[:, 0] if depth.dim() == 4 else depth).detach()
    valid = torch.isfinite(target) & (target >= depth_min) & (target <= depth_max) & has.view(-1, 1, 1)
    if not valid.any():
        return scale.sum() * 0.0
    s = scale[valid]
    return ((target[valid] - depth[valid]).abs() / s + torch.log(s)).mean()
