"""GeoTIFF through ``pslg run``, ``segment`` (one box, ``--boxes`` files) and ``locate``; bad input as named exit codes;
a runtime-only install (no [geo]) still works and names the extra for a GeoTIFF."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("rasterio")

from pslg.runtime.cli import main  # noqa: E402
from pslg.runtime.errors import BoxError, ImageError, MissingDependency, ParameterError  # noqa: E402
from pslg.runtime.geo import Raster  # noqa: E402
from tests.geo_support import read_rgb, write_raster  # noqa: E402
from tests.runtime.test_import_lean import loaded_after  # noqa: E402

GEO = ("rasterio", "shapely", "pyproj")


def test_run_with_a_lonlat_box(sam_tiny, osbs_tif, tmp_path):
    path, boxes = osbs_tif
    with Raster(path) as raster:
        lonlat = raster.georef.bounds_in(boxes[3], "EPSG:4326")
    box = ",".join(f"{v:.10f}" for v in lonlat)
    assert main(["run", str(path), "--models", str(sam_tiny[0]), f"--box={box}", "--box-crs", "EPSG:4326",
                 "--mode", "classical", "--out", str(tmp_path), "--no-warmup"]) == 0
    assert {p.name for p in tmp_path.iterdir()} >= {"mask.png", "overlay.png", "result.json", "mask.tif",
                                                     "mask.geojson", "mask.gpkg"}
    report = json.loads((tmp_path / "result.json").read_text())
    geo = report["results"][0]["geo"]
    np.testing.assert_allclose(geo["box_px"], boxes[3], atol=0.5)
    assert geo["raster"]["crs"] == "EPSG:32617" and geo["box_map"]["crs"] == "EPSG:32617"


def _crowns_geojson(path, boxes, raster_path):
    with Raster(raster_path) as raster:
        feats = [{"type": "Feature", "id": f"crown-{i}", "properties": {"species": "pine"},
                  "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}}
                 for i, b in enumerate(boxes) for w, s, e, n in [raster.georef.bounds_in(b, "EPSG:4326")]]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def test_segment_boxes_files_make_one_collection_encoding_once(sam_tiny, osbs_tif, tmp_path):
    path, boxes = osbs_tif
    boxes = boxes[:4]
    geojson = _crowns_geojson(tmp_path / "crowns.geojson", boxes, path)
    table = tmp_path / "crowns.csv"
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "xmin", "ymin", "xmax", "ymax", "label"])
        writer.writerows([[f"c{i}", *b, "tree"] for i, b in enumerate(boxes)])
    reports = {}
    for name, file in (("geojson", geojson), ("csv", table)):
        out = tmp_path / name
        assert main(["segment", str(path), "--models", str(sam_tiny[0]), "--boxes", str(file), "--out", str(out)]) == 0
        doc = json.loads((out / "mask.geojson").read_text())
        assert len(doc["features"]) == 4 and (out / "mask.gpkg").is_file() and (out / "overlay.png").is_file()
        reports[name] = json.loads((out / "result.json").read_text())
        encoded = [r for r in reports[name]["results"] if "sam_encoder" in r["timings_ms"]]
        assert len(encoded) == 1, "the raster is encoded once for all its boxes"
    ids = [f["properties"]["id"] for f in json.loads((tmp_path / "geojson" / "mask.geojson").read_text())["features"]]
    assert ids == [f"crown-{i}" for i in range(4)]
    assert reports["csv"]["results"][0]["geo"]["properties"] == {"label": "tree"}
    for a, b in zip(reports["geojson"]["results"], reports["csv"]["results"]):
        np.testing.assert_allclose(a["geo"]["box_px"], b["geo"]["box_px"], atol=1.0)  # lon/lat: bounded twice


def test_locate_on_a_geotiff(pslg_small, osbs_tif, tmp_path, capsys):
    assert main(["locate", str(osbs_tif[0]), "--models", str(pslg_small), "--text", "the tree",
                 "--draw", str(tmp_path / "box.png")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["geo"]["box_map"]["crs"] == "EPSG:32617" and len(report["geo"]["box_px"]) == 4
    assert report["geo"]["grounded_on"]["source"] == "full resolution" and (tmp_path / "box.png").is_file()


def test_a_raster_without_crs_runs_in_pixels_without_geo_outputs(sam_tiny, data_dir, tmp_path, capsys):
    path = write_raster(tmp_path / "plain.tif", read_rgb(data_dir / "osbs_029.png"), crs=None)
    out = tmp_path / "out"
    assert main(["run", str(path), "--models", str(sam_tiny[0]), "--box", "203,67,227,90", "--mode", "classical",
                 "--out", str(out), "--no-warmup"]) == 0
    assert "no CRS: working in pixels" in capsys.readouterr().err
    assert not any((out / n).exists() for n in ("mask.tif", "mask.geojson", "mask.gpkg"))
    result = json.loads((out / "result.json").read_text())["results"][0]
    assert result["geo"]["georeferenced"] is False and "box_map" not in result["geo"]
    assert any("no CRS" in w for w in result["warnings"])


@pytest.mark.parametrize("case, error", [
    ("corrupt", ImageError), ("crs_without_georef", ParameterError), ("unknown_crs", ParameterError),
    ("outside_map_box", BoxError), ("all_nodata_16", ImageError), ("bands_on_png", ParameterError),
    ("bad_boxes_file", ParameterError), ("bad_bands", ParameterError),
])
def test_bad_geo_input(case, error, sam_tiny, osbs_tif, data_dir, tmp_path, capsys):
    image, extra = str(osbs_tif[0]), ["--box", "203,67,227,90"]
    if case == "corrupt":
        image = tmp_path / "cut.tif"
        image.write_bytes(osbs_tif[0].read_bytes()[:5000])
    elif case == "crs_without_georef":
        image = write_raster(tmp_path / "plain.tif", np.zeros((32, 32, 3), np.uint8), crs=None)
        extra += ["--box-crs", "EPSG:4326"]
    elif case == "unknown_crs":
        extra += ["--box-crs", "EPSG:1"]
    elif case == "outside_map_box":
        extra = ["--box", "500000,3000000,500010,3000010", "--box-crs", "EPSG:32617"]
    elif case == "all_nodata_16":
        image = write_raster(tmp_path / "empty16.tif", np.zeros((64, 64, 3), np.uint16), nodata=0)
        extra = ["--box", "1,1,30,30"]
    elif case == "bands_on_png":
        image, extra = str(data_dir / "osbs_029.png"), extra + ["--bands", "1,2,3"]
    elif case == "bad_bands":
        extra += ["--bands", "1,x"]
    else:
        (tmp_path / "b.csv").write_text("a,b\n1,2\n")
        extra = ["--boxes", str(tmp_path / "b.csv")]
    code = main(["segment", str(image), "--models", str(sam_tiny[0]), "--out", str(tmp_path / "out")] + extra)
    err = capsys.readouterr().err
    assert code == error.code and error.__name__ in err and "Traceback" not in err


BLOCK_GEO = f"""
import sys
class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {GEO!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Missing())
from pslg.runtime.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_without_the_geo_extra_pngs_work_and_geotiffs_name_it(sam_tiny, osbs_tif, data_dir, tmp_path):
    def pslg(*args):
        return subprocess.run([sys.executable, "-c", BLOCK_GEO, *map(str, args)], capture_output=True, text=True)
    png = pslg("segment", data_dir / "osbs_029.png", "--models", sam_tiny[0], "--box", "203,67,227,90",
               "--out", tmp_path / "png")
    assert png.returncode == 0, png.stderr
    tif = pslg("segment", osbs_tif[0], "--models", sam_tiny[0], "--box", "203,67,227,90", "--out", tmp_path / "tif")
    assert tif.returncode == MissingDependency.code and "pip install 'pslg-sam[geo]'" in tif.stderr
    assert "GeoTIFF input" in tif.stderr and "Traceback" not in tif.stderr


def test_plain_images_load_no_geo_package(data_dir):
    code = ("import pslg.runtime.commands.run, pslg.runtime.commands.segment, pslg.runtime.commands.locate\n"
            "import pslg.runtime.geo, pslg.runtime.geo.segment, pslg.runtime.geo.boxes, pslg.runtime.outputs\n"
            f"from pslg.runtime.geo import open_source\nopen_source({str(data_dir / 'osbs_029.png')!r}).read()")
    assert loaded_after(code, GEO) == []
