"""Typed per-image results of the predictor (numpy, no torch or ROS)."""
from __future__ import annotations

import enum

from dataclasses import dataclass, field

import numpy as np




class FlowStatus(enum.Enum):
    """Why a frame has flow or not (FrameResult.flow_status; the detail string says more)."""
    OK = 'ok'
    NOT_REQUESTED = 'not requested'
    NO_PREVIOUS_FRAME = 'no previous frame'
    SIZE_CHANGED = 'image size changed'
    TIME_WENT_BACKWARDS = 'time went backwards or stood still'
    GAP_TOO_LONG = 'gap exceeds the limit'

@dataclass
class Detection:
    """One object: box corners in pixels of the original image, class and confidence."""

    x1: float
    y1: float
    x2: float
    y2: float
    class_id: int
    class_name: str
    score: float

    @property
    def center(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2

    @property
    def size(self) -> tuple[float, float]:
        return self.x2 - self.x1, self.y2 - self.y1


@dataclass
class FrameResult:
    """Everything the network said about one image, in that image's own pixels.

    A task that was not requested is None. flow is None also when there was no usable
    previous frame; flow_status then says why (FlowStatus.OK otherwise), flow_status_detail
    with the numbers.
    """

    image_size: tuple[int, int]                       # (height, width) of the input image
    segmentation: np.ndarray | None = None            # [H, W] uint8 class ids
    depth: np.ndarray | None = None                   # [H, W] float32 metres
    depth_uncertainty: np.ndarray | None = None       # [H, W] float32 metres: Laplace scale of depth's error
    instances: np.ndarray | None = None               # [H, W] uint16 instance ids, 0 = none (thing classes)
    flow: np.ndarray | None = None                    # [h, w, 2] float32 (u, v) pixels of its grid
    flow_previous_stamp_ns: int | None = None         # stamp of the frame flow starts from
    flow_status: FlowStatus = FlowStatus.NOT_REQUESTED
    flow_status_detail: str = ''
    detections: list[Detection] | None = None
    stamp_ns: int | None = None                       # the image's stamp, integer nanoseconds
    stream: str = 'default'
    timings_ms: dict = field(default_factory=dict)    # preprocess, inference, postprocess (batch)
    depth_scale: float | None = None                  # depth multiplied by this for the actual camera
                                                      # (focal ratio); None: no focal length given
