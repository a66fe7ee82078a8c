"""Shading of the styled worlds (world/styles.py): procedural textures of ground and walls, ground
shadows of the boxes, per-object looks, and the lit colour image."""
from __future__ import annotations

import cv2
import numpy as np

from hydranet_ros.world.camera import PinholeCamera
from hydranet_ros.world.classes import SEG_ID
from hydranet_ros.world.noise import box_corners, hash_noise, smooth_noise
from hydranet_ros.world.scene import MAX_RANGE, Scene


def surface_texture(kind: str, a, b, scale: float, salt: int):
    """Brightness multiplier of a procedural texture at surface coordinates (a, b), metres;
    a runs along the surface, b across it (or up a wall)."""
    a, b = a * scale, b * scale
    if kind == 'plain':
        return np.ones_like(a)
    if kind == 'noise':
        return 0.75 + 0.35 * smooth_noise(a, b, 0.9, salt) + 0.15 * smooth_noise(a, b, 0.23, salt + 1)
    if kind == 'grain':
        return 0.85 + 0.2 * smooth_noise(a, b, 0.12, salt) + 0.1 * smooth_noise(a, b, 2.5, salt + 1)
    if kind == 'patches':
        base = 0.9 + 0.12 * smooth_noise(a, b, 0.15, salt)
        return base * np.where(smooth_noise(a, b, 3.0, salt + 2) > 0.62, 0.72, 1.0)
    if kind == 'stripes':
        return np.where(np.mod(a, 0.8) < 0.4, 1.0, 0.78)
    if kind == 'siding':
        return np.where(np.mod(b, 0.3) < 0.05, 0.7, 1.0) * (0.95 + 0.1 * smooth_noise(a, b, 0.5, salt))
    if kind == 'bricks':
        row = np.floor(b / 0.3)
        shift = np.mod(row, 2) * 0.45
        mortar = (np.mod(b, 0.3) < 0.04) | (np.mod(a + shift, 0.9) < 0.04)
        return np.where(mortar, 1.25, 0.85 + 0.25 * hash_noise(np.floor((a + shift) / 0.9), row, salt))
    if kind == 'slabs':
        joint = (np.mod(a, 1.5) < 0.05) | (np.mod(b, 1.5) < 0.05)
        return np.where(joint, 0.75, 0.92 + 0.12 * smooth_noise(a, b, 0.5, salt))
    if kind == 'checker':
        return np.where((np.floor(a / 0.45) + np.floor(b / 0.45)) % 2 == 0, 1.08, 0.72)
    if kind == 'panels':
        frame = (np.mod(a, 1.6) < 0.12) | (np.mod(b, 3.0) < 0.15)
        return np.where(frame, 0.55, 1.15 + 0.15 * smooth_noise(a, b, 4.0, salt))
    if kind == 'joints':
        joint = (np.mod(a, 4.5) < 0.06) | (np.mod(b + 1.75, 3.5) < 0.04)
        return np.where(joint, 0.55, 0.95 + 0.08 * smooth_noise(a, b, 0.6, salt))
    raise ValueError(f'unknown texture {kind!r}')


def ground_shadow(scene: Scene, points, ground, t: float) -> np.ndarray:
    """1 where a ground point is in the shadow of a box (sun = scene.look.sun), else 0: each box
    casts the polygon of its corners projected along the sun onto the ground at its base."""
    sun = scene.look.sun
    shadow = np.zeros(ground.sum(), np.float64)
    gx, gz = points[ground, 0], points[ground, 2]
    if gx.size == 0:
        return shadow
    lo, hi = scene.box_arrays(t)
    zmin, zmax = gz.min(), gz.max()
    reach = (hi[:, 1] - lo[:, 1]) / max(sun[1], 0.05)
    near = (hi[:, 2] + reach > zmin) & (lo[:, 2] - reach < zmax) & (hi[:, 1] - lo[:, 1] > 0.05)
    for k in np.nonzero(near)[0]:
        c = box_corners(lo[k], hi[k])
        drop = (c[:, 1] - lo[k, 1]) / sun[1]
        poly = np.stack([c[:, 0] - drop * sun[0], c[:, 2] - drop * sun[2]], axis=1)
        x0, z0 = poly.min(0)
        x1, z1 = poly.max(0)
        sel = np.nonzero((gx >= x0) & (gx <= x1) & (gz >= z0) & (gz <= z1))[0]
        if sel.size == 0:
            continue
        hull = cv2.convexHull(poly.astype(np.float32)).reshape(-1, 2).astype(np.float64)
        px, pz = gx[sel], gz[sel]
        inside = np.ones(sel.size, bool)
        n = len(hull)
        area = 0.0
        for i in range(n):
            area += hull[i, 0] * hull[(i + 1) % n, 1] - hull[(i + 1) % n, 0] * hull[i, 1]
        sign = 1.0 if area >= 0 else -1.0
        for i in range(n):
            ax, az = hull[i]
            bx, bz = hull[(i + 1) % n]
            inside &= sign * ((bx - ax) * (pz - az) - (bz - az) * (px - ax)) >= 0
        shadow[sel[inside]] = 1.0
    return shadow


