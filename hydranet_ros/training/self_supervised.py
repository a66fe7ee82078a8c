"""Self-supervision from video: photometric losses for depth (with camera motion) and flow.

The building blocks of the Monodepth2 / SfMLearner / UnFlow line of work, in torch:

- back-projection and projection with intrinsics K (pixels of the image the loss sees) and a
  4x4 rigid transform from the target camera to a source camera;
- warping a source frame into the target by depth + camera motion, or by flow (our flow runs
  previous -> this frame: the pixel p of this frame came from p - flow(p));
- the photometric error: 0.85 * (1 - SSIM) / 2 + 0.15 * L1 over a 3x3 window;
- the per-pixel minimum over source frames, and auto-masking of pixels that are better
  explained by not moving at all (static scenes, objects moving with the camera);
- the edge-aware smoothness of mean-normalised inverse depth (or flow);
- forward-backward consistency of flow, which marks occluded pixels (UnFlow);
- a small pose head on the shared encoder's stride-32 features of two frames (axis-angle and
  translation, scaled by 0.01 as in Monodepth2).

Nothing here needs labels. Metric scale must come from elsewhere (docs/MODEL.md): a known camera
height over a flat road (training.depth_scale.scale_from_camera_height), odometry, or sparse
metric depth.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def backproject(depth: torch.Tensor, k_inv: torch.Tensor) -> torch.Tensor:
    """depth [B, 1, H, W] and inverse intrinsics [B, 3, 3] -> camera points [B, 3, H*W]."""
    b, _, h, w = depth.shape
    v, u = torch.meshgrid(torch.arange(h, dtype=depth.dtype, device=depth.device),
                          torch.arange(w, dtype=depth.dtype, device=depth.device), indexing='ij')
    pix = torch.stack([u.reshape(-1), v.reshape(-1), torch.ones(h * w, dtype=depth.dtype, device=depth.device)])
    rays = k_inv @ pix.unsqueeze(0).expand(b, 3, h * w)
    return rays * depth.reshape(b, 1, h * w)


def project(points: torch.Tensor, k: torch.Tensor, t: torch.Tensor, h: int, w: int, eps: float = 1e-6):
    """Camera points [B, 3, N] moved by t [B, 4, 4] and projected with k [B, 3, 3] ->
    (pixel coordinates [B, H, W, 2], depth in the new camera [B, 1, H, W])."""
    b = points.shape[0]
    moved = t[:, :3, :3] @ points + t[:, :3, 3:]
    z = moved[:, 2:3]
    uv = (k @ moved)[:, :2] / z.clamp(min=eps)
    return uv.reshape(b, 2, h, w).permute(0, 2, 3, 1), z.reshape(b, 1, h, w)


def sample(image: torch.Tensor, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear samples of image [B, C, H, W] at pixel coordinates [B, H', W', 2] (x, y), and a
    mask [B, 1, H', W'] of the samples that fell inside the image."""
    h, w = image.shape[-2:]
    grid = torch.stack([2 * pixels[..., 0] / max(w - 1, 1) - 1, 2 * pixels[..., 1] / max(h - 1, 1) - 1], dim=-1)
    out = F.grid_sample(image, grid, mode='bilinear', padding_mode='border', align_corners=True)
    inside = (grid.abs() <= 1).all(dim=-1, keepdim=True).permute(0, 3, 1, 2).to(image.dtype)
    return out, inside


def warp_by_depth(source: torch.Tensor, depth: torch.Tensor, k: torch.Tensor, t_target_to_source: torch.Tensor):
    """The source frame seen from the target camera: each target pixel back-projected with its
    depth, moved into the source camera, sampled there. (warped [B, C, H, W], valid [B, 1, H, W])."""
    h, w = depth.shape[-2:]
    pixels, z = project(backproject(depth, torch.linalg.inv(k)), k, t_target_to_source, h, w)
    warped, inside = sample(source, pixels)
    return warped, inside * (z > 1e-3).to(source.dtype)


