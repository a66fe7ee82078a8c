"""The HydraNet model: encoder, shared decoder, task heads, checkpoints (no ROS imports)."""
from hydranet_ros.model.config import HydraNetConfig, check_tasks
from hydranet_ros.model.detection_decode import DecodedDetections, decode_detections
from hydranet_ros.model.flow_ops import local_correlation, resize_flow
from hydranet_ros.model.hydranet import FLOW_FEATURES, MIN_INPUT_SIZE, HydraNet

__all__ = ['HydraNetConfig', 'check_tasks', 'DecodedDetections', 'decode_detections',
           'local_correlation', 'resize_flow', 'FLOW_FEATURES', 'MIN_INPUT_SIZE', 'HydraNet']
