"""Masks to polygons: outlines with holes in map coordinates, simplified, with their area in square metres.

The outline is the mask's pixel edges (``rasterio.features.shapes``, 4-connected regions, so no two parts
touch at a corner only), mapped through the grid's transform, then simplified with a tolerance stated in
pixels (Douglas-Peucker, topology kept). GeoJSON follows RFC 7946: lon/lat (EPSG:4326), exterior rings
counter-clockwise, holes clockwise, no ``crs`` member. Areas are computed in a metric CRS: the grid's own
when it is projected (its unit converted to metres), else a Lambert azimuthal equal-area CRS centred on the
shape.
"""
import numpy as np

from ..extras import require
from .crs import LONLAT, transformer

shapely = require("shapely", "geo", "polygon output")
features = require("rasterio.features", "geo", "polygon output")
from shapely.geometry import MultiPolygon, mapping, shape  # noqa: E402
from shapely.geometry.polygon import orient  # noqa: E402

#: default simplification tolerance, in pixels
TOLERANCE_PX = 0.5


def polygons(mask, georef, tolerance_px=TOLERANCE_PX):
    """The mask (h x w bool) of the grid ``georef`` as a MultiPolygon in its CRS (empty for an empty mask)."""
    m = np.ascontiguousarray(mask, np.uint8)
    parts = [shape(g) for g, v in features.shapes(m, mask=m.astype(bool), transform=georef.transform,
                                                   connectivity=4) if v]
    geom = MultiPolygon(parts)
    if tolerance_px > 0 and parts:
        geom = shapely.simplify(geom, tolerance_px * georef.pixel_size, preserve_topology=True)
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
    return _multi(geom)


def _multi(geom):
    parts = [g for g in getattr(geom, "geoms", [geom]) if g.geom_type in ("Polygon", "MultiPolygon")]
    flat = [p for g in parts for p in getattr(g, "geoms", [g]) if not p.is_empty]
    return MultiPolygon(flat)


def reproject(geom, src, dst):
    """``geom`` with every vertex transformed from ``src`` to ``dst`` (x, y order)."""
    move = transformer(src, dst)
    return shapely.transform(geom, lambda xy: np.column_stack(move.transform(xy[:, 0], xy[:, 1])))


def to_lonlat(geom, crs):
    """RFC 7946 geometry: lon/lat, counter-clockwise exteriors, clockwise holes."""
    return MultiPolygon([orient(p, 1.0) for p in reproject(geom, crs, LONLAT).geoms])


def area_m2(geom, crs):
    """``(area in m^2, the CRS it was computed in)``."""
    if geom.is_empty:
        return 0.0, None
    if crs.is_projected:
        unit = crs.axis_info[0].unit_conversion_factor
        return float(geom.area * unit * unit), crs.to_string()
    lon, lat = to_lonlat(geom, crs).centroid.coords[0]
    local = f"+proj=laea +lat_0={lat:.6f} +lon_0={lon:.6f} +datum=WGS84 +units=m +no_defs"
    return float(reproject(geom, crs, local).area), local


def geojson_geometry(geom):
    """A GeoJSON geometry dict (None, GeoJSON's 'unlocated', for an empty one); one part as a Polygon."""
    if geom.is_empty:
        return None
    return mapping(geom.geoms[0] if len(geom.geoms) == 1 else geom)


def feature(geom_lonlat, properties):
    """A GeoJSON Feature with a ``bbox`` (absent for an empty geometry)."""
    out = {"type": "Feature", "properties": properties, "geometry": geojson_geometry(geom_lonlat)}
    if not geom_lonlat.is_empty:
        out["bbox"] = list(geom_lonlat.bounds)
    return out


def collection(features_):
    """A GeoJSON FeatureCollection of ``features_``, with the bbox of all."""
    boxes = np.array([f["bbox"] for f in features_ if "bbox" in f])
    out = {"type": "FeatureCollection", "features": list(features_)}
    if len(boxes):
        out["bbox"] = [*boxes[:, :2].min(axis=0).tolist(), *boxes[:, 2:].max(axis=0).tolist()]
    return out
