"""Image message <-> numpy conversions for every supported encoding (cv_bridge semantics)."""
import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from rostest_util import png_claiming_size

from hydranet_ros.image_codec import (ImageConversionError, check_compressed_message, compressed_to_rgb,
                                      image_to_numpy, image_to_rgb, numpy_to_image, rgb_to_compressed)

RGB = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)


@pytest.mark.parametrize('encoding,array,expected_rgb', [
    ('rgb8', RGB, RGB),
    ('bgr8', np.ascontiguousarray(RGB[..., ::-1]), RGB),
    ('rgba8', np.dstack([RGB, np.full(RGB.shape[:2], 7, np.uint8)]), RGB),
    ('bgra8', np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 7, np.uint8)]), RGB),
    ('mono8', RGB[..., 0], np.dstack([RGB[..., 0]] * 3)),
])
def test_camera_encodings_to_rgb(encoding, array, expected_rgb):
    msg = numpy_to_image(np.ascontiguousarray(array), encoding)
    assert msg.step == array.shape[1] * (array.shape[2] if array.ndim == 3 else 1)
    np.testing.assert_array_equal(image_to_rgb(msg), expected_rgb)
    np.testing.assert_array_equal(image_to_numpy(msg), array)


@pytest.mark.parametrize('encoding', ['yuv422', 'yuyv'])
def test_packed_yuv422(encoding):
    # Build a flat-colour 4:2:2 image by hand: every pixel Y=120, U=100, V=160.
    h, w = 4, 6
    y, u, v = 120, 100, 160
    pairs = np.array([u, y, v, y] if encoding == 'yuv422' else [y, u, y, v], np.uint8)
    packed = np.tile(pairs, (h, w // 2)).reshape(h, w, 2)
    msg = numpy_to_image(packed, encoding)
    rgb = image_to_rgb(msg)
    # ITU-R BT.601 studio range, as cameras' 4:2:2 output and cv_bridge use it.
    c, d, e = 1.164 * (y - 16), u - 128, v - 128
    expect = np.clip(np.round([c + 1.596 * e, c - 0.392 * d - 0.813 * e, c + 2.017 * d]), 0, 255)
    assert rgb.shape == (h, w, 3)
    assert np.abs(rgb.astype(int) - expect.astype(int)).max() <= 2


def test_rgb8_is_a_view_of_the_message_buffer():
    msg = numpy_to_image(RGB, 'rgb8')
    arr = image_to_numpy(msg)
    assert np.shares_memory(arr, np.frombuffer(msg.data, np.uint8))


def test_padded_rows_are_respected():
    msg = Image(height=2, width=3, encoding='rgb8', step=12)   # 9 bytes of pixels + 3 padding
    rows = np.arange(24, dtype=np.uint8)
    msg.data = rows.tobytes()
    out = image_to_rgb(msg)
    np.testing.assert_array_equal(out[1, 0], [12, 13, 14])


def test_float_outputs_round_trip_and_big_endian():
    depth = np.array([[1.5, np.nan], [np.inf, -np.inf]], np.float32)
    msg = numpy_to_image(depth, '32FC1')
    np.testing.assert_array_equal(image_to_numpy(msg), depth)
    flow = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    np.testing.assert_array_equal(image_to_numpy(numpy_to_image(flow, '32FC2')), flow)
    be = Image(height=1, width=2, encoding='32FC1', step=8, is_bigendian=1)
    be.data = np.array([2.5, -1.0], '>f4').tobytes()
    np.testing.assert_array_equal(image_to_numpy(be), [[2.5, -1.0]])


@pytest.mark.parametrize('mutate,match', [
    (lambda m: setattr(m, 'encoding', 'bayer_rggb8'), 'unsupported'),
    (lambda m: setattr(m, 'data', bytes(5)), 'expected step'),
    (lambda m: setattr(m, 'step', 3), 'smaller than width'),
    (lambda m: setattr(m, 'width', 0), 'empty image'),
    (lambda m: setattr(m, 'height', 20000), 'pixel limit'),
    (lambda m: setattr(m, 'data', bytes(m.data) + b'xx'), 'expected step'),
    (lambda m: (setattr(m, 'encoding', 'yuv422'), setattr(m, 'width', 5), setattr(m, 'step', 10),
                setattr(m, 'data', bytes(10 * m.height))), 'even width'),
])
def test_malformed_messages_raise_clear_errors(mutate, match):
    msg = numpy_to_image(RGB, 'rgb8')
    mutate(msg)
    with pytest.raises(ImageConversionError, match=match):
        image_to_rgb(msg)


def test_wrong_array_for_encoding():
    with pytest.raises(ImageConversionError, match='32FC1 needs float32'):
        numpy_to_image(RGB, '32FC1')


def test_compressed_jpeg_png_and_garbage():
    big = cv2.resize(RGB, (80, 60), interpolation=cv2.INTER_NEAREST)
    png = compressed_to_rgb(rgb_to_compressed(big, 'png'))
    np.testing.assert_array_equal(png, big)                     # lossless
    jpg = compressed_to_rgb(rgb_to_compressed(big, 'jpeg', quality=95))
    assert jpg.shape == big.shape and np.abs(jpg.astype(int) - big).mean() < 20
    with pytest.raises(ImageConversionError, match='no end marker'):
        compressed_to_rgb(CompressedImage(format='jpeg', data=b'\xff\xd8garbage'))
    with pytest.raises(ImageConversionError, match='unreadable jpeg header'):
        compressed_to_rgb(CompressedImage(format='jpeg', data=b'\xff\xd8garbage\xff\xd9'))
    with pytest.raises(ImageConversionError, match='unsupported compressed format'):
        compressed_to_rgb(CompressedImage(format='tiff', data=b'1234'))


def test_compressed_size_is_checked_from_the_header_before_decoding():
    big = cv2.resize(RGB, (80, 60), interpolation=cv2.INTER_NEAREST)
    for fmt in ('png', 'jpeg'):
        msg = rgb_to_compressed(big, fmt)
        check_compressed_message(msg, max_side=80)
        with pytest.raises(ImageConversionError, match=r'image 80x60 exceeds the 64 pixel limit.*max_input_side'):
            compressed_to_rgb(msg, max_side=64)
    # 60000 x 60000 claimed by 100 bytes: refused from the header, nothing is allocated
    bomb = CompressedImage(format='png', data=png_claiming_size(60000, 60000))
    with pytest.raises(ImageConversionError, match='too large|exceeds'):
        check_compressed_message(bomb, max_side=8192)
    with pytest.raises(ImageConversionError, match='exceeds the 8192 pixel limit'):
        check_compressed_message(CompressedImage(format='png', data=png_claiming_size(9000, 20)), max_side=8192)
    broken = bytearray(png_claiming_size(40, 20))
    broken[20] ^= 0xFF                               # header corrupted (CRC no longer matches)
    with pytest.raises(ImageConversionError, match='unreadable png header'):
        check_compressed_message(CompressedImage(format='png', data=bytes(broken)))


def test_depth_message_limits_leave_the_callers_array_intact():
    from hydranet_ros.ros.messages import depth_image
    depth = np.array([[0.5, 3.0, 90.0]], np.float32)
    limited = image_to_numpy(depth_image(None, depth, min_m=1.0, max_m=80.0))
    assert np.isneginf(limited[0, 0]) and limited[0, 1] == 3.0 and np.isposinf(limited[0, 2])
    np.testing.assert_array_equal(depth, [[0.5, 3.0, 90.0]])
    np.testing.assert_array_equal(image_to_numpy(depth_image(None, depth)), depth)
