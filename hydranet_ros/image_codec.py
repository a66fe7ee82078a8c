"""sensor_msgs/Image and CompressedImage <-> numpy, with cv_bridge's encoding semantics.

Message -> numpy is zero-copy where the layout allows (a view on the message's buffer); only
colour conversions (mono, YUV, BGR when an RGB copy is needed) allocate. Every malformed
message raises ImageConversionError saying what is wrong; nothing here crashes on bad input.
"""
from __future__ import annotations

import io
import sys

import cv2
import numpy as np
from PIL import Image as PILImage


class ImageConversionError(ValueError):
    """An image message that cannot be converted; the message says why."""


# encoding -> (dtype, channels), as cv_bridge / sensor_msgs/image_encodings define them.
ENCODINGS = {
    'rgb8': (np.uint8, 3), 'bgr8': (np.uint8, 3), 'rgba8': (np.uint8, 4), 'bgra8': (np.uint8, 4),
    'mono8': (np.uint8, 1), 'mono16': (np.uint16, 1), '8UC1': (np.uint8, 1), '8UC3': (np.uint8, 3),
    '16UC1': (np.uint16, 1), '32FC1': (np.float32, 1), '32FC2': (np.float32, 2),
    # packed 4:2:2, two bytes per pixel: yuv422 is UYVY, yuv422_yuy2 / yuyv are YUYV
    'yuv422': (np.uint8, 2), 'uyvy': (np.uint8, 2), 'yuv422_yuy2': (np.uint8, 2), 'yuyv': (np.uint8, 2),
}
#: Encodings the perception node accepts as camera input.
INPUT_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'yuv422', 'uyvy', 'yuv422_yuy2', 'yuyv')
_MAX_SIDE = 16384


def _layout(msg, max_side: int = _MAX_SIDE, limit_name: str = '') -> tuple:
    """(dtype, channels, height, width, step) of an Image message after checking its encoding,
    size, step and data length; ImageConversionError names the first problem."""
    enc = msg.encoding
    if enc not in ENCODINGS:
        raise ImageConversionError(f"unsupported encoding '{enc}'; supported: {sorted(ENCODINGS)}")
    dtype, channels = ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ImageConversionError(f'empty image {w}x{h}')
    if h > max_side or w > max_side:
        limit = f' ({limit_name})' if limit_name else ''
        raise ImageConversionError(f'image {w}x{h} exceeds the {max_side} pixel limit per side{limit}')
    itemsize = np.dtype(dtype).itemsize
    row_bytes = w * channels * itemsize
    if step < row_bytes:
        raise ImageConversionError(f'step {step} is smaller than width {w} x {channels} channels x '
                                   f'{itemsize} bytes = {row_bytes}')
    if len(msg.data) != step * h:
        raise ImageConversionError(f'data has {len(msg.data)} bytes, expected step {step} x height {h} = {step * h}')
    if channels == 2 and dtype == np.uint8 and w % 2:
        raise ImageConversionError(f'{enc} needs an even width, got {w}')
    return dtype, channels, h, w, step


def _view(msg, dtype, channels, h, w, step) -> np.ndarray:
    itemsize = np.dtype(dtype).itemsize
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(h, step)[:, :w * channels * itemsize]
    if itemsize > 1 and step % itemsize:
        rows = np.ascontiguousarray(rows)   # rows not aligned to the element size: copy once
    array = rows.view(dtype).reshape((h, w) if channels == 1 else (h, w, channels))
    if itemsize > 1 and bool(msg.is_bigendian) != (sys.byteorder == 'big'):
        array = array.byteswap()
    return array


def image_to_numpy(msg) -> np.ndarray:
    """The image's pixels as an array [H, W] or [H, W, C] of the encoding's dtype, viewing the
    message buffer (no copy) unless the byte order must be swapped."""
    return _view(msg, *_layout(msg))


def check_image_message(msg, max_side: int = _MAX_SIDE) -> tuple:
    """The checks a camera Image must pass (input encoding, size up to max_side, step, exact data
    length, even width for 4:2:2), touching no pixel; returns (dtype, channels, h, w, step)."""
    if msg.encoding not in INPUT_ENCODINGS:
        raise ImageConversionError(f"unsupported input encoding '{msg.encoding}'; supported: "
                                   f"{', '.join(INPUT_ENCODINGS)}")
    return _layout(msg, max_side, 'max_input_side')


