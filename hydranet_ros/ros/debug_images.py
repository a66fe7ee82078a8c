"""The node's debug images for people: rendered only for the ones somebody watches."""
from __future__ import annotations

from hydranet_ros import visualize
from hydranet_ros.image_codec import numpy_to_image


class DebugImages:
    """Renders and publishes debug/<task> images; `publishers[(camera, task)]` are the node's
    lifecycle publishers, `colors` the segmentation palette."""

    def __init__(self, publishers: dict, colors):
        self.publishers, self.colors = publishers, colors

    def publish(self, camera: str, header, rgb, result, detections, ids=None):
        """One frame's debug images; a task without output or without a subscriber costs nothing.
        ids: the track id of each of `detections`, shown beside its label."""
        render = {
            'segmentation': lambda: visualize.segmentation_overlay(result.segmentation, self.colors, rgb),
            'depth': lambda: visualize.depth_colormap(result.depth),
            'flow': lambda: visualize.flow_to_color(result.flow),
            'detection': lambda: visualize.draw_detections(rgb, detections, ids=ids),
        }
        present = {'segmentation': result.segmentation is not None, 'depth': result.depth is not None,
                   'flow': result.flow is not None, 'detection': detections is not None}
        for task, draw in render.items():
            pub = self.publishers[(camera, task)]
            if present[task] and pub.get_subscription_count():
                pub.publish(numpy_to_image(draw(), 'rgb8', header))
