"""3D from the aligned dense outputs (no ROS): semantic point clouds, 3D boxes, flow-guided tracks."""
from hydranet_ros.spatial.cloud import Intrinsics, SemanticCloud, semantic_cloud
from hydranet_ros.spatial.objects3d import Object3D, lift_detections
from hydranet_ros.spatial.tracking import FlowTracker

__all__ = ['Intrinsics', 'SemanticCloud', 'semantic_cloud', 'Object3D', 'lift_detections', 'FlowTracker']
