"""rosbag2 bags without a ROS install: read, write, make synthetic drives, evaluate (rosbags).

Everything here is ROS-free (the rosbags library reads and writes rosbag2 bags, sqlite3 and
MCAP, and serializes CDR itself). The tools that talk to a live ROS graph, record and play,
are in ``hydranet_ros.ros``.
"""
from hydranet_ros.bag.storage import BagError, BagWriter, open_reader  # noqa: F401
from hydranet_ros.bag.types import typestore  # noqa: F401
