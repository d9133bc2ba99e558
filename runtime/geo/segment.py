"""Segmenting objects of a raster (or an in-memory image) with a Pipeline, whatever the raster's size.

A source no larger than ``raster.LARGE_SIDE`` is read whole once and every query runs on it, exactly as
``Pipeline.segment`` on the array. A larger one is never read whole: a phrase is grounded on an overview of
at most ``overview_side`` px, its box mapped back to full resolution; each box is segmented on a window
around it (``window_around``: ``context`` x the box, at least ``min_window`` px, SAM's input side by
default) read at full resolution, or decimated to ``max_window`` px when the object itself is larger.
Nodata is kept out of each box (the box is cut to the data inside it) and goes to the pipeline with the
pixels (``set_image(rgb, valid)``), which keeps it out of every mask. :meth:`Segmenter.segment_boxes` puts
nearby boxes in one window, so each window is read and encoded once.
"""
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Optional

import numpy as np

from ..errors import BoxError, ParameterError, PointError
from ..prompts import check_box, check_point
from ..results import SegmentResult, _plain
from .view import View, data_box, union, window_around

#: see the module docstring
CONTEXT, MAX_WINDOW, OVERVIEW_SIDE = 1.5, 2048, 1024
#: phrases whose located boxes a Segmenter keeps
KEEP_LOCATED = 16


def _ms(t0):
    return (time.perf_counter() - t0) * 1e3


@dataclass(eq=False)
class GeoResult:
    """One segmented object: the pipeline's ``result`` in the pixels of ``view`` (what mask.png shows), the
    box and point in full-resolution source pixels, and the georeferencing (None: pixels only)."""

    result: SegmentResult
    view: View
    box: np.ndarray
    point: Optional[np.ndarray]
    source: Optional[dict]
    georef: object = None
    grounded_on: Optional[View] = None
    id: Optional[str] = None
    properties: dict = field(default_factory=dict)
    tolerance_px: float = 0.5
    _polygons: object = field(default=None, repr=False)
    _properties: object = field(default=None, repr=False)

    @property
    def image(self) -> np.ndarray:
        """The view's RGB pixels (h x w x 3 uint8) the mask lies on."""
        return self.view.rgb

    @cached_property
    def grid(self):
        """The :class:`~.crs.Georef` of the view (mask.png's and mask.tif's pixels), or None."""
        return None if self.georef is None else self.georef.of_view(self.view)

    def polygons(self):
        """The mask's outline as a shapely MultiPolygon in the raster's CRS (cached; needs a georeference)."""
        if self._polygons is None:
            from .vector import polygons
            self._polygons = polygons(self.result.mask, self.grid, self.tolerance_px)
        return self._polygons

    def feature_properties(self):
        """GeoJSON / GeoPackage properties: the query, its scores, the mask's area (cached, as the polygons)."""
        if self._properties is None:
            self._properties = self._feature_properties()
        return self._properties

    def _feature_properties(self):
        from .vector import area_m2
        r = self.result
        area, area_crs = area_m2(self.polygons(), self.georef.crs)
        return {"id": self.id, **self.properties, "phrase": r.phrase, "mode": r.mode, "box_source": r.box_source,
                "sam_score": _plain(r.sam_score), "grounding_score": r.grounding.score if r.grounding else None,
                "mask_area_px": int(np.count_nonzero(r.mask)), "pixel_area_m2": self._pixel_area(),
                "area_m2": area, "area_crs": area_crs, "simplify_tolerance_px": self.tolerance_px}

    def _pixel_area(self):
        from .vector import area_m2
        from shapely.geometry import box
        grid = self.grid
        return area_m2(box(*grid.to_map((0, 0, 1, 1))), grid.crs)[0]

    def to_json(self):
        """The pipeline result's JSON, plus a ``geo`` block for a raster source (plain images: unchanged)."""
        out = self.result.to_json()
        if self.source is None:
            return out
        geo = {"raster": self.source, "view": self.view.to_json(), "box_px": _plain(self.box),
               "point_px": _plain(self.point), "id": self.id, "properties": self.properties,
               "grounded_on": self.grounded_on.to_json() if self.grounded_on is not None else None,
               "georeferenced": self.georef is not None}
        if self.georef is not None:
            geo["box_map"] = self.georef.describe_box(self.box)
            geo["view"]["transform"] = list(self.grid.transform)[:6]
            props = self.feature_properties()
            geo["polygons"] = {"count": len(self.polygons().geoms), "simplify_tolerance_px": self.tolerance_px,
                               "area_m2": props["area_m2"], "area_crs": props["area_crs"]}
        return dict(out, geo=geo)


