"""Inference around the network: predictor, letterboxing, typed results (no ROS imports)."""
from hydranet_ros.inference.letterbox import Letterbox
from hydranet_ros.inference.predictor import PRECISIONS, OutOfMemory, Predictor, resolve_device
from hydranet_ros.inference.results import Detection, FlowStatus, FrameResult

__all__ = ['Letterbox', 'PRECISIONS', 'OutOfMemory', 'Predictor', 'resolve_device', 'Detection', 'FlowStatus',
           'FrameResult']
