"""A GeoPackage (OGC 12-128r18, version 1.4) vector writer: one feature table of MultiPolygons, sqlite3 + WKB.

What GDAL, QGIS and ArcGIS read: the ``GPKG`` application id, the three required metadata tables with the
spec's three default spatial reference systems plus the layer's own, and geometries as GeoPackage binary
(the ``GP`` header: version 0, little-endian, an x/y envelope, the srs id) followed by ISO WKB. No spatial
index (optional in the spec). An empty geometry is stored as NULL.
"""
import json
import os
import sqlite3
import struct
from pathlib import Path

from ..errors import PathError
from ..extras import require

shapely = require("shapely", "geo", "GeoPackage output")
pyproj = require("pyproj", "geo", "GeoPackage output")

APPLICATION_ID = 0x47504B47     # "GPKG"
USER_VERSION = 10400            # 1.4.0
#: srs_id given to a CRS without an EPSG code (user-defined ids start at 32768 in GDAL; any unused id is valid)
CUSTOM_SRS_ID = 100000

_SCHEMA = """
CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
  organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
  description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL,
  geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
  CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name), CONSTRAINT uk_gc_table_name UNIQUE (table_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
"""


def _srs_rows(crs):
    wgs84 = ("WGS 84 geodetic", 4326, "EPSG", 4326, pyproj.CRS(4326).to_wkt("WKT1_GDAL"),
             "longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid")
    rows = {-1: ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", "undefined cartesian coordinate reference "
                 "system"),
            0: ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic coordinate reference "
                "system"),
            4326: wgs84}
    epsg = crs.to_epsg()
    srs_id = epsg if epsg is not None else CUSTOM_SRS_ID
    rows.setdefault(srs_id, (crs.name, srs_id, "EPSG" if epsg else "NONE", epsg or srs_id, crs.to_wkt("WKT1_GDAL"),
                             None))
    return list(rows.values()), srs_id


def geometry_blob(geom, srs_id):
    """GeoPackage binary of a non-empty geometry: header, envelope (minx, maxx, miny, maxy), ISO WKB."""
    minx, miny, maxx, maxy = geom.bounds
    header = b"GP" + struct.pack("<BBi4d", 0, 0b011, srs_id, minx, maxx, miny, maxy)
    return header + shapely.to_wkb(geom, output_dimension=2, byte_order=1, flavor="iso")


def _column_type(values):
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, bool):
        return "BOOLEAN"
    if isinstance(sample, int):
        return "INTEGER"
    if isinstance(sample, float):
        return "REAL"
    return "TEXT"


def _cell(value, kind):
    if value is None:
        return None
    if kind == "TEXT" and not isinstance(value, str):
        return json.dumps(value)
    return int(value) if kind == "BOOLEAN" else value


def write_gpkg(path, rows, crs, table="masks", description=""):
    """Write ``rows`` (``(MultiPolygon in crs, properties dict)``) as one feature table; returns the path.

    Property names become columns (typed from their first non-null value: INTEGER, REAL, BOOLEAN, else
    TEXT, with lists and dicts as JSON text). Written through a temporary name; failures are PathErrors.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    srs, srs_id = _srs_rows(crs)
    names = list(dict.fromkeys(k for _, props in rows for k in props))
    kinds = {n: _column_type([props.get(n) for _, props in rows]) for n in names}
    shapes = [g for g, _ in rows if not g.is_empty]
    bounds = tuple(shapely.total_bounds(shapes).tolist()) if shapes else (None,) * 4
    try:
        tmp.unlink(missing_ok=True)
        with sqlite3.connect(tmp) as db:
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {USER_VERSION}")
            db.executescript(_SCHEMA)
            db.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", srs)
            columns = "".join(f", {_quote(n)} {kinds[n]}" for n in names)
            db.execute(f"CREATE TABLE {_quote(table)} (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, "
                       f"geom MULTIPOLYGON{columns})")
            db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, description, min_x, min_y, "
                       "max_x, max_y, srs_id) VALUES (?, 'features', ?, ?, ?, ?, ?, ?, ?)",
                       (table, table, description, *bounds, srs_id))
            db.execute("INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', 'MULTIPOLYGON', ?, 0, 0)", (table, srs_id))
            marks = ", ".join("?" * (len(names) + 1))
            db.executemany(f"INSERT INTO {_quote(table)} (geom{''.join(', ' + _quote(n) for n in names)}) "
                           f"VALUES ({marks})",
                           [(None if g.is_empty else geometry_blob(g, srs_id),
                             *(_cell(props.get(n), kinds[n]) for n in names)) for g, props in rows])
        db.close()
        os.replace(tmp, path)
    except (sqlite3.Error, OSError) as e:
        tmp.unlink(missing_ok=True)
        raise PathError(f"cannot write {path}: {e}") from None
    return path


def _quote(name):
    return '"' + str(name).replace('"', '""') + '"'