def rigid_flow(depth: torch.Tensor, k: torch.Tensor, t_target_to_source: torch.Tensor) -> torch.Tensor:
    """The optical flow (previous -> this, [B, 2, H, W]) a static scene would have: each pixel p
    of this frame back-projected with its depth, moved into the previous camera and projected,
    came from there: flow(p) = p - that pixel."""
    h, w = depth.shape[-2:]
    pixels, _ = project(backproject(depth, torch.linalg.inv(k)), k, t_target_to_source, h, w)
    v, u = torch.meshgrid(torch.arange(h, dtype=depth.dtype, device=depth.device),
                          torch.arange(w, dtype=depth.dtype, device=depth.device), indexing='ij')
    return torch.stack([u - pixels[..., 0], v - pixels[..., 1]], dim=1)


def warp_by_flow(source: torch.Tensor, flow: torch.Tensor):
    """The previous frame moved by flow [B, 2, H, W] (previous -> this): sampled at p - flow(p)."""
    h, w = flow.shape[-2:]
    v, u = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device),
                          torch.arange(w, dtype=flow.dtype, device=flow.device), indexing='ij')
    pixels = torch.stack([u - flow[:, 0], v - flow[:, 1]], dim=-1)
    return sample(source, pixels)


def ssim(x: torch.Tensor, y: torch.Tensor, c1: float = 0.01 ** 2, c2: float = 0.03 ** 2) -> torch.Tensor:
    """Per-pixel SSIM over 3x3 windows (reflection padded), images in [0, 1]."""
    x, y = F.pad(x, (1, 1, 1, 1), mode='reflect'), F.pad(y, (1, 1, 1, 1), mode='reflect')
    mu_x, mu_y = F.avg_pool2d(x, 3, 1), F.avg_pool2d(y, 3, 1)
    sx = F.avg_pool2d(x * x, 3, 1) - mu_x ** 2
    sy = F.avg_pool2d(y * y, 3, 1) - mu_y ** 2
    sxy = F.avg_pool2d(x * y, 3, 1) - mu_x * mu_y
    n = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    d = (mu_x ** 2 + mu_y ** 2 + c1) * (sx + sy + c2)
    return (n / d).clamp(-1, 1)


def photometric_error(pred: torch.Tensor, target: torch.Tensor, alpha: float = 0.85) -> torch.Tensor:
    """[B, 1, H, W]: alpha * (1 - SSIM) / 2 + (1 - alpha) * |pred - target|, channel means."""
    l1 = (pred - target).abs().mean(1, keepdim=True)
    dssim = ((1 - ssim(pred, target)) / 2).mean(1, keepdim=True)
    return alpha * dssim + (1 - alpha) * l1


def min_reprojection(target: torch.Tensor, warped: list, sources: list, valid: list | None = None,
                     automask: bool = True):
    """Monodepth2's loss map: the per-pixel minimum of the photometric errors over the warped
    source frames; with automask, a pixel whose error is lower for an unwarped source (static
    scene, or an object moving with the camera) is left out. Returns (loss [B, 1, H, W],
    mask [B, 1, H, W] of the pixels that count)."""
    errors = []
    for k, w in enumerate(warped):
        e = photometric_error(w, target)
        if valid is not None:
            e = torch.where(valid[k] > 0, e, torch.full_like(e, 1e3))
        errors.append(e)
    err = torch.cat(errors, 1)
    best, _ = err.min(1, keepdim=True)
    mask = (best < 1e3).to(target.dtype)
    if automask:
        identity = torch.cat([photometric_error(s, target) for s in sources], 1)
        # ties (a warp that moved nothing) are broken at random, as Monodepth2 does; a fixed rule
        # would drop every pixel, or keep every one, while the motion is still near zero
        identity = identity + 1e-5 * torch.randn_like(identity)
        still, _ = identity.min(1, keepdim=True)
        mask = mask * (best < still).to(target.dtype)
    return best * mask, mask


