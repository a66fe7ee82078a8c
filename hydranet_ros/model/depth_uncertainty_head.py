"""Depth uncertainty head: the Laplace scale b (metres) of the depth head's error per pixel.

Trained on the network's own depth error by negative log-likelihood, |d - d_hat| / b + log b
(training/uncertainty.py), so P(|error| <= b) = 1 - 1/e (63%) and P(|error| <= 2b) = 86% where
it is calibrated. The same bounded, log-squashed map as the depth head, over other bounds.
"""
from hydranet_ros.model.depth_head import DepthHead

#: the bounds of the predicted scale (metres)
SCALE_MIN, SCALE_MAX = 0.01, 50.0


class DepthUncertaintyHead(DepthHead):
    """Laplace scale b of the depth error in metres, within [SCALE_MIN, SCALE_MAX], at the input
    resolution (metric for the training camera, as depth is: the Predictor scales both alike)."""

    def __init__(self, channels: int):
        super().__init__(channels, SCALE_MIN, SCALE_MAX)
