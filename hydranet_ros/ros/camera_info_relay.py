"""Input camera_info in, the dense outputs' camera_info out: checked at receipt and per frame."""
from __future__ import annotations

from hydranet_ros.image_codec import ImageConversionError, check_camera_info
from hydranet_ros.ros import messages


class CameraInfoRelay:
    """Keeps each camera's latest valid camera_info and scales it to the outputs' size."""

    def __init__(self):
        self._latest = {}

    def take(self, camera: str, info) -> ImageConversionError | None:
        """Store a received camera_info; the problem if it is malformed (then it is not kept)."""
        try:
            check_camera_info(info)
        except ImageConversionError as exc:
            return exc
        self._latest[camera] = info
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
        """The camera's horizontal focal length (K[0]) when its latest camera_info fits an image
        of image_size (height, width); None otherwise (none yet, or another size)."""
        info = self._latest.get(camera)
        if info is None:
            return None
        try:
            check_camera_info(info, image_size)
        except ImageConversionError:
            return None
        return float(info.k[0])

    def has(self, camera: str) -> bool:
        return camera in self._latest