def masked_mean(loss: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of loss over the mask (0 when the mask is empty, with a gradient path)."""
    return (loss * mask).sum() / mask.sum().clamp(min=1.0)


def edge_aware_smoothness(x: torch.Tensor, image: torch.Tensor, normalise: bool = True) -> torch.Tensor:
    """Mean |d x| e^(-|d image|) over both image axes; x [B, C, H, W] (inverse depth, normalised by
    its mean as in Monodepth2, or flow with normalise False)."""
    if normalise:
        x = x / x.mean(dim=(2, 3), keepdim=True).clamp(min=1e-7)
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs()
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs()
    ix = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True)
    iy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True)
    return (dx * torch.exp(-ix)).mean() + (dy * torch.exp(-iy)).mean()


def forward_backward_occlusion(flow_fw: torch.Tensor, flow_bw: torch.Tensor, alpha: float = 0.01,
                               beta: float = 0.5) -> torch.Tensor:
    """UnFlow's occlusion test: [B, 1, H, W], 1 where a pixel is occluded. flow_fw is previous ->
    this (at this frame's pixels); flow_bw is this -> previous (at the previous frame's pixels).
    A visible pixel's two flows cancel: |fw + bw(p - fw)|^2 < alpha (|fw|^2 + |bw|^2) + beta."""
    bw_at, _ = warp_by_flow(flow_bw, flow_fw)
    diff = (flow_fw + bw_at).pow(2).sum(1, keepdim=True)
    bound = alpha * (flow_fw.pow(2).sum(1, keepdim=True) + bw_at.pow(2).sum(1, keepdim=True)) + beta
    return (diff > bound).to(flow_fw.dtype)


def flow_loss_mask(inside: torch.Tensor, occluded: torch.Tensor, min_visible: float = 0.5) -> torch.Tensor:
    """Pixels the flow's photometric error counts on: inside the previous image and not
    occluded; but a sample whose mask would leave less than min_visible of its pixels keeps them
    all (inside), so an untrained flow cannot escape the loss by calling everything occluded (a
    label-free run collapsed that way: every pixel occluded, loss 0, flow EPE 26 px)."""
    visible = inside * (1 - occluded)
    trusted = (visible.mean(dim=(1, 2, 3), keepdim=True) >= min_visible).to(visible.dtype)
    return trusted * visible + (1 - trusted) * inside


def axis_angle_to_matrix(axis_angle: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """[B, 3] axis-angle and [B, 3] translation -> [B, 4, 4] rigid transforms (Rodrigues)."""
    b = axis_angle.shape[0]
    angle = axis_angle.norm(dim=1, keepdim=True).clamp(min=1e-8)
    axis = axis_angle / angle
    x, y, z = axis[:, 0], axis[:, 1], axis[:, 2]
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], 1).view(b, 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand(b, 3, 3)
    s, c = torch.sin(angle).view(b, 1, 1), torch.cos(angle).view(b, 1, 1)
    rot = eye + s * skew + (1 - c) * (skew @ skew)
    out = torch.eye(4, dtype=axis_angle.dtype, device=axis_angle.device).repeat(b, 1, 1)
    out[:, :3, :3] = rot
    out[:, :3, 3] = translation
    return out


class PoseHead(nn.Module):
    """Relative camera motion from the shared encoder: the stride-32 features of the target and
    the source frame, concatenated, three convolutions, a global mean -> axis-angle and
    translation (x 0.01, Monodepth2's scaling). Returns the [B, 4, 4] target -> source transform.
    The output layer keeps its random initialisation: a zeroed one starts at exactly no motion,
    where every warp equals the unwarped frame, auto-masking drops every pixel and no gradient
    reaches the pose (the first label-free runs stalled there and depth never learned)."""

    def __init__(self, in_channels: int, width: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2 * in_channels, width, 1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, 6, 1))

    def forward(self, target_features: torch.Tensor, source_features: torch.Tensor) -> torch.Tensor:
        """[B, C, h, w] features of both frames -> [B, 4, 4] target -> source camera transform."""
        out = 0.01 * self.net(torch.cat([target_features, source_features], 1)).mean(dim=(2, 3))
        return axis_angle_to_matrix(out[:, :3], out[:, 3:])


