"""GeoTIFF / COG rasters read with rasterio: band choice, 8-bit conversion, nodata, windows and overviews.

A raster is never read whole when a side exceeds ``LARGE_SIDE``: queries read the window around their box
(at full resolution up to ``max_side``, decimated above) and phrases are grounded on an overview (a GDAL
overview where the file has them, a decimated read of the full resolution where not). Every pixel read goes
through :meth:`Raster._read`.

Bands: ``bands`` (1-based) picks one band (gray, replicated to RGB) or three (R, G, B). By default a 1- or
2-band raster shows band 1; a raster with 3 or more shows the bands its colour interpretation calls red,
green and blue, else bands 1, 2, 3 (with a warning above 3 bands). ``uint8`` bands are taken as they are;
``uint16``/``int16`` ones are stretched by :mod:`.stretch`'s rule; other types are refused. Nodata comes
from GDAL's masks (the nodata value, an alpha band or a mask band): a pixel is valid when any chosen band is.
"""
import logging
import math
import warnings as pywarnings
from pathlib import Path

import numpy as np

from ..errors import ImageError, ParameterError
from ..extras import require
from .stretch import Stretch
from .view import View

rasterio = require("rasterio", "geo", "GeoTIFF input")
from rasterio.enums import ColorInterp, MaskFlags, Resampling  # noqa: E402
from rasterio.errors import NotGeoreferencedWarning, RasterioError  # noqa: E402
from rasterio.windows import Window  # noqa: E402

log = logging.getLogger(__name__)

#: rasters with a side above this are never read whole
LARGE_SIDE = 4096
#: long side of the overview a 16-bit raster's stretch is fitted on
SAMPLE_SIDE = 1024
#: MB of GDAL block cache (GDAL's default, 5 % of RAM, would keep hundreds of MB of a large raster's tiles)
CACHE_MB = 64
DTYPES = ("uint8", "uint16", "int16")


def _env():
    return rasterio.Env(GDAL_CACHEMAX=CACHE_MB)


