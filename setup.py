"""ROS-free install of the hydranet_ros core: ``pip install .`` (metadata lives in setup.cfg).

On a ROS 2 machine the package is built by colcon through CMakeLists.txt instead, which also
generates the message interfaces in msg/.
"""
from setuptools import setup

setup()