class SelfSupervision(nn.Module):
    """The photometric training terms of a HydraNet (train.photometric, train.flow_photometric):

    - depth: the previous frame warped into this one by the predicted depth and the pose head's
      camera motion; minimum-reprojection photometric error with auto-masking, plus the
      edge-aware smoothness of mean-normalised inverse depth. Needs each sample's intrinsics at
      the network input (`intrinsics`, `has_intrinsics`).
    - flow: the previous frame warped by the predicted flow; photometric error outside the
      pixels that forward-backward consistency marks occluded (the backward flow is a second
      pass with the frames swapped), plus edge-aware flow smoothness.
    The pose head is part of this module (trained with it, kept in the training state), not of
    the deployed network."""

    def __init__(self, encoder_channels: int, photometric: float, flow_photometric: float, smoothness: float,
                 mean, std, training_focal_px: float | None = None, use_odometry: bool = True,
                 rigid_flow: float = 0.0, scales: int = 1, rigid_flow_movers=()):
        super().__init__()
        self.scales = int(scales)          # the depth term at full, 1/2, 1/4 ... resolution
        # cross-task consistency: where depth + camera motion explain a pixel better than the flow
        # head's warp does, the flow is pulled towards that rigid flow (weight; 0 = off)
        self.rigid_flow = rigid_flow
        # segmentation classes (indices) that may move by themselves: pixels the network's own
        # segmentation gives one of them are never pulled to the rigid flow (where it is wrong, yet can
        # win the photometric choice; measured, it did not keep movers from getting worse under a
        # strong pull: docs/MODEL.md, stages 5-6)
        self.rigid_flow_movers = tuple(int(c) for c in rigid_flow_movers)
        # samples with odometry (batch 'pose', 'has_pose') warp by it: metric scale for free
        self.use_odometry = use_odometry
        # the depth head is metric for this focal length (input pixels); the warp needs the depth
        # the actual lens sees: x (sample's focal / training focal), as the Predictor scales it
        self.training_focal_px = float(training_focal_px) if training_focal_px else None
        self.photometric, self.flow_photometric, self.smoothness = photometric, flow_photometric, smoothness
        self.pose = PoseHead(encoder_channels) if photometric > 0 else None
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def camera_motion(self, model, batch: dict, has: torch.Tensor, source: str = 'prev',
                      features: dict | None = None) -> torch.Tensor:
        """[N, 4, 4] this camera -> the source frame's (source 'prev' or 'next') for the samples in
        has: odometry where a sample has it (and use_odometry), else the pose head on the shared
        encoder's features of both frames. features: a dict shared by the calls of one batch, so
        this frame is encoded once for both sources."""
        pose_key, known_key, image_key = ('pose', 'has_pose', 'prev_image') if source == 'prev' else \
            ('next_pose', 'has_next_pose', 'next_image')
        n = int(has.sum())
        known = batch[known_key][has].bool() if self.use_odometry and known_key in batch else \
            torch.zeros(n, dtype=torch.bool, device=has.device)
        t = batch[pose_key][has].float().clone() if known.any() else \
            torch.eye(4, device=has.device).repeat(n, 1, 1)
        if not known.all():
            features = {} if features is None else features
            if 'this' not in features:
                features['this'] = model.encoder(model._pad(batch['image'][has])[0])[32].float()
            f_src = model.encoder(model._pad(batch[image_key][has][~known])[0])[32]
            t[~known] = self.pose(features['this'][~known], f_src.float())
        return t

    @staticmethod
    def _reprojection(cur, frames, depth, k, factor: int):
        """Minimum reprojection at 1/factor of the resolution: frames are (source image, this ->
        source motion, which samples own it or None); a sample that does not own a source repeats
        the first one. Returns (loss, mask, the first source's warp, its valid mask)."""
        if factor > 1:
            cur = F.avg_pool2d(cur, factor)
            depth = F.avg_pool2d(depth, factor)
            k = k.clone()
            k[:, :2, :2] = k[:, :2, :2] / factor
            k[:, :2, 2] = (k[:, :2, 2] + 0.5) / factor - 0.5
        warps, sources, valids = [], [], []
        for image, motion, own in frames:
            image = F.avg_pool2d(image, factor) if factor > 1 else image
            w, v = warp_by_depth(image, depth, k, motion)
            if own is not None:
                w, v, image = torch.where(own, w, warps[0]), torch.where(own, v, valids[0]), \
                    torch.where(own, image, sources[0])
            warps.append(w)
            valids.append(v)
            sources.append(image)
        loss, mask = min_reprojection(cur, warps, sources, valids)
        return loss, mask, warps[0], valids[0]

    def terms(self, model, batch: dict, out: dict) -> dict:
        """{'photometric': ..., 'flow_photometric': ...} (unweighted) for the outputs present."""
        cur = batch['image'] * self.std + self.mean
        prev = batch['prev_image'] * self.std + self.mean
        h, w = cur.shape[-2:]
        terms, rigid = {}, None
        if self.pose is not None and 'depth' in out:
            has = batch['has_intrinsics'].bool()
            depth = out['depth'].float()
            if depth.shape[-2:] != (h, w):
                depth = F.interpolate(depth, size=(h, w), mode='bilinear', align_corners=False)
            if has.any():
                features = {}
                t = self.camera_motion(model, batch, has, features=features)
                k = batch['intrinsics'][has].float()
                metric = depth[has]
                if self.training_focal_px:
                    metric = metric * (k[:, 0, 0] / self.training_focal_px).view(-1, 1, 1, 1)
                frames = [(prev[has], t, None)]
                with_next = batch['has_next'].bool() & has if 'has_next' in batch else torch.zeros_like(has)
                if with_next.any():
                    # the next frame is a second source: the per-pixel minimum keeps, for each pixel,
                    # the frame that sees it (occlusions, the image border); a sample without one
                    # repeats its previous frame, which changes nothing
                    nxt = batch['next_image'] * self.std + self.mean
                    frames.append((nxt[has], self.camera_motion(model, batch, has, 'next', features),
                                   with_next[has].view(-1, 1, 1, 1)))
                total, warped, valid, mask = 0.0, None, None, None
                for level in range(self.scales):
                    # coarser copies of the frames (and of the depth, the intrinsics) see motions of
                    # many pixels in few, which the full-resolution gradient alone follows badly
                    # (SfMLearner's multi-scale loss; docs/MODEL.md has what it changed here)
                    loss, mask_l, warped_l, valid_l = self._reprojection(cur[has], frames, metric, k, 2 ** level)
                    total = total + masked_mean(loss, mask_l) / self.scales
                    if level == 0:
                        warped, valid, mask = warped_l, valid_l, mask_l
                smooth = edge_aware_smoothness(1.0 / depth[has].clamp(min=1e-3), cur[has])
                terms['photometric'] = total + self.smoothness * smooth
                prev_err = photometric_error(warped, cur[has])
                rigid = (rigid_flow(metric, k, t).detach(), prev_err.detach(), (mask * valid).detach(), has)
            else:
                terms['photometric'] = depth.sum() * 0.0
        if self.flow_photometric > 0 and 'flow' in out:
            fw = out['flow'].float()
            bw = model(batch['prev_image'], ['flow'], previous_images=batch['image'])['flow'].float()
            occluded = forward_backward_occlusion(fw, bw).detach()
            warped, inside = warp_by_flow(prev, fw)
            err = photometric_error(warped, cur)
            smooth = edge_aware_smoothness(fw / max(h, w), cur, normalise=False)
            terms['flow_photometric'] = masked_mean(err, flow_loss_mask(inside, occluded)) + \
                self.smoothness * 10 * smooth
            if self.rigid_flow > 0 and rigid is not None:
                target, rigid_err, ok, has = rigid
                better = ok * (rigid_err < err[has].detach()).to(ok.dtype)
                if self.rigid_flow_movers:
                    if 'segmentation' not in out:
                        raise ValueError('rigid_flow_movers needs the segmentation output in the training step')
                    better = better * (~self.movers(out['segmentation'][has], (h, w))).to(ok.dtype)
                gap = (fw[has] - target).abs().sum(1, keepdim=True)
                terms['flow_photometric'] = terms['flow_photometric'] + self.rigid_flow * masked_mean(gap, better)
        return terms

    def movers(self, logits: torch.Tensor, size) -> torch.Tensor:
        """[B, 1, H, W] bool: pixels whose most likely class is one of rigid_flow_movers."""
        classes = logits.detach().argmax(1, keepdim=True)
        if classes.shape[-2:] != tuple(size):
            classes = F.interpolate(classes.float(), size=tuple(size), mode='nearest').long()
        return torch.isin(classes, torch.tensor(self.rigid_flow_movers, device=classes.device))

    def total(self, terms: dict) -> torch.Tensor:
        """The weighted sum of the terms."""
        weights = {'photometric': self.photometric, 'flow_photometric': self.flow_photometric}
        return sum(weights[k] * v for k, v in terms.items())