class Raster:
    """An open raster file (``with Raster(path) as r: ...``); ``bands`` as described in the module.

    Like the rasterio datasets it holds, a Raster serves one thread at a time: open one per thread.
    """

    def __init__(self, path, bands=None):
        self.path = Path(path)
        if not self.path.is_file():
            raise ImageError(f"image file {self.path} does not exist" + (" (it is a folder)" if self.path.is_dir()
                                                                          else ""))
        self._overviews = {}
        try:
            with _env(), pywarnings.catch_warnings():
                pywarnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._ds = rasterio.open(self.path)
        except RasterioError as e:
            raise ImageError(f"{self.path} is not a raster GDAL can read (corrupt or truncated?): {e}") from None
        try:
            self._check(bands)
        except BaseException:
            self.close()
            raise

    def _check(self, bands):
        ds = self._ds
        self.width, self.height, self.count = ds.width, ds.height, ds.count
        self.warnings = []
        self.bands = self._bands(bands)
        dtypes = {ds.dtypes[b - 1] for b in self.bands}
        if len(dtypes) != 1 or not dtypes <= set(DTYPES):
            raise ImageError(f"{self.path}: bands {list(self.bands)} have type {', '.join(sorted(dtypes))}; this "
                             f"reader takes one of {', '.join(DTYPES)} (convert float rasters to 8 or 16 bits)")
        self.dtype = dtypes.pop()
        self.crs, self.transform = ds.crs, ds.transform
        self.georeferenced = self.crs is not None and not self.transform.is_identity
        if not self.georeferenced:
            what = "no CRS" if self.crs is None else "a CRS but no geotransform"
            self._warn(f"{self.path.name} has {what}: working in pixels; no mask.tif, mask.geojson or mask.gpkg "
                       f"are written")
        if self.transform.b or self.transform.d:
            self._warn(f"{self.path.name} has a rotated geotransform: boxes in map coordinates are taken as "
                       f"their pixel bounding boxes")
        self.nodata = ds.nodata
        self.all_valid = all(ds.mask_flag_enums[b - 1] == [MaskFlags.all_valid] for b in self.bands)
        self.overview_factors = tuple(ds.overviews(self.bands[0]))
        self.large = max(self.width, self.height) > LARGE_SIDE
        self._stretch = None

    def _warn(self, message):
        log.warning(message)
        self.warnings.append(message)

    def _bands(self, bands):
        if bands is not None:
            try:
                chosen = tuple(int(b) for b in bands)
            except (TypeError, ValueError):
                raise ParameterError(f"bands must be band numbers (1-based), got {bands!r}") from None
            if len(chosen) not in (1, 3) or not all(1 <= b <= self.count for b in chosen):
                raise ParameterError(f"bands {list(chosen)}: give 1 (gray) or 3 (R, G, B) band numbers between 1 "
                                     f"and {self.count} ({self.path.name} has {self.count})")
            return chosen
        if self.count < 3:
            return (1,)
        interp = list(self._ds.colorinterp)
        rgb = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        if all(c in interp for c in rgb):
            return tuple(interp.index(c) + 1 for c in rgb)
        if self.count > 3:
            self._warn(f"{self.path.name} has {self.count} bands and no red/green/blue colour interpretation: "
                       f"bands 1, 2, 3 are shown as R, G, B (choose with --bands)")
        return 1, 2, 3

    # -- reading -------------------------------------------------------------------------------------------------

    def _dataset(self, level):
        if level is None:
            return self._ds
        if level not in self._overviews:
            with _env():
                self._overviews[level] = rasterio.open(self.path, overview_level=level)
        return self._overviews[level]

    def _read(self, level, window, shape):
        """Values (bands x h x w) and validity (h x w bool, or None: all valid) of ``window`` (x0, y0, x1, y1 of
        dataset ``level``: None = full resolution) resampled to ``shape`` (h, w)."""
        ds = self._dataset(level)
        x0, y0, x1, y1 = window
        win = Window(x0, y0, x1 - x0, y1 - y0)
        exact = shape == (y1 - y0, x1 - x0)
        out_shape = (len(self.bands),) + tuple(shape)
        try:
            with _env():
                data = ds.read(self.bands, window=win, out_shape=out_shape,
                               resampling=Resampling.nearest if exact else Resampling.average)
                valid = None if self.all_valid else \
                    ds.read_masks(self.bands, window=win, out_shape=out_shape, resampling=Resampling.nearest).any(0)
        except RasterioError as e:
            raise ImageError(f"cannot read {self.path} (window {list(window)}): {e}") from None
        return data, (None if valid is None or valid.all() else valid)

    def _rgb8(self, data, sample=None):
        """Values -> h x w x 3 uint8 (nodata pixels keep what the file stores; ``View.valid`` marks them)."""
        rgb = data.transpose(1, 2, 0) if self.dtype == "uint8" else self._fit(sample).apply(data)
        return np.ascontiguousarray(np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb)

    def _fit(self, sample=None):
        if self._stretch is None:
            data, valid, what = sample or self._sample()
            self._stretch = Stretch.fit(data, valid, what, str(self.path))
        return self._stretch

    def _sample(self):
        """``(data, valid, description)`` the stretch is fitted on."""
        data, valid, _, source = self._raw(None, SAMPLE_SIDE if self.large else None)
        return data, valid, "the whole raster" if not self.large else f"the {source} read of the whole raster"

    @property
    def stretch(self):
        """The 8-bit conversion of a non-8-bit raster (fitted on first use), None for 8-bit bands."""
        return None if self.dtype == "uint8" else self._fit()

    def read(self, window=None, max_side=None) -> View:
        """The full-resolution window ``(x0, y0, x1, y1)`` (default: the whole raster) as a :class:`View`; a
        window longer than ``max_side`` px is read decimated to it, from the coarsest overview still at least
        that fine (the view's window is then that overview's pixels, in full-resolution units). Refuses a
        window of nodata only."""
        data, valid, covered, source = self._raw(window, max_side)
        whole = covered == (0, 0, self.width, self.height) and data.shape[1:] == (self.height, self.width)
        sample = (data, valid, "the whole raster") if whole and self._stretch is None else None
        return View(self._rgb8(data, sample), valid, covered, source)

    def _raw(self, window, max_side):
        """``(values, valid, covered window, description)`` of :meth:`read`."""
        x0, y0, x1, y1 = window or (0, 0, self.width, self.height)
        if not (0 <= x0 < x1 <= self.width and 0 <= y0 < y1 <= self.height):
            raise ParameterError(f"window {[x0, y0, x1, y1]} is not inside the {self.width}x{self.height} raster")
        scale = 1.0 if max_side is None else min(1.0, max_side / max(x1 - x0, y1 - y0))
        level, factor = self._level(scale)
        if level is None:
            source = "full resolution" if scale == 1.0 else \
                f"full resolution decimated to 1/{1 / scale:.3g}" + (" (the file has no overviews)"
                                                                    if not self.overview_factors else "")
            fx = fy = 1.0
            read_window = (x0, y0, x1, y1)
        else:
            ds = self._dataset(level)
            fx, fy = self.width / ds.width, self.height / ds.height
            read_window = (math.floor(x0 / fx), math.floor(y0 / fy), min(ds.width, math.ceil(x1 / fx)),
                           min(ds.height, math.ceil(y1 / fy)))
            source = f"overview {level} (1/{factor}, {ds.width}x{ds.height})"
        lx0, ly0, lx1, ly1 = read_window
        cap = max_side or max(self.width, self.height)
        shape = tuple(min(cap, max(1, round(n))) for n in ((ly1 - ly0) * fy * scale, (lx1 - lx0) * fx * scale))
        data, valid = self._read(level, read_window, shape)
        if valid is not None and not valid.any():
            raise ImageError(f"{self.path} holds only nodata in the window {[x0, y0, x1, y1]}")
        covered = (lx0 * fx, ly0 * fy, min(self.width, lx1 * fx), min(self.height, ly1 * fy))
        return data, valid, tuple(int(v) if float(v).is_integer() else float(v) for v in covered), source

    def _level(self, scale):
        """``(overview level, factor)`` of the coarsest overview at least as fine as ``scale``, or ``(None, 1)``."""
        usable = [(f, i) for i, f in enumerate(self.overview_factors) if f <= 1 / scale]
        return (None, 1) if scale == 1.0 or not usable else max(usable)[::-1]

    def overview(self, max_side=1024) -> View:
        """The whole raster at <= ``max_side`` px along its long side (a decimated read where the file has
        no overviews)."""
        return self.read(None, max_side)

    # -- coordinates ---------------------------------------------------------------------------------------------

    @property
    def georef(self):
        """The :class:`~.crs.Georef` of the full-resolution grid, or None when not georeferenced."""
        if not self.georeferenced:
            return None
        from .crs import Georef
        return Georef.of(self.crs, self.transform)

    def to_pixels(self, coords, crs):
        """Box ``x1, y1, x2, y2`` (4 numbers) or point ``x, y`` (2) in ``crs`` (None: pixels) -> raster pixels."""
        if crs is None:
            return np.asarray(coords, np.float64)
        if not self.georeferenced:
            raise ParameterError(f"coordinates in {crs} need a georeferenced raster; {self.path.name} has no "
                                 f"{'CRS' if self.crs is None else 'geotransform'}: give pixels")
        return self.georef.to_pixels(coords, crs, (self.width, self.height))

    def describe(self):
        """JSON-ready facts of the raster for results."""
        stretch = self.stretch
        return {"path": str(self.path), "width": self.width, "height": self.height, "count": self.count,
                "bands": list(self.bands), "dtype": self.dtype, "nodata": self.nodata,
                "georeferenced": self.georeferenced, "crs": self.crs.to_string() if self.crs else None,
                "transform": list(self.transform)[:6], "overviews": list(self.overview_factors), "large": self.large,
                "stretch": stretch.to_json() if stretch else None}

    def close(self):
        for ds in [getattr(self, "_ds", None), *self._overviews.values()]:
            if ds is not None:
                ds.close()
        self._overviews = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load_rgb(path, bands=None):
    """A raster file read whole as H x W x 3 uint8 RGB (what ``pslg.runtime.image.load_image`` returns for TIFF)."""
    with Raster(path, bands) as raster:
        return raster.read().rgb
