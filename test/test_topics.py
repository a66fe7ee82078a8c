"""The topic table: names resolved like rcl, image_transport's camera_info pairing, and the docs."""
import re
from pathlib import Path

import pytest

from hydranet_ros import TASKS, topics

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize('namespace,name,expected', [
    ('hydranet', 'depth', '/hydranet/depth'),
    ('/perception', 'depth', '/perception/depth'),          # launch's namespace:=/perception
    ('/robot/perception/', 'stats', '/robot/perception/stats'),
    ('', 'depth', '/depth'),
    ('/', 'input/image', '/input/image'),
    ('hydranet', '/camera/image_raw', '/camera/image_raw'),  # absolute names stay
])
def test_names_resolve_in_any_namespace_spelling(namespace, name, expected):
    assert topics.absolute(namespace, name) == expected


@pytest.mark.parametrize('image,info', [
    ('/camera/image_raw', '/camera/camera_info'),
    ('/hydranet/depth', '/hydranet/camera_info'),
    ('input/image', 'input/camera_info'),
    ('image', 'camera_info'),
    ('/image', '/camera_info'),
])
def test_sibling_camera_info_is_image_transports(image, info):
    assert topics.sibling_camera_info(image) == info


def test_dense_outputs_and_their_camera_info_are_siblings_and_inputs_are_apart():
    for task in ('segmentation', 'depth'):
        assert topics.sibling_camera_info(topics.TASK_TOPICS[task]) == topics.CAMERA_INFO
    assert topics.sibling_camera_info(topics.INPUT_IMAGE) == topics.INPUT_CAMERA_INFO != topics.CAMERA_INFO
    assert set(topics.TASK_TOPICS) == set(TASKS) == set(topics.DEBUG_TOPICS)


def test_docs_list_every_topic_of_the_table():
    docs = (ROOT / 'docs' / 'NODE.md').read_text()
    listed = set(re.findall(r'^\| `([^`]+)` \|', docs, re.M))
    names = {topics.INPUT_IMAGE, topics.INPUT_COMPRESSED, topics.INPUT_CAMERA_INFO, topics.CAMERA_INFO,
             topics.STATS, topics.DIAGNOSTICS, *topics.TASK_TOPICS.values(), *topics.DEBUG_TOPICS.values(),
             *topics.LABEL_INFO.values()}
    assert names <= listed, f'docs/NODE.md does not list {sorted(names - listed)}'
    assert not {'image', 'depth/camera_info'} & listed, 'docs/NODE.md lists a topic the node no longer has'


def test_rviz_and_foxglove_views_name_the_nodes_topics():
    """The shipped views subscribe to topics the node publishes (under the default namespace),
    with the display types that read them."""
    import json

    import yaml

    from hydranet_ros import topics
    from hydranet_ros.paths import SOURCE_ROOT
    published = {topics.absolute(topics.NODE_NAMESPACE, n) for n in (
        *topics.TASK_TOPICS.values(), *topics.DEBUG_TOPICS.values(), *topics.DERIVED_NEEDS, topics.STATS)}
    rviz = yaml.safe_load((SOURCE_ROOT / 'config' / 'hydranet.rviz').read_text())
    displays = {d['Topic']['Value']: d for d in rviz['Visualization Manager']['Displays'] if 'Topic' in d}
    assert displays['/hydranet/points']['Class'] == 'rviz_default_plugins/PointCloud2'
    assert displays['/hydranet/points']['Color Transformer'] == 'RGB8'
    assert displays['/hydranet/detections_3d/markers']['Class'] == 'rviz_default_plugins/MarkerArray'
    assert displays['/hydranet/free_space']['Class'] == 'rviz_default_plugins/Map'
    assert displays['/hydranet/points/obstacles']['Class'] == 'rviz_default_plugins/PointCloud2'
    rviz_topics = {d['Topic']['Value'] for d in rviz['Visualization Manager']['Displays'] if 'Topic' in d}
    assert rviz_topics <= published, rviz_topics - published
    fox = json.loads((SOURCE_ROOT / 'config' / 'hydranet.foxglove.json').read_text())
    panels = fox['configById']
    fox_topics = set(panels['3D!hydranet']['topics']) | {p['imageMode']['imageTopic'] for k, p in panels.items()
                                                         if k.startswith('Image!')}
    fox_topics |= {p['value'].split('.')[0] for p in panels['Plot!latency']['paths']}
    assert fox_topics <= published, fox_topics - published

    def leaves(node):
        return [node] if isinstance(node, str) else leaves(node['first']) + leaves(node['second'])
    assert sorted(leaves(fox['layout'])) == sorted(panels)


def test_nav2_costmap_config_marks_with_obstacles_and_clears_with_ground():
    import yaml

    from hydranet_ros import topics
    from hydranet_ros.paths import SOURCE_ROOT
    cfg = yaml.safe_load((SOURCE_ROOT / 'config' / 'nav2_costmap_hydranet.yaml').read_text())
    layer = cfg['local_costmap']['local_costmap']['ros__parameters']['hydranet_obstacle_layer']
    assert layer['plugin'] == 'nav2_costmap_2d::ObstacleLayer'
    sources = {name: layer[name] for name in layer['observation_sources'].split()}
    by_topic = {s['topic']: s for s in sources.values()}
    obstacles = by_topic[topics.absolute(topics.NODE_NAMESPACE, topics.POINTS_OBSTACLES)]
    ground = by_topic[topics.absolute(topics.NODE_NAMESPACE, topics.POINTS_GROUND)]
    assert obstacles['marking'] and not obstacles['clearing'] and obstacles['data_type'] == 'PointCloud2'
    assert ground['clearing'] and not ground['marking'] and ground['data_type'] == 'PointCloud2'
    assert ground['min_obstacle_height'] < 0 < ground['max_obstacle_height'], 'ground points (height ~0) kept'
    assert ground['raytrace_max_range'] >= obstacles['obstacle_max_range']
