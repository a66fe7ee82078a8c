"""Frame scheduling between ROS callbacks and the inference worker (no ROS imports)."""
