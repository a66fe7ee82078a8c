"""The core (model, inference, ...) imports no rclpy and no message packages."""
import subprocess
import sys

CORE_MODULES = ['hydranet_ros.model', 'hydranet_ros.model.checkpoint', 'hydranet_ros.model.onnx_export',
                'hydranet_ros.model.summary', 'hydranet_ros.inference', 'hydranet_ros.world',
                'hydranet_ros.training.trainer', 'hydranet_ros.training.train', 'hydranet_ros.metrics',
                'hydranet_ros.visualize', 'hydranet_ros.image_codec', 'hydranet_ros.bag',
                'hydranet_ros.bag.make_bag', 'hydranet_ros.bag.evaluate', 'hydranet_ros.pipeline.latest_frames',
                'hydranet_ros.spatial', 'hydranet_ros.spatial.evaluation', 'hydranet_ros.demo']
ROS_PREFIXES = ('rclpy', 'rosidl', 'sensor_msgs', 'std_msgs', 'vision_msgs', 'visualization_msgs', 'hydranet_ros.msg',
                'hydranet_ros.ros')


def test_core_modules_import_without_ros():
    code = ('import sys\n'
            f'for m in {CORE_MODULES!r}: __import__(m)\n'
            f'bad = sorted(m for m in sys.modules if m.startswith({ROS_PREFIXES!r}))\n'
            'print(",".join(bad))\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '', f'ROS modules imported by the core: {out.stdout.strip()}'