def image_to_rgb(msg) -> np.ndarray:
    """A camera image (any INPUT_ENCODINGS) as HxWx3 uint8 RGB; a view when already rgb8."""
    array = _view(msg, *check_image_message(msg))
    enc = msg.encoding
    if enc == 'rgb8':
        return array
    if enc == 'bgr8':
        return array[..., ::-1]
    if enc == 'rgba8':
        return array[..., :3]
    if enc == 'bgra8':
        return array[..., 2::-1]
    if enc == 'mono8':
        return cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_YUV2RGB_UYVY if enc in ('yuv422', 'uyvy') else cv2.COLOR_YUV2RGB_YUY2
    return cv2.cvtColor(np.ascontiguousarray(array), code)


def compressed_to_rgb(msg, max_side: int = _MAX_SIDE) -> np.ndarray:
    """A sensor_msgs/CompressedImage (jpeg or png) as HxWx3 uint8 RGB, after
    check_compressed_message (so an oversized image is refused before it is decoded)."""
    check_compressed_message(msg, max_side)
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageConversionError(f"could not decode {buf.size} bytes as '{msg.format}'")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def check_compressed_message(msg, max_side: int = _MAX_SIDE) -> None:
    """Format, signature, end marker (truncation shows as a missing one) and the size in the
    header of a jpeg/png CompressedImage, up to max_side pixels per side; no pixel is decoded."""
    fmt = (msg.format or '').lower()
    if not any(k in fmt for k in ('jpeg', 'jpg', 'png')):
        raise ImageConversionError(f"unsupported compressed format '{msg.format}'; jpeg and png are supported")
    if len(msg.data) == 0:
        raise ImageConversionError('compressed image has no data')
    head, tail = bytes(msg.data[:8]), bytes(msg.data[-12:])
    if head.startswith(b'\xff\xd8'):
        if b'\xff\xd9' not in tail:
            raise ImageConversionError(f'jpeg data of {len(msg.data)} bytes has no end marker (truncated)')
    elif head.startswith(b'\x89PNG\r\n\x1a\n'):
        if b'IEND' not in tail:
            raise ImageConversionError(f'png data of {len(msg.data)} bytes has no IEND chunk (truncated)')
    else:
        raise ImageConversionError(f"data is neither jpeg nor png (starts with {head[:4].hex()}) "
                                   f"for format '{msg.format}'")
    try:
        # Pillow reads only the header here; a decompression bomb is caught before any decode.
        with PILImage.open(io.BytesIO(msg.data)) as header:
            w, h = header.size
    except PILImage.DecompressionBombError as exc:
        raise ImageConversionError(f'compressed image too large: {exc}') from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageConversionError(f'unreadable {fmt} header: {exc}') from None
    if h > max_side or w > max_side:
        raise ImageConversionError(f'image {w}x{h} exceeds the {max_side} pixel limit per side (max_input_side)')


def check_camera_info(info, image_size=None) -> None:
    """A usable pinhole CameraInfo: positive finite focal lengths, finite centre, and (when the
    image size is given) the same width and height as the image."""
    k = np.asarray(info.k, dtype=np.float64).reshape(-1)
    if k.size != 9 or not np.isfinite(k).all():
        raise ImageConversionError('camera_info K is not 9 finite numbers')
    if k[0] <= 0 or k[4] <= 0:
        raise ImageConversionError(f'camera_info K has focal lengths fx={k[0]:g}, fy={k[4]:g} (need > 0)')
    if int(info.width) <= 0 or int(info.height) <= 0:
        raise ImageConversionError(f'camera_info size {info.width}x{info.height} is empty')
    if image_size is not None and (int(info.height), int(info.width)) != tuple(image_size):
        raise ImageConversionError(f'camera_info is {info.width}x{info.height} but the image is '
                                   f'{image_size[1]}x{image_size[0]}')


