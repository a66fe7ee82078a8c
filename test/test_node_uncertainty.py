"""The depth uncertainty over real DDS: `depth/uncertainty` (32FC1 metres, the depth image's
header and size), calibrated against the synthetic world's exact depth, and the clouds' sigma
field with points.max_sigma."""
import numpy as np
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from hydranet_ros.image_codec import image_to_numpy
from hydranet_ros.spatial.cloud import CLOUD_SIGMA_DTYPE
from drive_harness import NS, run_drive


def test_uncertainty_image_pairs_with_depth_and_is_calibrated(node, drive):
    h = node
    wanted = {f'{NS}/depth': Image, f'{NS}/depth/uncertainty': Image}
    for topic, typ in wanted.items():
        h.subscribe(typ, topic)
    got = run_drive(h, drive, list(wanted), frames=1)
    depth_msg = got[f'{NS}/depth'][-1]
    sigma_msg = next(m for m in got[f'{NS}/depth/uncertainty'] if m.header.stamp == depth_msg.header.stamp)
    assert sigma_msg.header == depth_msg.header
    assert sigma_msg.encoding == '32FC1' and (sigma_msg.height, sigma_msg.width) == (depth_msg.height, depth_msg.width)
    sigma, depth = image_to_numpy(sigma_msg), image_to_numpy(depth_msg)
    assert np.isfinite(sigma).all() and (sigma > 0).all()
    truth = drive[0][0].depth
    valid = np.isfinite(truth) & (truth < 80)
    err = np.abs(depth - truth)[valid]
    within = (err <= 2 * sigma[valid]).mean()
    assert 0.6 < within, f'only {within:.2f} of the pixels are within 2 sigma (a Laplace has 0.86)'
    # far pixels are less certain than near ones, as their errors are larger
    near, far = valid & (truth < 10), valid & (truth > 30)
    assert np.median(sigma[far]) > 2 * np.median(sigma[near])


def test_clouds_carry_sigma_and_drop_the_uncertain_points(node, drive):
    h = node
    h.subscribe(PointCloud2, f'{NS}/points')
    h.subscribe(CameraInfo, f'{NS}/camera_info')
    cloud = run_drive(h, drive, [f'{NS}/points'], frames=1)[f'{NS}/points'][-1]
    assert [(f.name, f.offset) for f in cloud.fields][-1] == ('sigma', 20) and cloud.point_step == 24
    pts = np.frombuffer(bytes(cloud.data), CLOUD_SIGMA_DTYPE)
    assert (pts['sigma'] > 0).all()
    limit = float(np.median(pts['sigma']))
    assert h.node.set_parameters([Parameter('points.max_sigma', value=limit)])[0].successful
    h.received[f'{NS}/points'].clear()
    kept = np.frombuffer(bytes(run_drive(h, drive, [f'{NS}/points'], frames=1, sec=70)[f'{NS}/points'][-1].data),
                         CLOUD_SIGMA_DTYPE)
    assert len(kept) < 0.75 * len(pts) and (kept['sigma'] <= limit).all()
