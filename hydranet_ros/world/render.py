"""Ray-cast rendering of a Scene: RGB and exact labels for all four tasks.

Every pixel's ray is intersected with the ground plane and with the boxes near the camera; the
nearest hit gives class, depth (z in the camera frame, metres; +inf for sky) and instance.
Flow is the exact image motion of each pixel's surface point from the previous frame to this
one (ego motion plus the object's own motion); pixels whose point was hidden or outside the
previous image, and sky, are marked invalid (NaN).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from hydranet_ros.world.camera import PinholeCamera
from hydranet_ros.world.classes import DET_ID, SEG_ID
from hydranet_ros.world.noise import box_corners, value_noise
from hydranet_ros.world.scene import MAX_RANGE, Scene, generate_scene
from hydranet_ros.world.styled_scene import generate_styled_scene
from hydranet_ros.world.styled_shading import shade_styled
from hydranet_ros.world.styles import get_style

_THING_DET = {SEG_ID['car']: DET_ID['car'], SEG_ID['pedestrian']: DET_ID['pedestrian']}


@dataclass
class BoxLabel:
    """A 2D box around an object's visible pixels, in image pixels (x2, y2 exclusive)."""

    x1: float
    y1: float
    x2: float
    y2: float
    class_id: int          # detection class id
    instance: int
    occlusion: float       # 0 fully visible .. 1 hidden (visible / unoccluded pixels)
    truncation: float      # 0 inside the image .. 1 outside

    def detectable(self, max_occlusion: float = 0.7, min_side: float = 4.0) -> bool:
        """Reasonably detectable: not mostly hidden and not tiny. Training targets keep only
        these; evaluation treats the others as 'ignore' boxes."""
        return self.occlusion <= max_occlusion and min(self.x2 - self.x1, self.y2 - self.y1) >= min_side


@dataclass
class Frame:
    """One rendered frame: RGB and its exact labels for every task."""
    index: int
    stamp: float
    rgb: np.ndarray            # [H, W, 3] uint8
    segmentation: np.ndarray   # [H, W] uint8 class ids
    depth: np.ndarray          # [H, W] float32 metres, +inf for sky
    flow: np.ndarray           # [H, W, 2] float32 previous -> this frame, NaN invalid
    instances: np.ndarray      # [H, W] int32, 0 = no object
    boxes: list = field(default_factory=list)
    camera: PinholeCamera | None = None


