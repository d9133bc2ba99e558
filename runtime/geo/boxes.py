"""Boxes files for ``pslg segment --boxes``: GeoJSON (RFC 7946 lon/lat unless told otherwise) or CSV.

* GeoJSON: a FeatureCollection (or one Feature); each feature's box is the bounding box of its geometry;
  its ``id`` (or ``properties.id``) names it, its properties travel to the output. Coordinates are in
  EPSG:4326 (RFC 7946), or in the CRS of an old-style ``crs`` member, or in what ``crs=`` says
  (``"pixel"``: pixels).
* CSV: a header with ``x1, y1, x2, y2`` (or ``xmin, ymin, xmax, ymax``) columns, optional ``id``; other
  columns travel as properties. Coordinates are pixels unless ``crs=`` names a CRS.
"""
import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import BoxError, ParameterError, PathError

PIXEL = "pixel"
COLUMNS = (("x1", "y1", "x2", "y2"), ("xmin", "ymin", "xmax", "ymax"))


@dataclass(frozen=True)
class BoxJob:
    """One box to segment: ``box`` x1, y1, x2, y2 in ``crs`` (None: pixels)."""

    id: str
    box: tuple
    crs: Optional[str]
    properties: dict = field(default_factory=dict)


def _crs(given, default):
    crs = default if given is None else given
    return None if crs is None or str(crs).lower() in (PIXEL, "pixels") else crs


def _coordinates(geometry):
    if geometry.get("type") == "GeometryCollection":
        return [c for g in geometry.get("geometries", []) for c in _coordinates(g)]
    return list(_points(geometry.get("coordinates") or []))


def _points(value):
    if value and isinstance(value[0], (int, float)) and not isinstance(value[0], bool):
        yield value[:2]
    else:
        for v in value:
            yield from _points(v)


def _read_geojson(path, text, crs):
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ParameterError(f"boxes file {path} is not JSON: {e}") from None
    named = (doc.get("crs") or {}).get("properties", {}).get("name") if isinstance(doc, dict) else None
    crs = _crs(crs, named or "EPSG:4326")
    feats = doc.get("features") if isinstance(doc, dict) and doc.get("type") == "FeatureCollection" else [doc]
    jobs = []
    for n, f in enumerate(feats or []):
        if not isinstance(f, dict) or not isinstance(f.get("geometry"), dict):
            raise BoxError(f"boxes file {path}: feature {n} has no geometry")
        try:
            pts = np.array(_coordinates(f["geometry"]), np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            pts = np.empty((0, 2))
        if pts.size == 0 or not np.isfinite(pts).all():
            raise BoxError(f"boxes file {path}: feature {n} has no (finite) coordinates")
        props = dict(f.get("properties") or {})
        fid = f.get("id", props.pop("id", n))
        jobs.append(BoxJob(str(fid), (*pts.min(axis=0), *pts.max(axis=0)), crs, props))
    return jobs


def _read_csv(path, text, crs):
    rows = list(csv.DictReader(text.splitlines()))
    header = {k.strip().lower(): k for k in (rows[0].keys() if rows else [])}
    names = next((c for c in COLUMNS if all(n in header for n in c)), None)
    if names is None:
        raise ParameterError(f"boxes file {path} needs columns {', '.join(COLUMNS[0])} (or "
                             f"{', '.join(COLUMNS[1])}); it has {', '.join(header) or 'none'}")
    jobs = []
    for n, row in enumerate(rows, start=2):
        try:
            box = tuple(float(row[header[c]]) for c in names)
        except (TypeError, ValueError):
            raise BoxError(f"boxes file {path}, line {n}: {', '.join(names)} must be numbers") from None
        props = {k: v for k, v in row.items() if k.strip().lower() not in names and k.strip().lower() != "id"}
        fid = row[header["id"]] if "id" in header else n - 2
        jobs.append(BoxJob(str(fid), box, _crs(crs, None), props))
    return jobs


def read_boxes(path, crs=None):
    """The :class:`BoxJob` s of a ``.geojson``/``.json`` or ``.csv`` file; ``crs``: the CRS of its numbers
    (``"pixel"`` for pixels), overriding the file's default."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise PathError(f"cannot read boxes file {path}: {getattr(e, 'strerror', None) or e}") from None
    suffix = path.suffix.lower()
    if suffix in (".geojson", ".json"):
        jobs = _read_geojson(path, text, crs)
    elif suffix == ".csv":
        jobs = _read_csv(path, text, crs)
    else:
        raise ParameterError(f"boxes file {path}: give a .geojson, .json or .csv file")
    if not jobs:
        raise ParameterError(f"boxes file {path} holds no boxes")
    return jobs
