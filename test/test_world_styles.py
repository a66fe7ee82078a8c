"""Styled worlds (varied, heldout): variety without losing exact labels, and a held-out look
that shares nothing with the training style (ROS-free)."""
from dataclasses import replace

import cv2
import numpy as np
import pytest

from hydranet_ros.world import World
from hydranet_ros.world.classes import SEG_ID
from hydranet_ros.world.road import Road
from hydranet_ros.world.styles import HELDOUT, VARIED, get_style

SIZE = (96, 312)


def _clean(world):
    """The same world with a perfect sensor (no noise, blur or JPEG), for pixel comparisons."""
    sc = world.scene
    sc.look = replace(sc.look, noise_sigma=0.0, blur_sigma=0.0, jpeg_quality=0)
    sc.noise_sigma, sc.blur_sigma = 0.0, 0.0
    return world


def _world_points(world, frame):
    """[H, W, 3] world coordinates of every pixel's surface point (from the frame's depth)."""
    centre, rot = world.scene.camera_frame(frame.stamp)
    rays = world.camera.pixel_rays().reshape(*frame.depth.shape, 3)
    depth = np.where(np.isfinite(frame.depth), frame.depth, 0).astype(np.float64)
    return centre + (rays * depth[..., None]) @ rot.T


@pytest.mark.parametrize('style', ['varied', 'heldout'])
def test_the_look_never_changes_the_labels(style):
    a = list(World(5, 'kitti', size=SIZE, style=style, look_seed=0).frames(3))
    b = list(World(5, 'kitti', size=SIZE, style=style, look_seed=1).frames(3))
    for fa, fb in zip(a, b):
        assert np.array_equal(fa.segmentation, fb.segmentation) and np.array_equal(fa.instances, fb.instances)
        assert np.array_equal(fa.depth, fb.depth)
        np.testing.assert_array_equal(fa.flow, fb.flow)
        assert [(x.x1, x.y1, x.x2, x.y2, x.class_id) for x in fa.boxes] == \
            [(x.x1, x.y1, x.x2, x.y2, x.class_id) for x in fb.boxes]
    assert np.abs(a[2].rgb.astype(int) - b[2].rgb.astype(int)).mean() > 10     # but the pixels differ


def test_ground_depth_follows_the_hills_and_the_curve():
    world = World(3, 'kitti', size=SIZE, style='varied')
    world.scene.road = Road(curve_amplitude=10.0, curve_wavelength=200.0, curve_phase=0.3,
                            hill_amplitude=2.5, hill_wavelength=120.0, hill_phase=1.0)
    frame = list(world.frames(2))[-1]
    ground = np.isin(frame.segmentation, [SEG_ID[n] for n in ('road', 'lane_marking', 'sidewalk', 'terrain')])
    ground &= frame.instances == 0
    pts = _world_points(world, frame)[ground]
    height = world.scene.road.height(pts[:, 2])
    assert np.abs(height).max() > 0.3                                    # the road really is hilly here
    np.testing.assert_allclose(pts[:, 1], height, atol=2e-3)
    # Road pixels lie within the road's half width of the curved centre line.
    road = (frame.segmentation == SEG_ID['road'])[ground]
    across = np.abs(pts[:, 0] - world.scene.road.centre_x(pts[:, 2]))
    crossing = np.zeros(across.shape, bool)
    for zj, hw in world.scene.junctions:
        crossing |= np.abs(pts[:, 2] - zj) < hw
    assert (across[road & ~crossing] <= world.scene.road_half + 1e-6).all()
    assert np.abs(world.scene.road.centre_x(pts[:, 2])).max() > 0.5      # and curved