def numpy_to_image(array: np.ndarray, encoding: str, header=None):
    """An array to a sensor_msgs/Image of the given encoding (one copy, into the message)."""
    from sensor_msgs.msg import Image
    if encoding not in ENCODINGS:
        raise ImageConversionError(f"unsupported encoding '{encoding}'")
    dtype, channels = ENCODINGS[encoding]
    array = np.asarray(array)
    got_channels = 1 if array.ndim == 2 else (array.shape[2] if array.ndim == 3 else -1)
    if array.dtype != dtype or got_channels != channels:
        raise ImageConversionError(f'{encoding} needs {np.dtype(dtype).name} with {channels} channel(s), '
                                   f'got {array.dtype} with shape {array.shape}')
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == 'big')
    msg.step = msg.width * channels * array.dtype.itemsize
    msg.data = np.ascontiguousarray(array).tobytes()
    return msg


def rgb_to_compressed(rgb: np.ndarray, fmt: str = 'jpeg', header=None, quality: int = 90):
    """HxWx3 RGB to a sensor_msgs/CompressedImage (for tests, tools and bag replay)."""
    from sensor_msgs.msg import CompressedImage
    ext = {'jpeg': '.jpg', 'png': '.png'}[fmt]
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if fmt == 'jpeg' else []
    ok, data = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageConversionError(f'could not encode as {fmt}')
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = fmt
    msg.data = data.tobytes()
    return msg


# --- compressed depth, in the layout of image_transport's compressed_depth plugin ---------------
#: CompressedImage.format of a 32FC1 depth image compressed the compressed_depth way.
COMPRESSED_DEPTH_FORMAT = '32FC1; compressedDepth png'
_INV_DEPTH = 0          # the plugin's compressionFormat enum: INV_DEPTH


def encode_compressed_depth(depth: np.ndarray, depth_max: float = 10.0, quantization: float = 100.0,
                            png_level: int = 1) -> bytes:
    """A 32FC1 depth image (metres) as compressed_depth data: a 12-byte header (int32 format =
    INV_DEPTH, float32 A, float32 B, little endian), then a 16-bit PNG of the quantised inverse
    depth A / z + B, with A = q (q + 1) and B = 1 - A / depth_max (the plugin's parameters
    `depth_max` and `depth_quantization`). Depths at or beyond depth_max, NaN, +-Inf and <= 0
    are stored as 0, which decoders read as NaN."""
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ImageConversionError(f'compressed depth needs a single-channel image, got shape {depth.shape}')
    if not depth_max > 0 or not quantization > 0:
        raise ValueError(f'depth_max and quantization must be > 0, got {depth_max}, {quantization}')
    a = np.float32(quantization * (quantization + 1.0))
    b = np.float32(1.0 - a / np.float32(depth_max))
    valid = np.isfinite(depth) & (depth > 0) & (depth < depth_max)
    inv = np.zeros(depth.shape, np.uint16)
    with np.errstate(divide='ignore', invalid='ignore'):
        q = a / depth[valid] + b
    inv[valid] = np.clip(q, 1, 65535).astype(np.uint16)      # truncation, as the C++ cast does
    ok, png = cv2.imencode('.png', inv, [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
    if not ok:
        raise ImageConversionError('PNG encoding of the inverse depth failed')
    header = np.array([_INV_DEPTH], '<i4').tobytes() + np.array([a, b], '<f4').tobytes()
    return header + png.tobytes()


def decode_compressed_depth(data: bytes, fmt: str = COMPRESSED_DEPTH_FORMAT) -> np.ndarray:
    """compressed_depth data back to 32FC1 metres (NaN where 0 was stored), as the plugin's
    subscriber decodes it."""
    if not fmt.startswith('32FC1') or 'compressedDepth' not in fmt:
        raise ImageConversionError(f"not a 32FC1 compressedDepth format: '{fmt}'")
    data = bytes(data)
    if len(data) <= 12:
        raise ImageConversionError(f'compressed depth data of {len(data)} bytes has no image after its header')
    a, b = np.frombuffer(data[4:12], '<f4')
    inv = cv2.imdecode(np.frombuffer(data[12:], np.uint8), cv2.IMREAD_UNCHANGED)
    if inv is None or inv.dtype != np.uint16:
        raise ImageConversionError('compressed depth payload is not a 16-bit PNG')
    out = np.full(inv.shape, np.nan, np.float32)
    nz = inv > 0
    out[nz] = a / (inv[nz].astype(np.float32) - b)
    return out
