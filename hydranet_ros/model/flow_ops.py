"""Tensor operations for optical flow: local correlation and vector-aware resizing."""
import torch
import torch.nn.functional as F


def local_correlation(current: torch.Tensor, previous: torch.Tensor, radius: int) -> torch.Tensor:
    """Cost volume: for each displacement (dy, dx) in [-r, r]^2, the channel mean of
    current(p) * previous(p + d). Returns [B, (2r+1)^2, H, W], displacement-major (dy, then dx).
    Positions outside the previous frame correlate with zeros.
    """
    if current.shape != previous.shape:
        raise ValueError(f'feature shapes differ: {tuple(current.shape)} vs {tuple(previous.shape)}')
    h, w = current.shape[-2:]
    padded = F.pad(previous, (radius, radius, radius, radius))
    size = 2 * radius + 1
    costs = []
    for dy in range(size):
        for dx in range(size):
            shifted = padded[:, :, dy:dy + h, dx:dx + w]
            costs.append((current * shifted).mean(dim=1, keepdim=True))
    return torch.cat(costs, dim=1)


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a [B, 2, H, W] flow field (u, v in pixels of its own grid) to size (h, w),
    scaling u by w/W and v by h/H so the vectors stay in pixels of the new grid."""
    h_old, w_old = flow.shape[-2:]
    h_new, w_new = int(size[0]), int(size[1])
    if (h_old, w_old) == (h_new, w_new):
        return flow
    resized = F.interpolate(flow, size=(h_new, w_new), mode='bilinear', align_corners=False)
    scale = torch.tensor([w_new / w_old, h_new / h_old], dtype=flow.dtype, device=flow.device)
    return resized * scale.view(1, 2, 1, 1)


def warp_previous(previous: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample previous [B, C, H, W] where each pixel p of the current frame came from, p - flow(p)
    (flow [B, 2, H, W] in pixels of this grid, previous -> current). Bilinear; zeros outside."""
    if flow.shape[-2:] != previous.shape[-2:]:
        raise ValueError(f'flow grid {tuple(flow.shape[-2:])} differs from features {tuple(previous.shape[-2:])}')
    b, _, h, w = flow.shape
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(1, h, 1)
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w)
    x = xs - flow[:, 0]
    y = ys - flow[:, 1]
    # align_corners=True: -1 and 1 are the centres of the first and last pixels
    gx = 2 * x / max(w - 1, 1) - 1
    gy = 2 * y / max(h - 1, 1) - 1
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(previous, grid, mode='bilinear', padding_mode='zeros', align_corners=True)