@pytest.mark.parametrize('style', ['varied', 'heldout'])
def test_object_pixels_lie_on_their_own_boxes_and_boxes_are_tight(style):
    world = World(8, 'kitti', size=SIZE, style=style)
    frame = list(world.frames(3))[-1]
    lo, hi = world.scene.box_arrays(frame.stamp)
    pts = _world_points(world, frame)
    parts = {}
    for k, b in enumerate(world.scene.boxes):
        if b.instance:
            parts.setdefault(b.instance, []).append(k)
    assert any(len(v) > 1 for v in parts.values())                      # shaped objects: several boxes
    assert frame.boxes
    for label in frame.boxes:
        ys, xs = np.nonzero(frame.instances == label.instance)
        assert (label.x1, label.y1, label.x2, label.y2) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        p = pts[ys, xs]
        inside = np.zeros(len(p), bool)
        for k in parts[label.instance]:
            tol = 1e-6 * np.abs(p).max() + 1e-6
            inside |= ((p >= lo[k] - tol) & (p <= hi[k] + tol)).all(axis=1)
        assert inside.all()
        cls = frame.segmentation[ys, xs]
        assert (cls == (SEG_ID['car'] if label.class_id == 0 else SEG_ID['pedestrian'])).all()


def _photometric_error(prev, cur, flow, mask):
    h, w = mask.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    fx = np.nan_to_num(flow[..., 0]).astype(np.float32)
    fy = np.nan_to_num(flow[..., 1]).astype(np.float32)
    warped = cv2.remap(prev.astype(np.float32), u - fx, v - fy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.abs(warped - cur.astype(np.float32)).mean(axis=2)[mask]


def test_flow_labels_move_the_rendered_texture_exactly():
    """Textures are anchored to their surfaces, so the previous image warped by the flow labels
    reproduces this image (clean sensor), on the ground and on moving objects alike."""
    world = _clean(World(4, 'kitti', size=(135, 448), style='varied'))
    frames = list(world.frames(6))
    prev, cur = frames[-2], frames[-1]
    valid = np.isfinite(cur.flow[..., 0]) & np.isfinite(cur.depth)
    depth = np.where(np.isfinite(cur.depth), cur.depth, 500).astype(np.float32)
    jumps = np.abs(cv2.Laplacian(depth, cv2.CV_32F)) > 0.05 * depth
    jumps |= cv2.Laplacian(cur.segmentation.astype(np.float32), cv2.CV_32F) != 0
    jumps |= cv2.Laplacian(cur.instances.astype(np.float32), cv2.CV_32F) != 0
    edges = cv2.dilate(jumps.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    mask = valid & ~edges & (np.hypot(cur.flow[..., 0], cur.flow[..., 1]) > 1.0)
    movers = mask & (cur.instances > 0)
    assert mask.sum() > 2000 and movers.sum() > 30
    err = _photometric_error(prev.rgb, cur.rgb, cur.flow, mask)
    still = _photometric_error(prev.rgb, cur.rgb, np.zeros_like(cur.flow), mask)
    assert np.median(err) < 3.0 and np.median(err) < 0.25 * np.median(still)
    err_movers = _photometric_error(prev.rgb, cur.rgb, cur.flow, movers)
    assert np.median(err_movers) < 4.0


def test_varied_drives_vary():
    worlds = [World(s, 'kitti', size=SIZE, style='varied') for s in range(12)]
    assert len({w.scene.look.ground_textures['road'] for w in worlds}) > 1
    assert np.ptp([w.scene.camera_height for w in worlds]) > 0.3
    assert any(w.scene.junctions for w in worlds) and any(w.scene.look.jpeg_quality for w in worlds)
    assert np.ptp([w.scene.look.sun[1] for w in worlds]) > 0.2
    assert any(abs(w.scene.road.curve_amplitude) > 3 for w in worlds)
    assert any(w.scene.pitch != 0 and w.scene.roll != 0 for w in worlds)


def _disjoint(a, b):
    return a[1] < b[0] or b[1] < a[0]


def test_the_held_out_style_shares_no_look_with_training():
    assert get_style('classic') is None and get_style('heldout') is HELDOUT
    with pytest.raises(ValueError, match='unknown world style'):
        get_style('sunny')
    for name in ('road_colors', 'sidewalk_colors', 'terrain_colors', 'building_colors', 'vegetation_colors',
                 'sky_horizon', 'sky_zenith'):
        assert not set(getattr(HELDOUT, name)) & set(getattr(VARIED, name)), name
    for name in ('road_textures', 'sidewalk_textures', 'terrain_textures', 'wall_textures'):
        assert not set(getattr(HELDOUT, name)) & set(getattr(VARIED, name)), name
    for name in ('sun_elevation_deg', 'ambient', 'camera_height_m', 'camera_pitch_deg', 'focal_scale',
                 'jpeg_quality', 'noise_sigma'):
        assert _disjoint(getattr(HELDOUT, name), getattr(VARIED, name)), name
    assert HELDOUT.camera_roll_deg[0] > max(abs(v) for v in VARIED.camera_roll_deg)
    world = World(2000, 'kitti', size=SIZE, style='heldout')
    assert world.camera.fx == pytest.approx(0.8 * World(2000, 'kitti', size=SIZE).camera.fx)
    assert abs(np.degrees(world.scene.roll)) >= 2.0


def test_letterboxed_training_samples_normalise_depth_to_the_training_lens():
    from hydranet_ros.training.datasets import SyntheticDataset
    from hydranet_ros.training.samples import letterbox_content
    size = (96, 224)
    train_focal = 50.0
    ds = SyntheticDataset([1, 2], 2, size, style='varied', cameras=['kitti', 'vga'], letterbox=True,
                          training_focal_px=train_focal)
    ev = SyntheticDataset([1, 2], 2, size, style='varied', cameras=['kitti', 'vga'], letterbox=True,
                          training_focal_px=train_focal, normalise_depth=False)
    for i, cam in ((0, 'kitti'), (2, 'vga')):
        h, w = letterbox_content(cam, size)
        assert (h, w) != size and ds.samples[i]['camera'] == cam
        item = ds[i]
        assert item['image'].shape[-2:] == size
        assert (item['image'][:, h:, :] == 0).all() and (item['image'][:, :, w:] == 0).all()
        assert (item['segmentation'][h:] == 255).all() and (item['segmentation'][:, w:] == 255).all()
        assert item['depth'][h:].isnan().all() and item['depth'][:, w:].isnan().all()
        assert item['det_mask'].shape[-2:] == (24, 56) and item['det_heat'][..., (h + 3) // 4:, :].sum() == 0
        assert (item['segmentation'][:h, :w] != 255).all()
        ratio = ds.samples[i]['focal_px'] / train_focal
        metric = ev.samples[i]['depth'].astype(np.float32)
        finite = np.isfinite(metric)
        np.testing.assert_allclose(ds.samples[i]['depth'].astype(np.float32)[finite], metric[finite] / ratio,
                                   rtol=2e-3)
        assert ev.samples[i]['depth_scale'] == pytest.approx(ratio) and ds.samples[i]['depth_scale'] == 1.0


def test_color_jitter_changes_pixels_not_labels():
    from hydranet_ros.training.augmentation import jitter_colors
    from hydranet_ros.training.samples import Sample
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    s = Sample(image=img, prev_image=img.copy(), segmentation=np.zeros((8, 8), np.uint8))
    out = jitter_colors(s, np.random.default_rng(1), 0.2)
    assert not np.array_equal(out['image'], img) and np.array_equal(out['image'], out['prev_image'])
    assert out['segmentation'] is s['segmentation']
    assert jitter_colors(s, rng, 0.0) is s
    hued = jitter_colors(s, np.random.default_rng(1), 0.2, hue_strength=0.5)
    assert not np.array_equal(hued['image'], out['image']) and np.array_equal(hued['image'], hued['prev_image'])


def test_sedan_bodies_on_hills_are_not_shaded_as_cabins():
    """Regression: the cabin (glass) test used a box's absolute height, so a car body up a hill
    was shaded as glass. Each sedan is a body and a cabin; only the cabin may be flagged."""
    from hydranet_ros.world.styled_shading import box_looks
    world = next(w for w in (World(s, 'kitti', size=SIZE, style='varied') for s in range(40))
                 if w.scene.road.hill_amplitude > 1.5)
    _, _, _, upper, _ = box_looks(world.scene)
    parts = {}
    for k, b in enumerate(world.scene.boxes):
        if b.cls == SEG_ID['car']:
            parts.setdefault(b.instance, []).append(k)
    sedans = [sorted(v, key=lambda k: world.scene.boxes[k].lo[1]) for v in parts.values() if len(v) == 2]
    raised = [v for v in sedans if world.scene.boxes[v[0]].lo[1] > 0.3]       # bodies up a hill
    assert sedans and raised
    assert all(not upper[body] and upper[cabin] for body, cabin in sedans)
