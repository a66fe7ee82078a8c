"""The vision_msgs we build or find have upstream vision_msgs 4.1's RIHS01 type hashes.

Equal hashes are what lets our detections interoperate with every other vision_msgs user
(rosbag, RViz plugins, trackers): ROS 2 refuses to match endpoints whose hashes differ.
The expected values below are upstream's, copied as data (vision_msgs 4.1.1, Kilted).
"""
import json
from pathlib import Path

import pytest

UPSTREAM_4_1_HASHES = {
    'vision_msgs/msg/BoundingBox2D':
        'RIHS01_008eacbb0cf8f26e83795547bed013eec3675485ef386ec056d80eaaf1c1ce2f',
    'vision_msgs/msg/BoundingBox2DArray':
        'RIHS01_2464e82838009386d371b523211c21c91d74d313fcdd6788223c531d621cf691',
    'vision_msgs/msg/BoundingBox3D':
        'RIHS01_bbb73a65c163d7f9bb29009c7bde9f7faa576bd2d23299c4511d19230dab4698',
    'vision_msgs/msg/BoundingBox3DArray':
        'RIHS01_a81938db9576b10c2eecd7c5a5da3eac496efd00221b25ed051dfbc81fb56da6',
    'vision_msgs/msg/Classification':
        'RIHS01_f74db28d0eaef3afb78f48bf2161cd709a1383a0309d3454383b25be11345143',
    'vision_msgs/msg/Detection2D':
        'RIHS01_0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea',
    'vision_msgs/msg/Detection2DArray':
        'RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968',
    'vision_msgs/msg/Detection3D':
        'RIHS01_ddd703be132ab0b69d33121f1bb034132bfbb3b0ac5f9fb1516005ba1c8a265b',
    'vision_msgs/msg/Detection3DArray':
        'RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018',
    'vision_msgs/msg/LabelInfo':
        'RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783',
    'vision_msgs/msg/ObjectHypothesis':
        'RIHS01_51da43cec11c01957a64d1e05a24acd18aae7745ec30b74348ad5f6d634f7f90',
    'vision_msgs/msg/ObjectHypothesisWithPose':
        'RIHS01_41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc',
    'vision_msgs/msg/Point2D':
        'RIHS01_eab0e83f44ab4de92ceaf76dd7d0e7638f2bdd1d16ffbe16c7a136c48e407247',
    'vision_msgs/msg/Pose2D':
        'RIHS01_b0b5d1d7b4c20dd4fcde3ed1d4b289a919290572007d67a97043814db25d3648',
    'vision_msgs/msg/VisionClass':
        'RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a',
    'vision_msgs/msg/VisionInfo':
        'RIHS01_95d3116a17484ad91c9a2686e1d54890bbfc3ff6c6a2de137738c4950d45d284',
}


def _installed_hashes():
    from ament_index_python.packages import get_package_share_directory
    share = Path(get_package_share_directory('vision_msgs')) / 'msg'
    found = {}
    for path in sorted(share.glob('*.json')):
        hashes = json.loads(path.read_text())['type_hashes']
        own = hashes[0]
        found[own['type_name']] = own['hash_string']
    return found


def test_every_upstream_message_exists_with_the_same_hash():
    installed = _installed_hashes()
    assert sorted(installed) == sorted(UPSTREAM_4_1_HASHES), 'message set differs from vision_msgs 4.1'
    mismatched = {name: (installed[name], expected)
                  for name, expected in UPSTREAM_4_1_HASHES.items() if installed[name] != expected}
    assert not mismatched, f'type hashes differ from upstream: {mismatched}'


@pytest.mark.parametrize('type_name', ['vision_msgs/msg/Detection2DArray',
                                       'vision_msgs/msg/LabelInfo',
                                       'vision_msgs/msg/VisionClass'])
def test_hash_announced_over_dds_matches_upstream(ros_node, type_name):
    """What a publisher announces on the graph (what other nodes match against)."""
    from rostest_util import message_class
    topic = '/hash_check/' + type_name.split('/')[-1].lower()
    ros_node.create_publisher(message_class(type_name), topic, 1)
    infos = ros_node.get_publishers_info_by_topic(topic)
    assert len(infos) == 1
    assert str(infos[0].topic_type_hash) == UPSTREAM_4_1_HASHES[type_name]
