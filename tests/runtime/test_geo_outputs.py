"""Georeferenced outputs on the real GeoTIFF and its crown boxes: polygons back on the grid equal mask.png, mask.tif
on the input's grid, the GeoPackage as GDAL reads it, RFC 7946 rules, and boxes in map coordinates."""
import json

import cv2
import numpy as np
import pytest

pytest.importorskip("rasterio")

import rasterio  # noqa: E402

from pslg.runtime import Pipeline  # noqa: E402
from pslg.runtime.errors import BoxError, ParameterError, PointError  # noqa: E402
from pslg.runtime.geo import Raster, Segmenter, write_vectors  # noqa: E402
from pslg.runtime.geo.gpkg import write_gpkg  # noqa: E402
from pslg.runtime.geo.vector import polygons  # noqa: E402
from pslg.runtime.outputs import write_query  # noqa: E402
from tests.geo_support import iou, north_up, ogr_read, rasterize_geojson, ring_signed_area  # noqa: E402
from tests.runner_options import CPU  # noqa: E402


@pytest.fixture(scope="module")
def crowns(sam_tiny, osbs_tif):
    """Every crown of osbs_029.tif segmented in the classical mode (real masks, no SAM weights needed)."""
    path, boxes = osbs_tif
    with Pipeline.open(sam_tiny[0], CPU, warmup=False) as pipeline, Raster(path) as raster:
        results = Segmenter(pipeline, raster).segment_boxes([b.tolist() for b in boxes], mode="classical")
    return results


