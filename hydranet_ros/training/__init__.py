"""Multi-task training of the HydraNet: datasets, targets, losses, balancing, the trainer (no ROS)."""
