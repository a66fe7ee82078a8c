"""package.xml stays right for a real ROS install: it parses, and every ROS package the Python
code imports is declared as a dependency (rosdep installs only what is declared)."""
import re

from catkin_pkg.package import parse_package

from hydranet_ros.paths import SOURCE_ROOT

IMPORT = re.compile(r'^\s*(?:from|import)\s+([a-z_0-9]+?_msgs|rclpy|ament_index_python|rosidl_runtime_py)\b', re.M)


def test_every_imported_ros_package_is_declared():
    package = parse_package(str(SOURCE_ROOT / 'package.xml'))
    declared = {d.name for d in package.build_depends + package.exec_depends + package.build_export_depends}
    imported = set()
    for path in (SOURCE_ROOT / 'hydranet_ros').rglob('*.py'):
        imported |= set(IMPORT.findall(path.read_text()))
    missing = sorted(imported - declared)
    assert imported and not missing, f'imported but not in package.xml: {missing}'
