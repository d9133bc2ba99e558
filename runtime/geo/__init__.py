"""pslg.runtime.geo: georeferenced rasters in, GeoTIFF / GeoJSON / GeoPackage out (the ``[geo]`` extra).

    from pslg.runtime import Pipeline
    from pslg.runtime.geo import Raster, Segmenter, write_geo

    with Pipeline.open("engines/aerial") as pipeline, Raster("ortho.tif") as raster:
        seg = Segmenter(pipeline, raster)
        g = seg.segment(box=(404214.0, 3285130.0, 404217.5, 3285134.0), crs="EPSG:32617", mode="full")
        g.result.mask, g.box, g.polygons(), g.feature_properties()["area_m2"]
        write_geo(out_folder, g)                           # mask.tif, mask.geojson, mask.gpkg

Modules: ``raster`` (rasterio: bands, 8-bit conversion, nodata, windows, overviews), ``stretch`` (the
16-bit rule), ``crs`` (pyproj: boxes and points between a CRS and pixels), ``view`` (views, windows, the
plain-image source), ``segment`` (:class:`Segmenter`), ``vector`` (shapely: polygons, GeoJSON, areas),
``gpkg`` (the GeoPackage writer), ``write`` (the output files), ``boxes`` (``--boxes`` files). Importing
this package loads none of rasterio, shapely or pyproj; the modules that need them import them through
``pslg.runtime.extras.require``, so a missing ``[geo]`` ends with a MissingDependency naming it.
"""
import importlib
from pathlib import Path

#: file name endings read as (Geo)TIFF rasters
SUFFIXES = (".tif", ".tiff")

_LAZY = {"Raster": "raster", "load_rgb": "raster", "Segmenter": "segment", "GeoResult": "segment",
         "Located": "segment", "View": "view", "ImageSource": "view", "read_boxes": "boxes", "BoxJob": "boxes",
         "write_geo": "write", "write_vectors": "write", "write_mask_tif": "write", "parse_crs": "crs",
         "Georef": "crs", "write_gpkg": "gpkg"}
__all__ = ["SUFFIXES", "is_raster_path", "open_source", *_LAZY]


def is_raster_path(path) -> bool:
    """True for a ``.tif`` / ``.tiff`` file name (what rasterio reads)."""
    return Path(path).suffix.lower() in SUFFIXES


def open_source(path, bands=None):
    """A :class:`~.raster.Raster` for a TIFF, else an :class:`~.view.ImageSource` of the decoded image."""
    if is_raster_path(path):
        from .raster import Raster
        return Raster(path, bands)
    from ..errors import ParameterError
    from ..image import load_image
    from .view import ImageSource
    if bands is not None:
        raise ParameterError(f"--bands applies to GeoTIFF input; {path} is decoded as 8-bit RGB")
    return ImageSource(load_image(path), name=str(path))


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
