"""package.xml stays right for a real ROS install: it parses, and every ROS package the Python
code imports is declared as a dependency (rosdep installs only what is declared)."""
import re

from catkin_pkg.package import parse_package

from hydranet_ros.paths import SOURCE_ROOT

ROS_PACKAGES = r'[a-z_0-9]+?_msgs|rclpy|ament_index_python|rosidl_runtime_py|launch_ros|launch'
IMPORT = re.compile(rf'^\s*(?:from|import)\s+({ROS_PACKAGES})\b', re.M)


def test_every_imported_ros_package_is_declared():
    package = parse_package(str(SOURCE_ROOT / 'package.xml'))
    declared = {d.name for d in package.build_depends + package.exec_depends + package.build_export_depends}
    imported = set()
    for path in [*(SOURCE_ROOT / 'hydranet_ros').rglob('*.py'), *(SOURCE_ROOT / 'launch').glob('*.py')]:
        imported |= set(IMPORT.findall(path.read_text()))
    missing = sorted(imported - declared)
    assert imported and not missing, f'imported but not in package.xml: {missing}'


def test_pytest_is_one_that_launch_testing_and_launch_pytest_accept():
    """Every real ROS install has launch_testing on the Python path, and pytest loads its plugin
    at start-up: pytest 9 rejects the plugin's hook (the whole suite fails to start) and
    launch_pytest fails with pytest >= 8.4 (ros2/launch#979). The pin must stay in between."""
    lines = [line.split('#')[0].strip() for line in (SOURCE_ROOT / 'requirements.txt').read_text().splitlines()]
    pins = dict(line.split('==') for line in lines if '==' in line)
    version = tuple(int(part) for part in pins['pytest'].split('.')[:2])
    assert (8, 0) <= version < (8, 4), f'pytest=={pins["pytest"]} breaks launch_testing / launch_pytest'
