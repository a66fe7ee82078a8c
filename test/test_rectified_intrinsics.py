"""P, not K, gives a rectified image's intrinsics (sensor_msgs/CameraInfo's definitions)."""
import pytest
from sensor_msgs.msg import CameraInfo

from hydranet_ros.ros.camera_info_relay import CameraInfoRelay
from hydranet_ros.spatial.cloud import Intrinsics

K = [959.8, 0.0, 696.0, 0.0, 956.9, 224.2, 0.0, 0.0, 1.0]
P = [721.5, 0.0, 609.6, 44.9, 0.0, 721.5, 172.9, 0.2, 0.0, 0.0, 1.0, 0.003]


def test_p_gives_the_intrinsics_where_it_is_set_else_k():
    rect = Intrinsics.from_camera_info(K, P, 375, 1242)
    assert (rect.fx, rect.fy, rect.cx, rect.cy) == (721.5, 721.5, 609.6, 172.9)
    raw = Intrinsics.from_camera_info(K, [0.0] * 12, 375, 1242)
    assert (raw.fx, raw.fy, raw.cx, raw.cy) == (959.8, 956.9, 696.0, 224.2)
    with pytest.raises(ValueError):
        Intrinsics.from_camera_info([0.0] * 9, [0.0] * 12, 375, 1242)


def test_the_relay_scales_depth_by_p_and_notes_a_camera_without_p():
    relay = CameraInfoRelay()
    assert relay.take('', CameraInfo(width=1242, height=375, k=K, p=P)) is None
    assert relay.focal_px('', (375, 1242)) == 721.5 and '' not in relay.k_only
    assert relay.take('left', CameraInfo(width=1242, height=375, k=K)) is None
    assert relay.focal_px('left', (375, 1242)) == 959.8 and 'left' in relay.k_only
    assert relay.focal_px('', (480, 640)) is None
