"""The geo outputs of segmented objects: mask.tif, mask.geojson and mask.gpkg (one object or a collection)."""
import json

import numpy as np

from ..extras import require
from ..files import writing, write_text
from .gpkg import write_gpkg
from .vector import collection, feature, to_lonlat

rasterio = require("rasterio", "geo", "GeoTIFF output")

#: names of the files :func:`write_geo` writes
FILES = ("mask.tif", "mask.geojson", "mask.gpkg")


def write_mask_tif(path, mask, grid):
    """The mask (h x w bool) as a 0/255 uint8 GeoTIFF on ``grid`` (its CRS and transform), deflate-compressed,
    tiled above 512 px; written through a temporary name."""
    h, w = mask.shape
    profile = {"driver": "GTiff", "width": w, "height": h, "count": 1, "dtype": "uint8", "crs": grid.crs.to_wkt(),
               "transform": grid.transform, "compress": "deflate", "predictor": 2}
    if max(h, w) > 512:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with writing(path) as path:
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        try:
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write(np.where(mask, 255, 0).astype(np.uint8)[None])
                dst.update_tags(PSLG_MASK="255 = object, 0 = background")
        except rasterio.errors.RasterioError as e:
            tmp.unlink(missing_ok=True)
            raise OSError(str(e)) from None
        tmp.replace(path)
    return path


def write_vectors(folder, results, name="mask"):
    """``name.geojson`` (RFC 7946, lon/lat) and ``name.gpkg`` (the raster's CRS), one feature per result;
    all results must share one CRS (they come from one raster). Returns the two paths."""
    crs = results[0].georef.crs
    rows = [(g.polygons(), g.feature_properties()) for g in results]
    doc = collection([feature(to_lonlat(geom, crs), props) for geom, props in rows])
    geojson = write_text(folder / f"{name}.geojson", json.dumps(doc) + "\n")
    return geojson, write_gpkg(folder / f"{name}.gpkg", rows, crs, table=name,
                               description="masks segmented by pslg-sam")


def write_geo(folder, result):
    """mask.tif, mask.geojson and mask.gpkg of one :class:`~.segment.GeoResult` (nothing without a georeference);
    returns the file names written."""
    if result.georef is None:
        return []
    write_mask_tif(folder / "mask.tif", result.result.mask, result.grid)
    write_vectors(folder, [result])
    return list(FILES)
