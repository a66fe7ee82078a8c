"""Colour images for people (ROS-free)."""
import numpy as np

from hydranet_ros import visualize


def test_palette_covers_every_uint8_class_id_and_greys_the_unknown():
    lut = visualize.palette([[255, 0, 0], [0, 300, -5]])
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert lut[0].tolist() == [255, 0, 0] and lut[1].tolist() == [0, 255, 0]     # clipped to 0..255
    assert (lut[2:] == 128).all()


def test_segmentation_overlay_colours_each_class_and_blends_over_the_image():
    seg = np.array([[0, 1], [7, 0]], np.uint8)
    colored = visualize.segmentation_overlay(seg, [[10, 20, 30], [40, 50, 60]])
    assert colored[0, 0].tolist() == [10, 20, 30] and colored[0, 1].tolist() == [40, 50, 60]
    assert colored[1, 0].tolist() == [128, 128, 128]
    blended = visualize.segmentation_overlay(seg, [[10, 20, 30], [40, 50, 60]], np.zeros((4, 4, 3), np.uint8))
    assert blended.shape == (2, 2, 3) and blended[0, 0].tolist() == [5, 10, 15]
