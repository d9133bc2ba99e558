"""What a query runs on: a view (pixels, valid mask, the source window it covers) and the plain in-memory image source.

A view's pixel ``(c, r)`` covers the source pixels ``[x0 + c / sx, x0 + (c + 1) / sx)`` across (and likewise
down), where ``(x0, y0, x1, y1)`` is its window in full-resolution source pixels (exclusive end; not whole numbers
where an overview's pixel edges fall between full-resolution ones) and ``sx = width / (x1 - x0)`` (1 at full
resolution, below 1 for a decimated read or an overview).
"""
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import ImageError, ParameterError


@dataclass(frozen=True, eq=False)
class View:
    """``rgb`` (h x w x 3 uint8), ``valid`` (h x w bool, True where the source has data; None: all valid),
    ``window`` (x0, y0, x1, y1) in full-resolution source pixels, ``source``: how it was read."""

    rgb: np.ndarray
    valid: Optional[np.ndarray]
    window: tuple
    source: str

    @property
    def scale(self):
        """``(sx, sy)``: view pixels per source pixel."""
        x0, y0, x1, y1 = self.window
        return self.rgb.shape[1] / (x1 - x0), self.rgb.shape[0] / (y1 - y0)

    def to_source(self, coords):
        """View-pixel coordinates (``[..., 2k]`` as x, y, x, y ...) -> full-resolution source pixels (float64)."""
        (sx, sy), (x0, y0) = self.scale, self.window[:2]
        c = np.array(coords, np.float64)
        c[..., 0::2] = c[..., 0::2] / sx + x0
        c[..., 1::2] = c[..., 1::2] / sy + y0
        return c

    def from_source(self, coords):
        """Full-resolution source pixels (x, y, ...) -> view pixels (float64)."""
        (sx, sy), (x0, y0) = self.scale, self.window[:2]
        c = np.array(coords, np.float64)
        c[..., 0::2] = (c[..., 0::2] - x0) * sx
        c[..., 1::2] = (c[..., 1::2] - y0) * sy
        return c

    def to_json(self):
        sx, sy = self.scale
        return {"window": [v if isinstance(v, int) else round(v, 6) for v in self.window],
                "size": [int(self.rgb.shape[1]), int(self.rgb.shape[0])], "scale": [sx, sy], "source": self.source,
                "nodata_px": 0 if self.valid is None else int(self.valid.size - np.count_nonzero(self.valid))}


def window_around(box, width, height, context=1.5, min_side=1024):
    """Integer window (x0, y0, x1, y1) centred on ``box``: per axis ``max(min_side, context x box side)``, inside
    a ``width x height`` source (shifted inward at its edges, cut to its size)."""
    out = []
    for lo, hi, size in ((box[0], box[2], width), (box[1], box[3], height)):
        side = min(size, max(int(min_side), math.ceil((hi - lo) * context)))
        start = min(max(0, math.floor((lo + hi) / 2 - side / 2)), size - side)
        out.append((start, start + side))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def union(a, b):
    """The smallest window holding windows ``a`` and ``b``."""
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def data_box(box, valid):
    """``box`` (view pixels) cut to the bounding box of the valid pixels inside it; None when it holds none."""
    if valid is None:
        return np.asarray(box, np.float64)
    x0, y0 = math.floor(box[0]), math.floor(box[1])
    inside = valid[y0:math.ceil(box[3]), x0:math.ceil(box[2])]
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    if rows.size == 0:
        return None
    return np.array([max(box[0], x0 + cols[0]), max(box[1], y0 + rows[0]),
                     min(box[2], x0 + cols[-1] + 1), min(box[3], y0 + rows[-1] + 1)])


class ImageSource:
    """An in-memory H x W x 3 uint8 RGB image as a source (convert others with ``pslg.runtime.image.to_rgb8``):
    always read whole, in pixels, no georeferencing."""

    large = False
    georef = None
    warnings = ()

    def __init__(self, image, name="image"):
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
            raise ImageError(f"{name} must be an H x W x 3 uint8 RGB array (pslg.runtime.image.to_rgb8 converts), got "
                             f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}")
        self.rgb = image
        self.name = name
        self.height, self.width = self.rgb.shape[:2]

    def read(self, window=None, max_side=None) -> View:
        return View(self.rgb, None, (0, 0, self.width, self.height), "whole image")

    overview = read

    def to_pixels(self, coords, crs):
        """Only pixel coordinates exist for a plain image."""
        if crs is not None:
            raise ParameterError(f"coordinates in {crs} need a georeferenced raster (GeoTIFF); {self.name} is a "
                                 f"plain image: give pixels")
        return np.asarray(coords, np.float64)

    def describe(self):
        """None: a plain image adds no ``geo`` block to results."""
        return None

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
