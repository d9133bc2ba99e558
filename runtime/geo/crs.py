"""Map coordinates: CRS parsing, and boxes and points between a CRS and a raster's pixels.

A box in a CRS is ``xmin, ymin, xmax, ymax`` in that CRS's x, y order as pyproj's ``always_xy`` takes it
(for EPSG:4326: west, south, east, north in degrees). It is converted by transforming its outline (21
points per edge) to the raster's CRS, taking the bounding box there, and mapping that box's corners through
the inverse of the raster's affine transform (pixel corners, ``(c, r)`` spans ``[c, c + 1)``); the pixel box
is the bounding box of those four points.
"""
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import BoxError, ParameterError, PointError
from ..extras import require

pyproj = require("pyproj", "geo", "map coordinates")
from affine import Affine  # noqa: E402  (installed with rasterio)

LONLAT = "EPSG:4326"
DENSIFY = 21


@lru_cache(maxsize=64)
def _parse(text):
    return pyproj.CRS.from_user_input(text)


def parse_crs(value) -> "pyproj.CRS":
    """A pyproj CRS from anything pyproj understands (``EPSG:4326``, ``32617``, WKT, PROJ strings)."""
    if isinstance(value, pyproj.CRS):
        return value
    try:
        return _parse(value if not hasattr(value, "to_wkt") else value.to_wkt())
    except (pyproj.exceptions.CRSError, TypeError) as e:
        raise ParameterError(f"unknown CRS {value!r} ({e}); give one pyproj understands, e.g. EPSG:4326 "
                             f"(lon/lat) or the raster's own EPSG code") from None


@lru_cache(maxsize=64)
def _transformer(src, dst):
    return pyproj.Transformer.from_crs(src, dst, always_xy=True)


def transformer(src, dst) -> "pyproj.Transformer":
    """An ``always_xy`` transformer (cached)."""
    return _transformer(parse_crs(src), parse_crs(dst))


def _finite(values, what, crs, error=BoxError):
    if not np.isfinite(values).all():
        raise error(f"{what} cannot be transformed from {crs} to the raster's CRS (outside its area of use?)")
    return values


@dataclass(frozen=True)
class Georef:
    """A pixel grid's CRS (pyproj) and affine transform (pixel corners -> map x, y)."""

    crs: object
    transform: Affine

    @classmethod
    def of(cls, crs, transform):
        return cls(parse_crs(crs), Affine(*list(transform)[:6]))

    def of_view(self, view) -> "Georef":
        """The grid of a :class:`~.view.View` of this grid (its window, at its scale)."""
        sx, sy = view.scale
        x0, y0 = view.window[:2]
        return Georef(self.crs, self.transform @ Affine.translation(x0, y0) @ Affine.scale(1 / sx, 1 / sy))

    @property
    def pixel_size(self) -> float:
        """Side of a square of one pixel's area, in CRS units."""
        return abs(self.transform.determinant) ** 0.5

    def to_pixels(self, coords, crs, size):
        """A box (xmin, ymin, xmax, ymax) or point (x, y) in ``crs`` -> float pixels of a ``size`` (W, H) grid."""
        src = parse_crs(crs)
        c = np.asarray(coords, np.float64).reshape(-1)
        kind = "box" if c.size == 4 else "point"
        if c.size not in (2, 4) or not np.isfinite(c).all():
            raise (BoxError if kind == "box" else PointError)(f"{kind} must be finite numbers, got {coords!r}")
        move = transformer(src, self.crs)
        inverse = ~self.transform
        if kind == "point":
            x, y = _finite(np.array(move.transform(c[0], c[1])), f"point {c.tolist()}", crs, PointError)
            px = np.array(inverse @ (x, y))
            if not (0 <= px[0] < size[0] and 0 <= px[1] < size[1]):
                raise PointError(f"point {c.tolist()} in {crs} lies outside the raster (pixel {px.round(1).tolist()} "
                                 f"of {size[0]}x{size[1]})")
            return px
        if c[2] <= c[0] or c[3] <= c[1]:
            raise BoxError(f"box {c.tolist()} in {crs} must be xmin, ymin, xmax, ymax with min < max")
        bounds = c if src == self.crs else _finite(np.array(move.transform_bounds(*c, densify_pts=DENSIFY)),
                                                    f"box {c.tolist()}", crs)
        corners = np.array([inverse @ (x, y) for x in bounds[0::2] for y in bounds[1::2]])
        box = np.array([*corners.min(axis=0), *corners.max(axis=0)])
        if box[2] <= 0 or box[3] <= 0 or box[0] >= size[0] or box[1] >= size[1]:
            raster = self.bounds_in((0, 0, *size), src)
            raise BoxError(f"box {c.tolist()} in {crs} lies outside the raster, whose bounds there are "
                           f"{np.round(raster, 7).tolist()}")
        return box

    def to_map(self, box):
        """Pixel box -> ``[xmin, ymin, xmax, ymax]`` in this grid's CRS (the bounding box of its corners)."""
        corners = np.array([self.transform @ (x, y) for x in box[0::2] for y in box[1::2]])
        return [*corners.min(axis=0).tolist(), *corners.max(axis=0).tolist()]

    def bounds_in(self, box, crs):
        """Pixel box -> bounds in ``crs`` (outline densified)."""
        return list(transformer(self.crs, crs).transform_bounds(*self.to_map(box), densify_pts=DENSIFY))

    def describe_box(self, box):
        """``{"crs", "bounds", "lonlat"}`` of a pixel box, for results."""
        return {"crs": self.crs.to_string(), "bounds": self.to_map(box), "lonlat": self.bounds_in(box, LONLAT)}
