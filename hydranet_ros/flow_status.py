"""Why a frame has optical flow or not: one enum for the flow cache, the predictor and the node.

A module of its own (no torch, no ROS) so the model layer and the typed results can share it.
"""
import enum


class FlowStatus(enum.Enum):
    """Why a frame has flow or not (FrameResult.flow_status; the detail string says more)."""
    OK = 'ok'
    NOT_REQUESTED = 'not requested'
    NO_PREVIOUS_FRAME = 'no previous frame'
    SIZE_CHANGED = 'image size changed'
    TIME_WENT_BACKWARDS = 'time went backwards or stood still'
    GAP_TOO_LONG = 'gap exceeds the limit'