def box_looks(scene: Scene):
    """Per-box colour, accent, texture and car-part flags (cabin, van), made once per scene (and
    again only if boxes are added), not per frame."""
    cached = getattr(scene, '_looks_cache', None)
    if cached is None or cached[0] != len(scene.boxes):
        boxes = scene.boxes
        car = SEG_ID['car']
        cached = (len(boxes), np.stack([b.color for b in boxes]),
                  np.stack([b.accent if b.accent is not None else b.color * 0.6 for b in boxes]),
                  np.array([b.texture for b in boxes]),
                  np.array([b.cls == car and b.lo[1] - float(scene.road.height(b.lo[2])) > 0.3 for b in boxes]),
                  np.array([b.cls == car and b.hi[1] - b.lo[1] > 1.85 for b in boxes]))
        scene._looks_cache = cached
    return cached[1:]


def shade_styled(scene: Scene, camera: PinholeCamera, rays, t, depth, which, points, normals, seg, rng):
    """The colour of every pixel under a styled look: textured albedo (anchored to the surface,
    so it moves with it), sun and sky light with cast shadows on the ground, distance haze,
    exposure and white balance, then the sensor: blur, noise and a JPEG round trip."""
    look = scene.look
    p = depth.size
    rgb = np.zeros((p, 3))
    ground = which == -1
    gcls = seg[ground]
    gx, gz = points[ground, 0], points[ground, 2]
    along = gz
    across = gx - scene.road.centre_x(gz)
    base = np.zeros((gcls.size, 3))
    tex = np.ones(gcls.size)
    for name, salt in (('road', 11), ('sidewalk', 12), ('terrain', 13)):
        m = gcls == SEG_ID[name]
        base[m] = look.ground_colors[name]
        tex[m] = surface_texture(look.ground_textures[name], along[m], across[m], look.texture_scale, salt)
    lm = gcls == SEG_ID['lane_marking']
    base[lm] = look.marking_color
    tex[lm] = 0.92 + 0.1 * smooth_noise(along[lm], across[lm], 0.3, 14)
    rgb[ground] = base * tex[:, None]
    on_box = which >= 0
    idx = which[on_box]
    lo, hi = scene.box_arrays(t)
    pts = points[on_box]
    colors, accents, textures, upper, van = box_looks(scene)
    col = colors[idx].copy()
    cls = seg[on_box]
    local = pts - lo[idx]                                   # texture coordinates move with the box
    nrm = normals[on_box]
    face_x = np.abs(nrm[:, 0]) > 0.5
    face_y = np.abs(nrm[:, 1]) > 0.5
    a = np.where(face_x, local[:, 2], local[:, 0])
    b = np.where(face_y, local[:, 2], local[:, 1])
    box_tex = np.ones(idx.size)
    for kind in np.unique(textures[idx]):
        m = textures[idx] == kind
        box_tex[m] = surface_texture(str(kind), a[m], b[m], look.texture_scale, 21)
    col *= box_tex[:, None]
    rel_y = (pts[:, 1] - lo[idx, 1]) / np.maximum(hi[idx, 1] - lo[idx, 1], 1e-6)
    car = cls == SEG_ID['car']
    window = car & (rel_y > 0.35) & (rel_y < 0.92) & ~face_y
    glass = car & ((upper[idx] & ~face_y & (rel_y > 0.1) & (rel_y < 0.9)) | (van[idx] & window & (rel_y > 0.55))
                   | (~upper[idx] & ~van[idx] & (rel_y > 0.6)))
    col[glass] = accents[idx[glass]]
    col[car & (rel_y < 0.2) & ~upper[idx]] = 0.07                                      # wheels, sills
    ped = cls == SEG_ID['pedestrian']
    col[ped & (rel_y < 0.5)] = accents[idx[ped & (rel_y < 0.5)]]                    # trousers
    bld = cls == SEG_ID['building']
    along_b = np.where(face_x, local[:, 2], local[:, 0])
    win = bld & ~face_y & (np.mod(along_b, 3.0) > 0.9) & (np.mod(along_b, 3.0) < 2.2) & \
        (np.mod(local[:, 1], 3.2) > 1.0) & (np.mod(local[:, 1], 3.2) < 2.4)
    col[win] = col[win] * 0.3 + look.sky_colors[0] * 0.25
    rgb[on_box] = col
    # Light: ambient sky light plus the sun, with ground shadows.
    direct = np.clip(normals @ look.sun, 0, 1)
    lit = np.ones(p)
    lit[ground] = 1.0 - look.shadow_strength * ground_shadow(scene, points, ground, t)
    light = look.ambient + (1 - look.ambient) * (direct * lit)[:, None] * look.sun_color
    rgb = rgb * np.where((which == -2)[:, None], 1.0, light) * 1.25
    sky = which == -2
    dirs = rays[sky] / np.linalg.norm(rays[sky], axis=1, keepdims=True)
    up = np.clip(-dirs[:, 1] * 3 + 0.3, 0, 1)[:, None]
    rgb[sky] = look.sky_colors[0] * (1 - up) + look.sky_colors[1] * up
    haze = np.clip(np.where(np.isfinite(depth), depth, MAX_RANGE) / 200.0, 0, 1)[:, None] * look.haze
    rgb = rgb * (1 - haze) + look.sky_colors[0] * haze
    h, w = camera.height, camera.width
    img = rgb.reshape(h, w, 3) * look.exposure * look.white_balance * 255.0
    img = np.clip(img, 0, 255).astype(np.float32)
    if scene.blur_sigma > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), scene.blur_sigma)
    if scene.noise_sigma > 0:
        img = img + rng.normal(0, scene.noise_sigma, img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if look.jpeg_quality:
        ok, buf = cv2.imencode('.jpg', img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, look.jpeg_quality])
        img = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return img
