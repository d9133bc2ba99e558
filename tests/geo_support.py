"""Helpers of the geo tests: rasters built from the shipped imagery, crown boxes, rasterising polygons back,
an independent GeoPackage reader (GDAL's OGR through the libgdal that rasterio ships) and a child-process probe."""
import ctypes
import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

UTM17 = "EPSG:32617"
#: the upper-left corner of osbs_029.tif (EPSG:32617, 0.1 m pixels)
OSBS_ORIGIN = (404211.9, 3285142.9)


def read_rgb(path):
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def north_up(x0, y0, pixel):
    """The affine transform of a north-up grid with its upper-left corner at ``(x0, y0)``."""
    from affine import Affine
    return Affine(pixel, 0.0, x0, 0.0, -pixel, y0)


def write_raster(path, data, crs=UTM17, transform=None, **profile):
    """Write ``data`` (H x W or H x W x B) as a GeoTIFF (``crs=None``: none); ``profile`` adds creation options."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    data = data[:, :, None] if data.ndim == 2 else data
    h, w, b = data.shape
    args = dict(driver="GTiff", width=w, height=h, count=b, dtype=str(data.dtype), **profile)
    if crs is not None:
        args.update(crs=crs, transform=transform or north_up(*OSBS_ORIGIN, 0.1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **args) as dst:
            dst.write(data.transpose(2, 0, 1))
    return Path(path)


def build_large(path, image, tiles=(6, 5), factors=(4, 8, 16)):
    """A tiled (512 px), uncompressed GeoTIFF of ``image`` mirrored ``tiles`` (across, down) times, EPSG:32612,
    0.1 m, with GDAL overviews (nearest) at ``factors``: written strip by strip, never whole in memory."""
    import rasterio
    from rasterio.enums import Resampling
    h, w = image.shape[:2]
    nx, ny = tiles
    profile = dict(driver="GTiff", width=w * nx, height=h * ny, count=3, dtype="uint8", crs="EPSG:32612",
                   transform=north_up(528000.0, 4980000.0, 0.1), tiled=True, blockxsize=512, blockysize=512)
    with rasterio.Env(GDAL_CACHEMAX=256), rasterio.open(path, "w", **profile) as dst:
        for j in range(ny):
            strip = np.concatenate([image if i % 2 == 0 else image[:, ::-1] for i in range(nx)], axis=1)
            strip = strip[::-1] if j % 2 else strip
            dst.write(strip.transpose(2, 0, 1), window=rasterio.windows.Window(0, j * h, w * nx, h))
    with rasterio.Env(GDAL_CACHEMAX=256), rasterio.open(path, "r+") as dst:
        dst.build_overviews(list(factors), Resampling.nearest)
    return Path(path)


def rasterize_geojson(doc, georef, shape):
    """The polygons of a GeoJSON FeatureCollection (lon/lat) burnt into the grid ``georef`` (``shape`` h, w):
    a pixel is in when its centre is (GDAL's rule)."""
    from rasterio import features
    from shapely.geometry import shape as to_shape

    from pslg.runtime.geo.vector import reproject
    geoms = [reproject(to_shape(f["geometry"]), "EPSG:4326", georef.crs) for f in doc["features"] if f["geometry"]]
    if not geoms:
        return np.zeros(shape, bool)
    return features.rasterize(geoms, out_shape=shape, transform=georef.transform).astype(bool)


def iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def ring_signed_area(ring):
    """Shoelace area of a GeoJSON ring: positive = counter-clockwise."""
    xy = np.asarray(ring, np.float64)
    return 0.5 * float(np.sum(xy[:-1, 0] * xy[1:, 1] - xy[1:, 0] * xy[:-1, 1]))


def _libgdal():
    import rasterio
    libs = glob.glob(str(Path(rasterio.__file__).parent.parent / "rasterio.libs" / "libgdal*.so*"))
    lib = ctypes.CDLL(libs[0] if libs else "libgdal.so")
    sigs = {"GDALOpenEx": (ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
                                             ctypes.c_void_p]),
            "GDALDatasetGetLayerCount": (ctypes.c_int, [ctypes.c_void_p]),
            "GDALDatasetGetLayer": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_int]),
            "OGR_L_GetName": (ctypes.c_char_p, [ctypes.c_void_p]),
            "OGR_L_GetFeatureCount": (ctypes.c_longlong, [ctypes.c_void_p, ctypes.c_int]),
            "OGR_L_GetSpatialRef": (ctypes.c_void_p, [ctypes.c_void_p]),
            "OSRGetAuthorityCode": (ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_char_p]),
            "OGR_L_GetNextFeature": (ctypes.c_void_p, [ctypes.c_void_p]),
            "OGR_F_GetGeometryRef": (ctypes.c_void_p, [ctypes.c_void_p]),
            "OGR_G_ExportToWkt": (ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p)]),
            "OGR_F_GetFieldIndex": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p]),
            "OGR_F_GetFieldAsString": (ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int]),
            "OGR_F_Destroy": (None, [ctypes.c_void_p]),
            "VSIFree": (None, [ctypes.c_void_p]),
            "GDALClose": (None, [ctypes.c_void_p]),
            "GDALAllRegister": (None, [])}
    for name, (res, args) in sigs.items():
        getattr(lib, name).restype, getattr(lib, name).argtypes = res, args
    lib.GDALAllRegister()
    return lib