class Renderer:
    """Ray casts a scene through a camera: colour, labels and geometry of each frame."""

    def __init__(self, scene: Scene, camera: PinholeCamera):
        self.scene = scene
        self.camera = camera
        self.rays = camera.pixel_rays()   # [P, 3], z = 1

    def cast(self, t: float):
        """Nearest hit per pixel: (depth [P], box index [P] (-1 ground, -2 sky), world points [P,3],
        face normals [P,3]). Each box is tested only against the pixels inside its projection
        (a z-buffer over boxes), so cost follows screen area, not the number of boxes."""
        scene, cam = self.scene, self.camera
        h, w = cam.height, cam.width
        centre, rot = scene.camera_frame(t)
        dirs = self.rays @ rot.T                       # world directions, ray length = depth
        p = dirs.shape[0]
        depth = np.full(p, np.inf)
        which = np.full(p, -2, dtype=np.int64)
        normals = np.zeros((p, 3))
        if scene.road.flat:
            down = dirs[:, 1] < -1e-9
            tg = np.full(p, np.inf)
            tg[down] = centre[1] / -dirs[down, 1]
        else:
            tg = _march_ground(centre, dirs, scene.road)
        hit = tg < MAX_RANGE
        depth[hit], which[hit] = tg[hit], -1
        if scene.road.flat:
            normals[hit] = (0, 1, 0)
        else:
            slope = scene.road.grade(centre[2] + tg[hit] * dirs[hit, 2])
            n = np.stack([np.zeros_like(slope), np.ones_like(slope), -slope], axis=1)
            normals[hit] = n / np.linalg.norm(n, axis=1, keepdims=True)
        lo, hi = scene.box_arrays(t)
        near = (hi[:, 2] > centre[2] - 2) & (lo[:, 2] < centre[2] + MAX_RANGE)
        d2 = dirs.reshape(h, w, 3)
        depth2, which2, normals2 = depth.reshape(h, w), which.reshape(h, w), normals.reshape(h, w, 3)
        inv_all = 1.0 / np.where(np.abs(d2) < 1e-12, 1e-12, d2)
        for k in np.nonzero(near)[0]:
            corners = np.array([[x, y, z] for x in (lo[k, 0], hi[k, 0]) for y in (lo[k, 1], hi[k, 1])
                                for z in (lo[k, 2], hi[k, 2])])
            cc = (corners - centre) @ rot
            if (cc[:, 2] <= 0.1).all():
                continue
            if (cc[:, 2] > 0.1).all():
                uv = cam.project(cc)
                u0, v0 = max(int(np.floor(uv[:, 0].min())), 0), max(int(np.floor(uv[:, 1].min())), 0)
                u1, v1 = min(int(np.ceil(uv[:, 0].max())) + 1, w), min(int(np.ceil(uv[:, 1].max())) + 1, h)
                if u0 >= u1 or v0 >= v1:
                    continue
            else:
                u0, v0, u1, v1 = 0, 0, w, h
            inv = inv_all[v0:v1, u0:u1]
            t1 = (lo[k] - centre) * inv
            t2 = (hi[k] - centre) * inv
            tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
            t_near = np.maximum(np.maximum(tmin[..., 0], tmin[..., 1]), tmin[..., 2])
            t_far = np.minimum(np.minimum(tmax[..., 0], tmax[..., 1]), tmax[..., 2])
            closer = (t_near <= t_far) & (t_near > 0.05) & (t_near < depth2[v0:v1, u0:u1])
            if not closer.any():
                continue
            depth2[v0:v1, u0:u1][closer] = t_near[closer]
            which2[v0:v1, u0:u1][closer] = k
            axis = tmin[closer].argmax(axis=1)
            n = np.zeros((axis.size, 3))
            sub_dirs = d2[v0:v1, u0:u1][closer]
            n[np.arange(axis.size), axis] = -np.sign(sub_dirs[np.arange(axis.size), axis])
            normals2[v0:v1, u0:u1][closer] = n
        points = centre + dirs * np.where(np.isfinite(depth), depth, 0)[:, None]
        return depth, which, points, normals

    def labels(self, depth, which):
        scene = self.scene
        seg = np.full(which.shape, SEG_ID['sky'], np.uint8)
        inst = np.zeros(which.shape, np.int32)
        boxes = scene.boxes
        box_cls = np.array([b.cls for b in boxes], np.uint8)
        box_inst = np.array([b.instance for b in boxes], np.int32)
        on_box = which >= 0
        seg[on_box] = box_cls[which[on_box]]
        inst[on_box] = box_inst[which[on_box]]
        return seg, inst

    def ground_classes(self, points, ground):
        sc = self.scene
        z = points[ground, 2]
        x = np.abs(points[ground, 0] - sc.road.centre_x(z)) if sc.look is not None else np.abs(points[ground, 0])
        cls = np.full(x.shape, SEG_ID['terrain'], np.uint8)
        cls[x <= sc.road_half + sc.sidewalk] = SEG_ID['sidewalk']
        cls[x <= sc.road_half] = SEG_ID['road']
        centre_line = (x < 0.07) & (np.mod(z, 9.0) < 4.5)
        edge_line = (x > sc.road_half - 0.22) & (x < sc.road_half - 0.08)
        crossing = np.zeros(x.shape, bool)
        for zj, hw in sc.junctions:
            crossing |= np.abs(z - zj) < hw
        cls[(centre_line | edge_line) & ~crossing] = SEG_ID['lane_marking']
        cls[crossing & (x > sc.road_half - 0.22)] = SEG_ID['road']
        return cls

    def shade(self, t, depth, which, points, normals, seg, rng):
        sc = self.scene
        p = depth.size
        rgb = np.zeros((p, 3))
        ground = which == -1
        gcls = seg[ground]
        base = np.zeros((gcls.size, 3))
        for name in ('road', 'lane_marking', 'sidewalk', 'terrain'):
            base[gcls == SEG_ID[name]] = sc.ground_colors[name]
        gx, gz = points[ground, 0], points[ground, 2]
        tex = 0.85 + 0.15 * value_noise(gx, gz, 0.25, 1) + 0.08 * (value_noise(gx, gz, 1.7, 2) - 0.5)
        slabs = (gcls == SEG_ID['sidewalk']) & ((np.mod(gz, 1.5) < 0.05) | (np.mod(gx, 1.5) < 0.05))
        tex[slabs] *= 0.8
        rgb[ground] = base * tex[:, None]
        on_box = which >= 0
        idx = which[on_box]
        colors = np.stack([b.color for b in sc.boxes])
        accents = np.stack([b.accent if b.accent is not None else b.color * 0.6 for b in sc.boxes])
        lo, hi = sc.box_arrays(t)
        pts = points[on_box]
        col = colors[idx].copy()
        cls = seg[on_box]
        rel_y = (pts[:, 1] - lo[idx, 1]) / np.maximum(hi[idx, 1] - lo[idx, 1], 1e-6)
        car = cls == SEG_ID['car']
        col[car & (rel_y > 0.55)] = accents[idx[car & (rel_y > 0.55)]]                 # windows
        col[car & (rel_y < 0.18)] = 0.08                                                 # wheels
        ped = cls == SEG_ID['pedestrian']
        col[ped & (rel_y < 0.5)] = accents[idx[ped & (rel_y < 0.5)]]                    # trousers
        bld = cls == SEG_ID['building']
        along = np.where(np.abs(normals[on_box, 0]) > 0.5, pts[:, 2], pts[:, 0])
        window = bld & (np.mod(along, 3.0) > 0.9) & (np.mod(along, 3.0) < 2.2) & \
            (np.mod(pts[:, 1], 3.2) > 1.0) & (np.mod(pts[:, 1], 3.2) < 2.4)
        col[window] = col[window] * 0.35 + np.array([0.1, 0.15, 0.25])
        veg = cls == SEG_ID['vegetation']
        col[veg] *= (0.7 + 0.6 * value_noise(pts[veg, 0] + pts[veg, 1], pts[veg, 2] + pts[veg, 1], 0.3, 3))[:, None]
        rgb[on_box] = col
        light = 0.5 + 0.5 * np.clip(normals @ sc.sun, 0, 1)
        rgb *= light[:, None]
        sky = which == -2
        dirs = self.rays[sky] / np.linalg.norm(self.rays[sky], axis=1, keepdims=True)
        up = np.clip(-dirs[:, 1] * 3, 0, 1)[:, None]
        rgb[sky] = sc.sky_colors[0] * (1 - up) + sc.sky_colors[1] * up
        # Distance haze, exposure, sensor noise, optics blur.
        haze = np.clip(np.where(np.isfinite(depth), depth, MAX_RANGE) / 250.0, 0, 0.6)[:, None]
        rgb = rgb * (1 - haze) + sc.sky_colors[0] * haze
        h, w = self.camera.height, self.camera.width
        img = np.clip(rgb.reshape(h, w, 3) * sc.exposure * 255.0, 0, 255).astype(np.float32)
        if sc.blur_sigma > 0:
            img = cv2.GaussianBlur(img, (0, 0), sc.blur_sigma)
        if sc.noise_sigma > 0:
            img = img + rng.normal(0, sc.noise_sigma, img.shape).astype(np.float32)
        return np.clip(img, 0, 255).astype(np.uint8)

    def render(self, index: int, t: float, dt: float, previous_depth: np.ndarray | None) -> Frame:
        cam = self.camera
        h, w = cam.height, cam.width
        depth, which, points, normals = self.cast(t)
        seg, inst = self.labels(depth, which)
        ground = which == -1
        seg[ground] = self.ground_classes(points, ground)
        rng = np.random.default_rng([self.scene.seed, index])
        if self.scene.look is None:
            rgb = self.shade(t, depth, which, points, normals, seg, rng)
        else:
            rgb = shade_styled(self.scene, self.camera, self.rays, t, depth, which, points, normals, seg, rng)
        flow = self.flow(t, dt, depth, which, points, previous_depth)
        depth_img = depth.reshape(h, w).astype(np.float32)
        inst_img = inst.reshape(h, w)
        frame = Frame(index=index, stamp=t, rgb=rgb, segmentation=seg.reshape(h, w), depth=depth_img,
                      flow=flow, instances=inst_img, camera=cam)
        frame.boxes = self.boxes(t, inst_img, seg.reshape(h, w))
        return frame

    def flow(self, t, dt, depth, which, points, previous_depth):
        cam = self.camera
        h, w = cam.height, cam.width
        flow = np.full((h * w, 2), np.nan, np.float32)
        if previous_depth is None:
            return flow.reshape(h, w, 2)
        finite = np.isfinite(depth)
        moved = np.zeros((depth.size, 3))
        on_box = which >= 0
        moved[on_box] = self.scene.box_motion(t, dt)[which[on_box]]
        prev_points = points - moved
        centre, rot = self.scene.camera_frame(t - dt)
        cam_pts = (prev_points - centre) @ rot       # world -> camera: R^T x
        z = cam_pts[:, 2]
        ok = finite & (z > 0.1)
        uv = np.full((depth.size, 2), np.nan)
        uv[ok] = cam.project(cam_pts[ok])
        u0, v0 = np.rint(uv[:, 0]), np.rint(uv[:, 1])
        inside = ok & (u0 >= 0) & (u0 < w) & (v0 >= 0) & (v0 < h)
        idx = np.nonzero(inside)[0]
        seen = previous_depth.reshape(-1)[(v0[idx] * w + u0[idx]).astype(np.int64)]
        visible = np.abs(seen - z[idx]) <= 0.03 * z[idx] + 0.05
        good = idx[visible]
        pix = np.stack([np.tile(np.arange(w), h), np.repeat(np.arange(h), w)], axis=1).astype(np.float64)
        flow[good] = (pix[good] - uv[good]).astype(np.float32)
        return flow.reshape(h, w, 2)

    def boxes(self, t, inst_img, seg_img) -> list:
        labels = []
        cam = self.camera
        lo, hi = self.scene.box_arrays(t)
        centre, rot = self.scene.camera_frame(t)
        parts = _instance_parts(self.scene)
        for k in np.unique(inst_img):
            if k == 0:
                continue
            ys, xs = np.nonzero(inst_img == k)
            bis = parts[int(k)]
            cls = self.scene.boxes[bis[0]].cls
            corners = np.concatenate([box_corners(lo[bi], hi[bi]) for bi in bis])
            cc = (corners - centre) @ rot
            if (cc[:, 2] > 0.1).all():
                uv = cam.project(cc)
                x1, y1 = uv.min(axis=0)
                x2, y2 = uv.max(axis=0)
                area = max((x2 - x1) * (y2 - y1), 1e-6)
                ix = max(0.0, min(x2, cam.width) - max(x1, 0.0)) * max(0.0, min(y2, cam.height) - max(y1, 0.0))
                truncation = float(np.clip(1 - ix / area, 0, 1))
                # Unoccluded extent: the object's silhouette (convex hull of its projected box)
                # inside the image; occlusion = the share of it hidden by something nearer.
                hull = cv2.convexHull(np.round(uv).astype(np.int32))
                mask = np.zeros((cam.height, cam.width), np.uint8)
                cv2.fillConvexPoly(mask, hull, 1)
                occlusion = 1.0 - xs.size / max(int(mask.sum()), xs.size)
            else:
                truncation, occlusion = 1.0, 0.0
            labels.append(BoxLabel(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1),
                                   _THING_DET[int(cls)], int(k), float(occlusion), truncation))
        return labels


