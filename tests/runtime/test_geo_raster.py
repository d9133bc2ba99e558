"""pslg.runtime.geo.raster: GeoTIFF reading rules (bands, 16-bit stretch, nodata, windows, overviews), bad rasters."""
import logging

import cv2
import numpy as np
import pytest

pytest.importorskip("rasterio")

from pslg.runtime.errors import ImageError, ParameterError  # noqa: E402
from pslg.runtime.geo import Raster  # noqa: E402
from pslg.runtime.geo.stretch import Stretch  # noqa: E402
from pslg.runtime.image import load_image  # noqa: E402
from tests.geo_support import read_rgb, write_raster  # noqa: E402


def test_the_shipped_geotiff_reads_as_its_png(osbs_tif, data_dir):
    path, _ = osbs_tif
    with Raster(path) as raster:
        view = raster.read()
        assert (raster.width, raster.height, raster.bands, raster.dtype) == (400, 400, (1, 2, 3), "uint8")
        assert raster.georeferenced and raster.crs.to_epsg() == 32617 and not raster.large
        assert raster.transform.a == pytest.approx(0.1) and raster.transform.e == pytest.approx(-0.1)
        assert raster.warnings == [] and raster.stretch is None
    np.testing.assert_array_equal(view.rgb, read_rgb(data_dir / "osbs_029.png"))
    np.testing.assert_array_equal(load_image(path), view.rgb)
    # nodata 255: GDAL's rule is that a pixel is missing when every band holds it
    assert view.valid is not None and np.array_equal(~view.valid, (view.rgb == 255).all(axis=2))
    assert view.window == (0, 0, 400, 400) and view.scale == (1.0, 1.0)


def test_band_choice(tmp_path, data_dir, caplog):
    rgb = read_rgb(data_dir / "osbs_029.png")
    nir = (255 - rgb[:, :, 1:2])
    path = write_raster(tmp_path / "four.tif", np.concatenate([rgb, nir], axis=2), photometric="minisblack")
    with caplog.at_level(logging.WARNING), Raster(path) as raster:
        assert raster.bands == (1, 2, 3) and any("4 bands" in w for w in raster.warnings)
        np.testing.assert_array_equal(raster.read().rgb, rgb)
    assert "choose with --bands" in caplog.text
    with Raster(path, bands=(4, 1, 2)) as raster:
        np.testing.assert_array_equal(raster.read().rgb, np.dstack([nir[:, :, 0], rgb[:, :, 0], rgb[:, :, 1]]))
    with Raster(path, bands=[4]) as raster:
        np.testing.assert_array_equal(raster.read().rgb, np.repeat(nir, 3, axis=2))
    for bad in ([5, 1, 2], [1, 2], ["x"]):
        with pytest.raises(ParameterError, match="band"):
            Raster(path, bands=bad)
    gray = write_raster(tmp_path / "gray.tif", rgb[:, :, 0].copy())
    with Raster(gray) as raster:
        assert raster.bands == (1,) and raster.read().rgb.shape == (400, 400, 3)


def test_16_bit_is_stretched_per_band_from_valid_pixels(tmp_path, data_dir):
    rgb = read_rgb(data_dir / "osbs_029.png").astype(np.uint16)
    data = rgb * np.array([40, 60, 80], np.uint16) + 1000
    data[:50] = 0                                                     # a nodata collar
    path = write_raster(tmp_path / "u16.tif", data, nodata=0)
    with Raster(path) as raster:
        view = raster.read()
        stretch = raster.stretch
        info = raster.describe()["stretch"]
    valid = np.ones((400, 400), bool)
    valid[:50] = False
    np.testing.assert_array_equal(view.valid, valid)
    for b in range(3):
        low, high = np.percentile(data[50:, :, b], [2, 98])
        assert (stretch.low[b], stretch.high[b]) == (pytest.approx(low), pytest.approx(high))
    expected = np.clip(np.rint((data.astype(np.float32) - np.float32(stretch.low)) * (255 / (np.float32(stretch.high)
                                                                                          - np.float32(stretch.low)))),
                       0, 255).astype(np.uint8)
    assert np.abs(view.rgb[50:].astype(int) - expected[50:]).max() <= 1
    assert "2th and 98th percentiles" in info["rule"] and info["sample"] == "the whole raster"
    assert len(info["bands"]) == 3 and info["bands"][0]["low"] == pytest.approx(stretch.low[0])