def test_polygons_back_on_the_grid_cover_the_mask(crowns, tmp_path):
    geojson, gpkg = write_vectors(tmp_path, crowns)
    doc = json.loads(geojson.read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc and len(doc["features"]) == 61
    worst = 1.0
    for g, f in zip(crowns, doc["features"]):
        back = rasterize_geojson({"features": [f]}, g.grid, g.result.mask.shape)
        worst = min(worst, iou(back, g.result.mask))
        assert f["properties"]["mask_area_px"] == int(g.result.mask.sum()) and f["properties"]["mode"] == "classical"
        area = f["properties"]["area_m2"]
        assert area == pytest.approx(g.result.mask.sum() * 0.01, rel=0.15, abs=0.02)
        assert f["properties"]["area_crs"] == "EPSG:32617" and f["properties"]["simplify_tolerance_px"] == 0.5
        polys = [f["geometry"]["coordinates"]] if f["geometry"]["type"] == "Polygon" else f["geometry"]["coordinates"]
        for rings in polys:
            lon, lat = np.asarray(rings[0]).T
            assert (-82 < lon).all() and (lon < -81.9).all() and (29.6 < lat).all() and (lat < 29.7).all()
            assert ring_signed_area(rings[0]) > 0 and all(ring_signed_area(h) < 0 for h in rings[1:])
    assert worst >= 0.97
    layer = ogr_read(gpkg, fields=("id", "mode", "area_m2"))
    assert layer["layers"] == ["mask"] and layer["count"] == 61 and layer["epsg"] == 32617
    for row, f in zip(layer["features"], doc["features"]):
        assert row["id"] == f["properties"]["id"] and row["mode"] == "classical"
        assert float(row["area_m2"]) == pytest.approx(f["properties"]["area_m2"])
        assert row["wkt"].startswith("MULTIPOLYGON") or f["geometry"] is None


def test_one_query_writes_mask_tif_on_the_input_grid(sam_tiny, osbs_tif, tmp_path):
    path, boxes = osbs_tif
    with Pipeline.open(sam_tiny[0], CPU, warmup=False) as pipeline, Raster(path) as raster:
        g = Segmenter(pipeline, raster).segment(box=boxes[1], mode="classical")
        crs, transform = raster.crs, raster.transform
    write_query(tmp_path, g)
    png = cv2.imread(str(tmp_path / "mask.png"), cv2.IMREAD_UNCHANGED)
    with rasterio.open(tmp_path / "mask.tif") as tif:
        assert tif.crs == crs and tif.transform == transform and tif.profile["compress"] == "deflate"
        np.testing.assert_array_equal(tif.read(1), png)
    report = json.loads((tmp_path / "result.json").read_text())
    geo = report["geo"]
    assert geo["box_px"] == boxes[1].tolist() and geo["outputs"] == ["mask.tif", "mask.geojson", "mask.gpkg"]
    x0, y1 = 404211.9 + boxes[1][0] * 0.1, 3285142.9 - boxes[1][1] * 0.1
    assert geo["box_map"]["crs"] == "EPSG:32617" and geo["box_map"]["bounds"][0] == pytest.approx(x0)
    assert geo["box_map"]["bounds"][3] == pytest.approx(y1) and len(geo["box_map"]["lonlat"]) == 4
    assert report["mask_area"] == int((png > 0).sum()) and geo["polygons"]["count"] >= 1


def test_boxes_in_the_raster_crs_and_in_lonlat_select_the_same_object(sam_tiny, osbs_tif):
    path, boxes = osbs_tif
    box = boxes[7]
    with Pipeline.open(sam_tiny[0], CPU, warmup=False) as pipeline, Raster(path) as raster:
        seg = Segmenter(pipeline, raster)
        utm = raster.georef.to_map(box)
        lonlat = raster.georef.bounds_in(box, "EPSG:4326")
        by_px = seg.segment(box=box, mode="classical")
        by_utm = seg.segment(box=utm, crs="EPSG:32617", mode="classical")
        by_lonlat = seg.segment(box=lonlat, crs="EPSG:4326", mode="classical")
        point = raster.georef.transform @ (box[0] + 5, box[1] + 5)
        assert raster.to_pixels(point, "EPSG:32617") == pytest.approx([box[0] + 5, box[1] + 5])
        outside = [utm[0] + 100, utm[1], utm[2] + 100, utm[3]]
        with pytest.raises(BoxError, match="lies outside the raster, whose bounds there are"):
            seg.segment(box=outside, crs="EPSG:32617", mode="classical")
        with pytest.raises(ParameterError, match="unknown CRS"):
            seg.segment(box=utm, crs="EPSG:999999", mode="classical")
        with pytest.raises(BoxError, match="min < max"):
            seg.segment(box=[utm[2], utm[1], utm[0], utm[3]], crs="EPSG:32617", mode="classical")
        with pytest.raises(PointError, match="outside the raster"):
            seg.segment(box=lonlat, point=(lonlat[0] - 0.001, lonlat[1]), crs="EPSG:4326", mode="classical")
    np.testing.assert_allclose(by_utm.box, by_px.box, atol=1e-6)
    # a lon/lat box is its outline bounded in UTM: it holds the pixel box, a fraction of a pixel larger
    assert (by_lonlat.box[:2] <= by_px.box[:2]).all() and (by_lonlat.box[2:] >= by_px.box[2:]).all()
    np.testing.assert_allclose(by_lonlat.box, by_px.box, atol=0.5)
    assert iou(by_utm.result.mask, by_px.result.mask) == 1.0


def test_every_crown_in_lonlat_comes_back_as_itself(osbs_tif):
    path, boxes = osbs_tif

    def box_iou(a, b):
        w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
        h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
        area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
        return w * h / (area(a)[:, None] + area(b)[None, :] - w * h)
    with Raster(path) as raster:
        back = np.array([raster.to_pixels(raster.georef.bounds_in(b, "EPSG:4326"), "EPSG:4326") for b in boxes])
    overlap = box_iou(back, boxes)
    assert (overlap.argmax(axis=1) == np.arange(len(boxes))).all() and overlap.diagonal().min() >= 0.95


def test_polygons_keep_holes_and_exact_pixel_edges():
    from pslg.runtime.geo.crs import Georef
    mask = np.zeros((40, 50), bool)
    mask[5:30, 5:35] = True
    mask[12:20, 12:22] = False                      # a hole
    mask[33:36, 40:44] = True                       # a second part
    grid = Georef.of("EPSG:32617", north_up(400000.0, 3000000.0, 0.5))
    geom = polygons(mask, grid, tolerance_px=0.0)
    assert len(geom.geoms) == 2
    big = max(geom.geoms, key=lambda p: p.area)
    assert len(big.interiors) == 1 and big.area == pytest.approx((25 * 30 - 8 * 10) * 0.25)
    burnt = rasterio.features.rasterize([geom], out_shape=mask.shape, transform=grid.transform).astype(bool)
    np.testing.assert_array_equal(burnt, mask)


def test_geopackage_columns_and_empty_geometry(tmp_path):
    from shapely.geometry import MultiPolygon, box

    from pslg.runtime.geo.crs import parse_crs
    rows = [(MultiPolygon([box(0, 0, 10, 10)]), {"id": "a", "score": 0.5, "n": 3, "ok": True, "tags": [1, 2]}),
            (MultiPolygon(), {"id": "b", "score": None, "n": 4, "ok": False, "tags": None})]
    path = write_gpkg(tmp_path / "t.gpkg", rows, parse_crs("EPSG:3857"), table="things")
    layer = ogr_read(path, fields=("id", "score", "n", "ok", "tags"))
    assert layer["layers"] == ["things"] and layer["epsg"] == 3857 and layer["count"] == 2
    a, b = layer["features"]
    assert a["wkt"] == "MULTIPOLYGON (((10 0,10 10,0 10,0 0,10 0)))"
    assert (a["id"], a["n"], a["ok"], a["tags"]) == ("a", "3", "1", "[1, 2]") and float(a["score"]) == 0.5
    assert b["wkt"] is None and b["score"] == "" and b["ok"] == "0"
