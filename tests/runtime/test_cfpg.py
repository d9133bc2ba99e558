"""CFPG: the point on real tree crowns and boats, each fallback, large boxes analysed downscaled, bad input."""
import cv2
import numpy as np
import pytest

from pslg.runtime.cfpg import FALLBACKS, MAX_PIXELS, foreground_point
from pslg.runtime.errors import BoxError, ImageError
from pslg.runtime.image import load_image
from tests.kernel_cases import DATA, big_case, boxes, real_cases


def crop_xy(result):
    """The point in the crop pixels the diagnostics are drawn in."""
    x0, y0 = result.window[:2]
    return int((result.point[0] - x0) * result.scale), int((result.point[1] - y0) * result.scale)


def inside_box(point, box):
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def test_point_lies_in_its_region_on_real_objects():
    seen = set()
    for _, image, box in real_cases(crowns=12):
        result = foreground_point(image, box)
        assert inside_box(result.point, result.box)
        assert result.fallback is None or result.fallback in FALLBACKS
        seen.add(result.fallback)
        if result.chosen:
            cx, cy = crop_xy(result)
            assert result.regions[cy, cx] == result.chosen
            assert result.labels[cy, cx] == result.foreground
            assert 0 < result.convexity[result.chosen - 1] <= 1
        if result.fallback is None:
            assert result.areas[result.chosen - 1] >= 0.05 * result.regions.size
    assert None in seen                      # the main path runs on real data, not only fallbacks


def test_deterministic_for_a_seed():
    image = load_image(DATA / "osbs_029.png")
    for box in boxes("osbs_029")[:5]:
        a, b = foreground_point(image, box, seed=4), foreground_point(image, box, seed=4)
        assert a.point == b.point
        np.testing.assert_array_equal(a.regions, b.regions)


def test_boat_point_is_on_the_bright_hull():
    image = load_image(DATA / "marina.png")
    for box in boxes("marina"):
        result = foreground_point(image, box)
        x, y = int(result.point[0]), int(result.point[1])
        assert result.centres[result.foreground].mean() > 100          # the white boat, not the water
        assert image[y, x].mean() > 60


def textured(shape, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(40, 6, shape + (3,)), 0, 255).astype(np.uint8)


def test_fallback_centroid_outside_region():
    image = textured((120, 120))
    ring = np.zeros((120, 120), np.uint8)
    cv2.ellipse(ring, (60, 60), (40, 40), 0, 30, 330, 1, thickness=14)      # a thick C: centroid in the gap
    image[ring > 0] = (230, 230, 225)
    result = foreground_point(image, (10, 10, 110, 110))
    assert result.fallback == "centroid_outside_region"
    cx, cy = crop_xy(result)
    assert result.regions[cy, cx] == result.chosen
    assert ring[int(result.point[1]), int(result.point[0])]


def test_fallback_no_region_above_area():
    image = textured((100, 100))
    for y in range(10, 95, 15):
        for x in range(10, 95, 15):
            cv2.circle(image, (x, y), 3, (240, 240, 240), -1)                  # 36 dots, each < 5 % of the box
    result = foreground_point(image, (0, 0, 100, 100))
    assert result.fallback == "no_region_above_area"
    cx, cy = crop_xy(result)
    assert result.regions[cy, cx] == result.chosen
    assert image[int(result.point[1]), int(result.point[0])].mean() > 200


def test_fallback_no_region_on_a_uniform_crop():
    image = np.full((50, 60, 3), 90, np.uint8)
    result = foreground_point(image, (10.0, 5.0, 40.0, 25.0))
    assert result.fallback == "no_region" and result.chosen == 0
    assert result.point == (25.0, 15.0)


@pytest.mark.parametrize("size", [200, 400, 700])
def test_large_boxes_are_analysed_on_a_small_crop(size):
    """Above MAX_PIXELS the crop is downscaled: the point stays in its region there (and in the
    upscaled region at image resolution), inside the box, and the same for a seed."""
    image, box, _ = big_case(size)
    result = foreground_point(image, box, seed=3)
    assert result.scale < 1 and result.regions.size <= MAX_PIXELS
    assert inside_box(result.point, result.box)
    if result.chosen:
        cx, cy = crop_xy(result)
        assert result.regions[cy, cx] == result.chosen
        region = cv2.resize((result.regions == result.chosen).astype(np.uint8),
                            (result.window[2] - result.window[0], result.window[3] - result.window[1]),
                            interpolation=cv2.INTER_NEAREST)
        assert region[int(result.point[1]) - result.window[1], int(result.point[0]) - result.window[0]]
    again = foreground_point(image, box, seed=3)
    assert again.point == result.point
    np.testing.assert_array_equal(again.regions, result.regions)


def test_small_boxes_are_analysed_at_full_resolution():
    for _, image, box in real_cases(crowns=3):
        result = foreground_point(image, box)
        assert result.scale == 1.0 and result.regions.shape == (result.window[3] - result.window[1],
                                                                result.window[2] - result.window[0])


def test_box_clipping_and_bad_boxes():
    image = load_image(DATA / "soap_061.png")
    result = foreground_point(image, (380.0, 380.0, 450.0, 460.0))
    assert result.box == (380.0, 380.0, 400.0, 400.0) and result.warnings
    assert inside_box(result.point, result.box)
    fractional = foreground_point(image, (100.7, 100.2, 140.3, 139.9))
    assert inside_box(fractional.point, fractional.box)
    for bad in [(10, 10, 10, 20), (10, 10, 20, 10), (30, 10, 20, 20), (500, 500, 600, 600), (0, 0, np.nan, 4), (1, 2)]:
        with pytest.raises(BoxError):
            foreground_point(image, bad)
    with pytest.raises(ImageError):
        foreground_point(image.astype(np.float32), (0, 0, 50, 50))


def test_one_pixel_image():
    one = np.array([[[10, 200, 30]]], np.uint8)
    result = foreground_point(one, (0, 0, 1, 1))
    assert result.point == (0.5, 0.5) and result.fallback == "no_region"


@pytest.mark.slow
def test_huge_box_is_analysed_downscaled():
    big = textured((4000, 4000))
    cv2.circle(big, (2000, 2000), 900, (240, 240, 240), -1)
    result = foreground_point(big, (0, 0, 4000, 4000))
    assert result.scale < 1 and result.fallback is None
    assert np.hypot(result.point[0] - 2000, result.point[1] - 2000) < 50