@dataclass(frozen=True)
class Located:
    """A phrase's box: the grounding (in the pixels of ``view``), the box in source pixels, the georeference."""

    grounding: object
    view: View
    box: np.ndarray
    source: Optional[dict]
    georef: object = None

    @classmethod
    def of(cls, grounding, view, source):
        """The grounding of a phrase on ``view`` of ``source``, its box taken to full-resolution pixels."""
        return cls(grounding, view, view.to_source(check_box(grounding.box, view.rgb.shape)), source.describe(),
                   source.georef)

    def to_json(self):
        out = self.grounding.to_json()
        if self.source is None:
            return out
        geo = {"raster": self.source, "grounded_on": self.view.to_json(), "box_px": _plain(self.box)}
        if self.georef is not None:
            geo["box_map"] = self.georef.describe_box(self.box)
        return dict(out, geo=geo)


def grounding_view(source, overview_side=OVERVIEW_SIDE):
    """What a phrase is grounded on: the whole source, or its overview when it is large."""
    return source.overview(overview_side) if source.large else source.read()


class Segmenter:
    """Segments objects of ``source`` (a :class:`~.raster.Raster` or :class:`~.view.ImageSource`) with an open
    :class:`~pslg.runtime.pipeline.Pipeline`; coordinates in pixels or, with ``crs=``, any CRS pyproj knows.

        with Raster("ortho.tif") as raster:
            seg = Segmenter(pipeline, raster)
            g = seg.segment(box=(-81.99, 29.68, -81.98, 29.69), crs="EPSG:4326", mode="full")
            g.result.mask, g.box, g.polygons()
    """

    def __init__(self, pipeline, source, *, context=CONTEXT, min_window=None, max_window=MAX_WINDOW,
                 overview_side=OVERVIEW_SIDE, tolerance_px=0.5):
        if not (context >= 1 and max_window >= 64 and overview_side >= 64 and tolerance_px >= 0):
            raise ParameterError(f"need context >= 1, max_window >= 64, overview_side >= 64, tolerance_px >= 0; "
                                 f"got {context}, {max_window}, {overview_side}, {tolerance_px}")
        self.pipeline, self.source = pipeline, source
        sam = getattr(pipeline, "sam_meta", None)
        self.min_window = min(max_window, min_window or (sam.image_size if sam is not None else 1024))
        self.context, self.max_window, self.overview_side = context, max_window, overview_side
        self.tolerance_px = tolerance_px
        self._whole = self._overview = self._window = self._shown = self._handle = None
        self._described = None
        self._located = {}

    # -- what the pipeline sees ----------------------------------------------------------------------------------

    def _show(self, view):
        """The pipeline's handle of ``view``'s pixels, set again only when the view (or its handle) changed."""
        if view is not self._shown or not self._handle.current:
            self._handle = self.pipeline.set_image(view.rgb, view.valid)
            self._shown = view
        return self._handle

    def _read(self, timings, read):
        t0 = time.perf_counter()
        view = read()
        timings["read"] = timings.get("read", 0.0) + _ms(t0)
        return view

    def _whole_view(self, timings):
        if self._whole is None:
            self._whole = self._read(timings, self.source.read)
        return self._whole

    def _grounding_view(self, timings):
        """What a phrase is grounded on (as :func:`grounding_view`), read once."""
        if not self.source.large:
            return self._whole_view(timings)
        if self._overview is None:
            self._overview = self._read(timings, lambda: self.source.overview(self.overview_side))
        return self._overview

    def window_for(self, box):
        """The full-resolution window a box is segmented on (the whole source when it is not large)."""
        if not self.source.large:
            return 0, 0, self.source.width, self.source.height
        return window_around(box, self.source.width, self.source.height, self.context, self.min_window)

    def _window_view(self, window, timings):
        if not self.source.large:
            return self._whole_view(timings)
        if self._window is None or self._window[0] != tuple(window):
            self._window = tuple(window), self._read(timings, lambda: self.source.read(window, self.max_window))
        return self._window[1]

    def describe(self):
        if self._described is None:
            self._described = self.source.describe()
        return self._described

    # -- queries -------------------------------------------------------------------------------------------------

    def _pixels(self, coords, crs):
        return None if coords is None else self.source.to_pixels(coords, crs)

    def locate(self, text) -> Located:
        """The box of a phrase: grounded on the whole source, or on its overview when it is large (the last
        phrases' boxes are kept, so several modes of one phrase ground it once)."""
        return self._locate(text)[0]

    def _locate(self, text):
        """``(located, fresh)``: fresh is False when the box was kept from an earlier query."""
        if text in self._located:
            return self._located[text], False
        timings = {}
        view = self._grounding_view(timings)
        grounding = self.pipeline.locate(text, image=self._show(view))
        grounding.timings_ms.update(timings)
        located = self._located[text] = Located.of(grounding, view, self.source)
        while len(self._located) > KEEP_LOCATED:
            self._located.pop(next(iter(self._located)))
        return located, True

    def segment(self, text=None, box=None, point=None, crs=None, mode="full", multimask=False, seed=0, id=None,
                properties=None) -> GeoResult:
        """One object, by phrase or box (``box`` wins; the phrase stays the label), as ``Pipeline.segment``.

        ``box`` (x1, y1, x2, y2) and ``point`` (x, y) are full-resolution pixels, or coordinates in ``crs``
        (a box then being xmin, ymin, xmax, ymax there). Returns a :class:`GeoResult`.
        """
        if text is None and box is None:
            raise ParameterError("segment needs text='...' or box=(x1, y1, x2, y2)")
        t0 = time.perf_counter()
        timings, warnings = {}, []
        box_px = self._pixels(box, crs)
        point_px = self._pixels(point, crs)
        shape = (self.source.height, self.source.width)
        grounding = grounded_on = None
        if box_px is None and self.source.large:
            located, fresh = self._locate(text)
            grounding, grounded_on, box_px = located.grounding, located.view, located.box
            if fresh:
                timings.update({"text_encoder" if k == "text" else k: v for k, v in grounding.timings_ms.items()})
            warnings += [w for w in grounding.warnings if w not in warnings]
        if box_px is not None:
            box_px = check_box(box_px, shape, warnings)
        if point_px is not None:
            point_px = check_point(point_px, shape)
        view = self._window_view(self.window_for(box_px) if box_px is not None else None, timings)
        return self._segment(view, text, box_px, point_px, mode, multimask, seed, id, properties, grounding,
                             grounded_on, timings, warnings, t0)

    def _segment(self, view, text, box_px, point_px, mode, multimask, seed, id, properties, grounding, grounded_on,
                 timings, warnings, t0):
        handle = self._show(view)
        local_box = None
        if box_px is not None:
            local_box = data_box(view.from_source(box_px), view.valid)
            if local_box is None:
                raise BoxError(f"box {np.round(box_px, 2).tolist()} covers only nodata")
        local_point = None
        if point_px is not None:
            local_point = view.from_source(point_px)
            if not (0 <= local_point[0] < view.rgb.shape[1] and 0 <= local_point[1] < view.rgb.shape[0]):
                raise PointError(f"point {point_px.tolist()} lies outside the window {list(view.window)} read "
                                 f"around the box")
        r = self.pipeline.segment(text=text, box=local_box, point=local_point, mode=mode, multimask=multimask,
                                  seed=seed, image=handle)
        timings.update(r.timings_ms)
        warnings += [w for w in r.warnings if w not in warnings]
        timings["total"] = _ms(t0)
        if grounding is not None:
            r = replace(r, box_source="text", grounding=grounding)
        r = replace(r, timings_ms=timings, warnings=warnings + list(getattr(self.source, "warnings", ())))
        return GeoResult(r, view, view.to_source(r.box), None if r.point is None else view.to_source(r.point),
                         self.describe(), self.source.georef, grounded_on, id, dict(properties or {}),
                         self.tolerance_px)

    def groups(self, boxes):
        """Boxes (full-resolution pixels) grouped by the window they share: ``[(window, [indices])]``.

        First fit: a box joins the first group whose window, grown by the box's own window, stays within
        ``max_window`` px a side; else it opens a group. A source read whole is one group.
        """
        groups = []
        for i, b in enumerate(boxes):
            own = self.window_for(b)
            for g in groups:
                grown = union(g[0], own)
                if not self.source.large or max(grown[2] - grown[0], grown[3] - grown[1]) <= self.max_window:
                    g[0], _ = grown, g[1].append(i)
                    break
            else:
                groups.append([own, [i]])
        return [(tuple(w), idx) for w, idx in groups]

    def segment_boxes(self, jobs, crs=None, mode="full", multimask=False, seed=0, progress=None):
        """Segment many objects; ``jobs``: :class:`~.boxes.BoxJob` s (or plain boxes). Every box is converted
        and checked before any is segmented; each shared window is read and encoded once. Results in job order.

        ``progress``: called with each finished :class:`GeoResult` (e.g. a tqdm update).
        """
        shape = (self.source.height, self.source.width)
        boxes, notes = [], []
        for n, job in enumerate(jobs):
            coords, job_crs = (job.box, job.crs) if hasattr(job, "box") else (job, crs)
            try:
                notes.append([])
                boxes.append(check_box(self._pixels(coords, job_crs), shape, notes[-1]))
            except (BoxError, ParameterError) as e:
                raise type(e)(f"box {getattr(job, 'id', n)}: {e.message}") from None
        results = [None] * len(boxes)
        for window, members in self.groups(boxes):
            timings = {}
            view = self._window_view(window, timings)
            for i in members:
                job = jobs[i]
                results[i] = self._segment(view, None, boxes[i], None, mode, multimask, seed,
                                           getattr(job, "id", str(i)), getattr(job, "properties", {}), None, None,
                                           timings, list(notes[i]), time.perf_counter())
                timings = {}
                if progress is not None:
                    progress(results[i])
        return results