def test_constant_band_stretch_maps_low_to_zero():
    s = Stretch.fit(np.full((1, 4, 4), 7, np.uint16), None, "test", "x")
    assert (s.apply(np.array([[[7, 8]]], np.uint16))[0, :, 0] == [0, 255]).all()


@pytest.mark.parametrize("case", ["all_nodata_16", "float", "corrupt", "missing", "not_tiff"])
def test_bad_rasters_are_named_errors(case, tmp_path, osbs_tif):
    path = tmp_path / "bad.tif"
    if case == "all_nodata_16":
        write_raster(path, np.zeros((64, 64, 3), np.uint16), nodata=0)
    elif case == "float":
        write_raster(path, np.zeros((8, 8, 3), np.float32))
    elif case == "corrupt":
        path.write_bytes(osbs_tif[0].read_bytes()[:3000])
    elif case == "not_tiff":
        path.write_bytes(b"this is no image")
    else:
        path = tmp_path / "none.tif"
    with pytest.raises(ImageError) as e:
        with Raster(path) as raster:
            raster.read()
    assert {"all_nodata_16": "only nodata", "float": "float32", "corrupt": "bad.tif", "not_tiff": "not a raster",
            "missing": "does not exist"}[case] in e.value.message


def test_a_raster_without_crs_works_in_pixels_and_says_so(tmp_path, data_dir, caplog):
    path = write_raster(tmp_path / "plain.tif", read_rgb(data_dir / "osbs_029.png"), crs=None)
    with caplog.at_level(logging.WARNING), Raster(path) as raster:
        assert not raster.georeferenced and raster.georef is None
        assert raster.to_pixels([1, 2, 3, 4], None).tolist() == [1, 2, 3, 4]
        with pytest.raises(ParameterError, match="no CRS"):
            raster.to_pixels([1, 2, 3, 4], "EPSG:4326")
    assert "no CRS: working in pixels" in caplog.text


def test_alpha_band_is_the_valid_mask(tmp_path, data_dir):
    rgb = read_rgb(data_dir / "osbs_029.png")
    alpha = np.full((400, 400, 1), 255, np.uint8)
    alpha[:, :100] = 0
    path = write_raster(tmp_path / "rgba.tif", np.concatenate([rgb, alpha], axis=2), photometric="rgb",
                        alpha="yes")
    with Raster(path) as raster:
        view = raster.read()
        assert raster.bands == (1, 2, 3)
    assert view.valid is not None and not view.valid[:, :100].any() and view.valid[:, 100:].all()


def test_decimated_windows_come_from_the_coarsest_fine_enough_overview(tmp_path, data_dir):
    image = np.tile(read_rgb(data_dir / "osbs_029.png"), (5, 5, 1))          # 2000 x 2000
    path = write_raster(tmp_path / "ovr.tif", image, tiled=True, blockxsize=256, blockysize=256)
    import rasterio
    from rasterio.enums import Resampling
    with rasterio.open(path, "r+") as dst:
        dst.build_overviews([2, 4], Resampling.average)
    with Raster(path) as raster:
        assert raster.overview_factors == (2, 4)
        window = (100, 200, 1700, 1400)                                       # 1600 x 1200 -> 800 x 600
        view = raster.read(window, max_side=800)
        overview = raster.overview(500)
    assert view.source.startswith("overview 0 (1/2") and view.rgb.shape == (600, 800, 3)
    assert view.window == window and view.scale == (0.5, 0.5)
    reference = cv2.resize(image[200:1400, 100:1700], (800, 600), interpolation=cv2.INTER_AREA)
    assert np.abs(view.rgb.astype(int) - reference).mean() < 2.0
    assert overview.source.startswith("overview 1 (1/4") and overview.rgb.shape == (500, 500, 3)
    assert overview.window == (0, 0, 2000, 2000)
    np.testing.assert_allclose(overview.to_source([250, 250]), [1000, 1000])
