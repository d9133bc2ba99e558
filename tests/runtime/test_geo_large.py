"""Orthomosaics of any size: a 13440 x 12960 tiled GeoTIFF with overviews is never read whole, and a box query and
a phrase query cost about what they cost on a 1000 px raster (peak RSS and time, each in a fresh process)."""
import json

import cv2
import numpy as np
import pytest

pytest.importorskip("rasterio")

import rasterio  # noqa: E402

from pslg.runtime import Pipeline  # noqa: E402
from pslg.runtime.geo import Raster, Segmenter  # noqa: E402
from pslg.runtime.outputs import write_query  # noqa: E402
from tests.geo_support import iou, probe, rasterize_geojson  # noqa: E402
from tests.runner_options import CPU  # noqa: E402

#: the same marina content in the 1000 px raster and in a tile of the large one (tile 2 across, 6 down, unmirrored)
SMALL_BOX = [400.0, 400.0, 460.0, 470.0]
LARGE_BOX = [3840 + 400.0, 6480 + 400.0, 3840 + 460.0, 6480 + 470.0]
#: SAM-sized (1024 px) window centred on LARGE_BOX
WINDOW = (4270 - 512, 6915 - 512, 4270 + 512, 6915 + 512)
MB = 1024
RSS_SLACK_MB, TIME_RATIO, START_S = 400, 3.0, 5.0


def _largest_full_resolution_read(report, width, height):
    full = [r["window"] for r in report["reads"] if r["dataset"] == [width, height]]
    return max((w * h for _, _, w, h in full), default=0)


@pytest.mark.slow
@pytest.mark.parametrize("query", ["box", "text"])
def test_large_raster_queries_cost_what_small_ones_do(query, large_raster, sam_tiny, pslg_small):
    large, small = large_raster
    with rasterio.open(large) as ds:
        width, height = ds.width, ds.height
        assert width >= 12000 and height >= 12000 and ds.profile["tiled"] and ds.overviews(1) == [4, 8, 16]
    if query == "box":
        got = {name: probe(sam_tiny[0], path, "classical", box=box)
               for name, path, box in (("small", small, SMALL_BOX), ("large", large, LARGE_BOX))}
        assert got["large"]["window"] == list(WINDOW) and got["large"]["box_source"] == "user"
        np.testing.assert_allclose(got["large"]["box_px"], LARGE_BOX)
    else:
        got = {name: probe(pslg_small, path, "box", text="the white boat") for name, path in (("small", small),
                                                                                            ("large", large))}
        report = got["large"]
        assert report["box_source"] == "text" and report["grounded_on"]["source"].startswith("overview")
        x0, y0, x1, y1 = report["window"]
        bx0, by0, bx1, by1 = report["box_px"]
        assert 0 <= x0 <= bx0 < bx1 <= x1 <= width and 0 <= y0 <= by0 < by1 <= y1 <= height
        assert max(report["view"][:2]) <= 2048
    for name, report in got.items():
        print(name, query, f"peak RSS {report['maxrss_kb'] / MB:.0f} MB (after open {report['open_rss_kb'] / MB:.0f}),"
              f" query {report['seconds']:.2f} s, {len(report['reads'])} reads")
    large_reads = got["large"]["reads"]
    assert large_reads, "the probe saw no read"
    assert all(r["window"][2] * r["window"][3] <= 2600 * 2600 for r in large_reads), large_reads
    assert _largest_full_resolution_read(got["large"], width, height) <= 2048 * 2048
    assert got["large"]["maxrss_kb"] <= got["small"]["maxrss_kb"] + RSS_SLACK_MB * MB
    assert got["large"]["seconds"] <= TIME_RATIO * got["small"]["seconds"] + START_S


def test_a_window_of_a_large_raster_is_written_on_its_own_grid(large_raster, sam_tiny, tmp_path):
    large, _ = large_raster
    with Pipeline.open(sam_tiny[0], CPU, warmup=False) as pipeline, Raster(large) as raster:
        seg = Segmenter(pipeline, raster)
        utm = raster.georef.to_map(LARGE_BOX)
        g = seg.segment(box=utm, crs="EPSG:32612", mode="classical")
        transform = raster.transform
        far = [100.0, 100.0, 150.0, 160.0]
        groups = seg.groups([np.array(LARGE_BOX), np.array(LARGE_BOX) + 300, np.array(far)])
    assert [idx for _, idx in groups] == [[0, 1], [2]]
    write_query(tmp_path, g)
    png = cv2.imread(str(tmp_path / "mask.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape == (1024, 1024) and g.view.window == WINDOW
    with rasterio.open(tmp_path / "mask.tif") as tif:
        assert tif.transform == transform @ rasterio.Affine.translation(*WINDOW[:2]) and tif.crs.to_epsg() == 32612
        np.testing.assert_array_equal(tif.read(1), png)
    doc = json.loads((tmp_path / "mask.geojson").read_text())
    assert iou(rasterize_geojson(doc, g.grid, png.shape), png > 0) >= 0.97
    report = json.loads((tmp_path / "result.json").read_text())
    assert report["geo"]["view"]["window"] == list(WINDOW) and report["geo"]["raster"]["large"]
    np.testing.assert_allclose(report["geo"]["box_px"], LARGE_BOX, atol=1e-6)