def _instance_parts(scene: Scene) -> dict:
    """instance id -> indices of its boxes (a sedan is a body and a cabin, a person a body and a head)."""
    parts: dict = {}
    for i, b in enumerate(scene.boxes):
        if b.instance:
            parts.setdefault(b.instance, []).append(i)
    return parts


def _march_ground(centre, dirs, road, steps: int = 96, refine: int = 14) -> np.ndarray:
    """Depth (camera z, the ray parameter) where each ray first meets the ground y = g(z):
    a geometric march to the first crossing, then bisection. +inf where none within MAX_RANGE."""
    s = np.geomspace(0.2, MAX_RANGE, steps)
    p = dirs.shape[0]
    hit_at = np.full(p, -1)
    for k, sk in enumerate(s):
        f = centre[1] + sk * dirs[:, 1] - road.height(centre[2] + sk * dirs[:, 2])
        hit_at[(f <= 0) & (hit_at < 0)] = k
        if (hit_at >= 0).all():
            break
    out = np.full(p, np.inf)
    idx = np.nonzero(hit_at >= 0)[0]
    if idx.size:
        k = hit_at[idx]
        a = np.where(k > 0, s[np.maximum(k - 1, 0)], 0.0)
        b = s[k]
        d = dirs[idx]
        for _ in range(refine):
            m = 0.5 * (a + b)
            f = centre[1] + m * d[:, 1] - road.height(centre[2] + m * d[:, 2])
            a = np.where(f > 0, m, a)
            b = np.where(f > 0, b, m)
        out[idx] = 0.5 * (a + b)
    return out


