"""The planner outputs over real DDS: points/obstacles, points/ground and free_space, checked
against the synthetic world's exact depth, classes and camera height."""
import math

import numpy as np
from nav_msgs.msg import OccupancyGrid
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from hydranet_ros.image_codec import image_to_numpy
from hydranet_ros.spatial.cloud import CLOUD_DTYPE, CLOUD_SIGMA_DTYPE, Intrinsics
from hydranet_ros.spatial.ground import FREE, OCCUPIED, GridSpec, GroundGrid, GroundPlane, grid_agreement
from hydranet_ros.spatial.obstacles import GroundSettings, ground_scene
from hydranet_ros.world import World
from drive_harness import NS, run_drive

SEG_NAMES = ['road', 'lane_marking', 'sidewalk', 'terrain', 'building', 'vegetation', 'pole', 'sky', 'car',
             'pedestrian']
GROUND = {0, 1, 2, 3}
OBSTACLES = {4, 5, 6, 8, 9}


def _points(msg):
    return np.frombuffer(bytes(msg.data), CLOUD_SIGMA_DTYPE if msg.point_step == 24 else CLOUD_DTYPE)


def _grid_of(msg) -> GroundGrid:
    """The message back as a GroundGrid (origin pose -> axes)."""
    q = msg.info.origin.orientation
    x, y, z, w = q.x, q.y, q.z, q.w
    axes = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    p = msg.info.origin.position
    origin = np.array([p.x, p.y, p.z])
    normal = axes[:, 2]
    cells = np.array(msg.data, np.int8).reshape(msg.info.height, msg.info.width)
    return GroundGrid(cells, msg.info.resolution, origin, axes, GroundPlane(normal, float(-normal @ origin)))


def test_obstacle_and_ground_clouds_and_the_free_space_grid(node, drive):
    h = node
    wanted = {f'{NS}/points/obstacles': PointCloud2, f'{NS}/points/ground': PointCloud2,
              f'{NS}/free_space': OccupancyGrid, f'{NS}/depth': Image, f'{NS}/camera_info': CameraInfo}
    for topic, typ in wanted.items():
        h.subscribe(typ, topic)
    got = run_drive(h, drive, list(wanted), frames=1)
    depth_msg = got[f'{NS}/depth'][-1]
    stamp = depth_msg.header.stamp
    for topic in (f'{NS}/points/obstacles', f'{NS}/points/ground', f'{NS}/free_space'):
        msg = next(m for m in got[topic] if m.header.stamp == stamp)
        assert msg.header.frame_id == 'camera_optical', topic
    obstacles = _points(next(m for m in got[f'{NS}/points/obstacles'] if m.header.stamp == stamp))
    ground = _points(next(m for m in got[f'{NS}/points/ground'] if m.header.stamp == stamp))
    assert len(obstacles) > 100 and len(ground) > 1000
    assert set(np.unique(obstacles['label'])) <= OBSTACLES and set(np.unique(ground['label'])) <= GROUND
    grid_msg = next(m for m in got[f'{NS}/free_space'] if m.header.stamp == stamp)
    spec = GridSpec()                                          # the parameters' defaults
    assert (grid_msg.info.height, grid_msg.info.width) == spec.shape
    assert grid_msg.info.resolution == np.float32(spec.resolution_m)
    assert set(np.unique(np.array(grid_msg.data))) <= {-1, FREE, OCCUPIED}
    grid = _grid_of(grid_msg)
    world = World(2000)
    # the fitted plane: the world's camera height and pitch (REP 103 sign: the world's is positive up)
    assert grid.plane.offset == np.float64(grid.plane.offset)
    assert abs(grid.plane.offset - world.scene.camera_height) < 0.35, (grid.plane.offset, world.scene.camera_height)
    assert abs(math.degrees(grid.plane.pitch_rad) + math.degrees(world.scene.pitch)) < 3.0
    # against the exact free space: the world's depth and classes through the same projection
    frame = drive[0][0]
    info = got[f'{NS}/camera_info'][-1]
    k = Intrinsics.from_camera_info(info.k, info.p, *frame.depth.shape)
    settings = GroundSettings.from_names(SEG_NAMES, [SEG_NAMES[i] for i in sorted(GROUND)],
                                         [SEG_NAMES[i] for i in sorted(OBSTACLES)],
                                         camera_height_m=world.scene.camera_height)
    truth = ground_scene(frame.depth, frame.segmentation, k, settings, stride=2).grid(spec, 0.2, 2.5)
    agreement = grid_agreement(grid, truth)
    assert agreement['free_iou_0_10m'] > 0.6, agreement
    assert (grid.cells == FREE).sum() > 0.5 * (truth.cells == FREE).sum()
    depth = image_to_numpy(depth_msg)
    assert depth.shape == frame.depth.shape


def test_points_obstacles_alone_with_a_height_band_keeps_only_points_above_the_ground(node, drive):
    """Only points/obstacles subscribed: the split computes the obstacle cloud and, for the height
    band, the plane (not the ground cloud's message nor the grid), and the band holds."""
    from rclpy.parameter import Parameter
    h = node
    # a mount 0.9 m off the world's camera height: only the fitted plane puts the band where it belongs
    for name, value in (('ground.camera_height_m', 2.5), ('obstacles.max_height_m', 2.0),
                        ('obstacles.min_height_m', 1.0)):
        assert h.node.set_parameters([Parameter(name, value=value)])[0].successful, name
    topic = f'{NS}/points/obstacles'
    h.subscribe(PointCloud2, topic)
    got = run_drive(h, drive, [topic], frames=1)
    assert h.node.count_subscribers(f'{NS}/free_space') == 0 and h.node.count_subscribers(f'{NS}/points/ground') == 0
    cloud = _points(got[topic][-1])
    assert len(cloud) > 100 and set(np.unique(cloud['label'])) <= OBSTACLES
    assert np.any(cloud['rgb'] != 0)                             # published clouds keep their colours
    world = World(2000)
    plane = GroundPlane.from_mount(world.scene.camera_height, -world.scene.pitch)
    xyz = np.stack([cloud['x'], cloud['y'], cloud['z']], axis=1).astype(np.float64)
    height = plane.height(xyz)
    in_band = (height >= 0.7) & (height <= 2.3)                  # [1, 2] m, with the fit's error
    assert np.mean(in_band) > 0.9, np.percentile(height, [5, 50, 95])
