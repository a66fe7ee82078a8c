"""Input camera_info in, the dense outputs' camera_info out: checked at receipt and per frame."""
from __future__ import annotations

from hydranet_ros.image_codec import ImageConversionError, check_camera_info
from hydranet_ros.ros import messages
from hydranet_ros.spatial.cloud import uses_projection


class CameraInfoRelay:
    """Keeps each camera's latest valid camera_info and scales it to the outputs' size."""

    def __init__(self):
        self._latest = {}
        #: cameras whose camera_info has no P (all zeros): K stands in; the node says so once
        self.k_only: set[str] = set()

    def take(self, camera: str, info) -> ImageConversionError | None:
        """Store a received camera_info; the problem if it is malformed (then it is not kept)."""
        try:
            check_camera_info(info)
        except ImageConversionError as exc:
            return exc
        self._latest[camera] = info
        if uses_projection(info.p):
            self.k_only.discard(camera)
        else:
            self.k_only.add(camera)
        return None

    def for_outputs(self, camera: str, header, input_size, dense_size):
        """(camera_info for outputs of dense_size, or None; the problem, or None). A camera_info
        whose size is not the image's is dropped (counted once; a matching one replaces it)."""
        info = self._latest.get(camera)
        if info is None or dense_size is None:
            return None, None
        try:
            check_camera_info(info, input_size)
        except ImageConversionError as exc:
            self._latest.pop(camera, None)
            return None, exc
        return messages.scaled_camera_info(info, header, dense_size), None

    def focal_px(self, camera: str, image_size) -> float | None:
        """The rectified image's horizontal focal length (P[0]; K[0] when P is all zeros) when
        the camera's latest camera_info fits an image of image_size (height, width); None
        otherwise (none yet, or another size). The input is a rectified image (image_rect), as
        for depth_image_proc: K belongs to the raw, distorted image."""
        info = self._latest.get(camera)
        if info is None:
            return None
        try:
            check_camera_info(info, image_size)
        except ImageConversionError:
            return None
        return float(info.p[0]) if uses_projection(info.p) else float(info.k[0])

    def has(self, camera: str) -> bool:
        return camera in self._latest