class World:
    """A drive through one procedural scene: frames(n) yields rendered, labelled frames."""

    def __init__(self, seed: int, camera: PinholeCamera | str = 'kitti', size=None, dt: float = 0.1,
                 static: bool = False, style: str = 'classic', look_seed: int = 0):
        cam = PinholeCamera.preset(camera) if isinstance(camera, str) else camera
        if size is not None:
            cam = cam.scaled(int(size[1]), int(size[0]))
        style_def = get_style(style)
        self.style = style
        if style_def is None:
            self.scene = generate_scene(seed, static=static)
        else:
            self.scene = generate_styled_scene(seed, style_def, static=static, look_seed=look_seed)
            s = self.scene.focal_scale
            if s != 1.0:   # the style's lens: same sensor, another focal length
                cam = PinholeCamera(cam.width, cam.height, cam.fx * s, cam.fy * s, cam.cx, cam.cy)
        self.camera = cam
        self.dt = dt
        self.renderer = Renderer(self.scene, cam)

    def objects_in_camera(self, index: int) -> dict:
        """Ground truth in 3D at frame `index`: instance -> (centre [3], size [3]) of each
        countable object's box in the camera optical frame (x right, y down, z forward, metres),
        the axis-aligned extent of its eight corners."""
        t = index * self.dt
        centre, rot = self.scene.camera_frame(t)
        lo, hi = self.scene.box_arrays(t)
        out = {}
        for instance, bis in _instance_parts(self.scene).items():
            cam = (np.concatenate([box_corners(lo[k], hi[k]) for k in bis]) - centre) @ rot
            out[instance] = ((cam.min(0) + cam.max(0)) / 2, cam.max(0) - cam.min(0))
        return out

    def frames(self, n: int, start: int = 0):
        previous = None
        if start > 0:
            previous = self.renderer.cast((start - 1) * self.dt)[0].reshape(self.camera.height, self.camera.width)
        for i in range(start, start + n):
            frame = self.renderer.render(i, i * self.dt, self.dt, previous)
            previous = frame.depth
            yield frame

