"""The thin ROS skin: parameters, message conversions, the lifecycle node, bag tools."""
