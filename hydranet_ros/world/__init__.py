"""The synthetic driving world: procedural scenes with exact labels for all four tasks (no ROS)."""
from hydranet_ros.world.camera import PinholeCamera
from hydranet_ros.world.classes import DETECTION_CLASSES, IGNORE, SEGMENTATION_CLASSES
from hydranet_ros.world.render import BoxLabel, Frame, World

__all__ = ['PinholeCamera', 'DETECTION_CLASSES', 'IGNORE', 'SEGMENTATION_CLASSES', 'BoxLabel', 'Frame', 'World']
