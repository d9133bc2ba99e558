"""Image conversion rules (module docstring of runtime/image.py)."""
import cv2
import numpy as np
import pytest

from pslg.runtime.errors import ImageError
from pslg.runtime.image import load_image, to_rgb8


def test_rgb_uint8_passes_through_unchanged():
    img = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb8(img), img)


def test_gray_and_rgba_are_converted():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert to_rgb8(gray).shape == (3, 4, 3) and (to_rgb8(gray)[..., 1] == gray).all()
    rgba = np.dstack([np.full((2, 2, 3), 9, np.uint8), np.zeros((2, 2), np.uint8)])
    np.testing.assert_array_equal(to_rgb8(rgba), np.full((2, 2, 3), 9, np.uint8))


def test_uint16_scaled_by_257():
    img = np.array([[[0, 257, 65535]]], np.uint16)
    np.testing.assert_array_equal(to_rgb8(img), [[[0, 1, 255]]])


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 3), bool),
                                 np.zeros((4, 4, 2), np.uint8), np.zeros((0, 4, 3), np.uint8),
                                 np.zeros((2, 2, 2, 3), np.uint8), [[1, 2]]])
def test_ambiguous_images_are_refused(bad):
    with pytest.raises(ImageError):
        to_rgb8(bad)


def test_load_reads_rgb_order_16bit_and_refuses_junk(tmp_path):
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    assert (load_image(tmp_path / "red.png")[..., 0] == 200).all()
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((2, 2), 65535, np.uint16))
    assert (load_image(tmp_path / "deep.png") == 255).all()
    (tmp_path / "junk.png").write_bytes(b"not an image")
    for path in (tmp_path / "junk.png", tmp_path / "missing.png"):
        with pytest.raises(ImageError):
            load_image(path)