def ogr_read(path, fields=()):
    """A vector file read by GDAL's OGR (not by our writer's code): ``{"layers": [name], "epsg": code,
    "features": [{"wkt": ..., field: value-as-string}]}`` of its first layer."""
    lib = _libgdal()
    ds = lib.GDALOpenEx(str(path).encode(), 0x04 | 0x40, None, None, None)  # GDAL_OF_VECTOR | GDAL_OF_VERBOSE_ERROR
    assert ds, f"GDAL cannot open {path} as a vector dataset"
    try:
        layers = [lib.OGR_L_GetName(lib.GDALDatasetGetLayer(ds, i)).decode()
                  for i in range(lib.GDALDatasetGetLayerCount(ds))]
        layer = lib.GDALDatasetGetLayer(ds, 0)
        srs = lib.OGR_L_GetSpatialRef(layer)
        code = lib.OSRGetAuthorityCode(srs, None) if srs else None
        out = {"layers": layers, "count": lib.OGR_L_GetFeatureCount(layer, 1),
               "epsg": int(code) if code else None, "features": []}
        while True:
            feat = lib.OGR_L_GetNextFeature(layer)
            if not feat:
                break
            geom = lib.OGR_F_GetGeometryRef(feat)
            row = {"wkt": None}
            if geom:
                text = ctypes.c_char_p()
                lib.OGR_G_ExportToWkt(geom, ctypes.byref(text))
                row["wkt"] = text.value.decode()
                lib.VSIFree(ctypes.cast(text, ctypes.c_void_p))
            for f in fields:
                value = lib.OGR_F_GetFieldAsString(feat, lib.OGR_F_GetFieldIndex(feat, f.encode()))
                row[f] = value.decode() if value is not None else None
            out["features"].append(row)
            lib.OGR_F_Destroy(feat)
        return out
    finally:
        lib.GDALClose(ds)


PROBE = r'''
import json, sys, time
import numpy as np
args = json.loads(sys.argv[1])
import rasterio
from rasterio.io import DatasetReader
reads = []
def recorded(name):
    real = getattr(DatasetReader, name)
    def read(self, *a, window=None, **k):
        w = window if window is not None else rasterio.windows.Window(0, 0, self.width, self.height)
        reads.append({"call": name, "dataset": [self.width, self.height], "window": [int(w.col_off), int(w.row_off),
                      int(w.width), int(w.height)]})
        return real(self, *a, window=window, **k)
    setattr(DatasetReader, name, read)
for name in ("read", "read_masks", "dataset_mask"):
    recorded(name)
from pslg.runtime import Pipeline, RunnerOptions
from pslg.runtime.geo import Raster, Segmenter
def peak_kb():  # this process's own high-water mark (getrusage's maxrss keeps a big parent's across exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
with Pipeline.open(args["models"], RunnerOptions(device="cpu"), warmup=True) as pipeline:
    before = peak_kb()
    t0 = time.perf_counter()
    with Raster(args["raster"]) as raster:
        g = Segmenter(pipeline, raster).segment(text=args.get("text"), box=args.get("box"), mode=args["mode"])
        out = {"box_px": g.box.tolist(), "window": list(g.view.window), "view": list(g.view.rgb.shape),
               "grounded_on": g.grounded_on.to_json() if g.grounded_on is not None else None,
               "box_source": g.result.box_source, "area": int(g.result.mask.sum()),
               "polygons": len(g.polygons().geoms)}
    out["seconds"] = time.perf_counter() - t0
out.update(maxrss_kb=peak_kb(), open_rss_kb=before, reads=reads)
print("PROBE" + json.dumps(out))
'''


def probe(models, raster, mode, box=None, text=None):
    """Run one query in a fresh interpreter, recording every rasterio read: its JSON report (peak RSS in kB, from
    /proc's VmHWM,
    query seconds, reads ``{"dataset": [w, h], "window": [x, y, w, h]}``, the result's box and window)."""
    args = json.dumps({"models": str(models), "raster": str(raster), "mode": mode, "box": box, "text": text})
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    done = subprocess.run([sys.executable, "-c", PROBE, args], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(next(line[5:] for line in done.stdout.splitlines() if line.startswith("PROBE")))
