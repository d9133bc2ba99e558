"""The files of one query: mask.png (0/255), overlay.png and result.json, plus mask.tif, mask.geojson and
mask.gpkg when the input was georeferenced. Every writer of results (the commands, a batch engine) calls
:func:`write_query` per job."""
import json

import numpy as np

from .draw import overlay
from .files import write_text
from .image import save_rgb

RANDOM_TITLE = "RANDOM WEIGHTS - not a real result"


def write_query(folder, result, models=None, overlay_png=True):
    """Write one query's files into ``folder``; returns the overlay picture (h x w x 3 uint8), or None.

    ``result``: a :class:`~pslg.runtime.geo.GeoResult` (every command reads its input through a geo source;
    mask.png shows its view's pixels, and for a raster its ``geo`` block in result.json says where they lie).
    ``models``: the model set's summary, copied into result.json. ``overlay_png``: draw the overlay, write
    overlay.png and return the picture (False: neither, and None).
    """
    segment = result.result
    save_rgb(folder / "mask.png", segment.mask.astype(np.uint8) * 255)
    picture = None
    if overlay_png:
        label = f"{segment.mode}: {segment.phrase}" if segment.phrase else segment.mode
        random = any("RANDOM" in w for w in segment.warnings)
        picture = overlay(result.image, segment.mask, segment.box, segment.point, text=label,
                          title=RANDOM_TITLE if random else None)
        save_rgb(folder / "overlay.png", picture)
    report = dict(result.to_json(), models=models)
    if result.georef is not None:
        from .geo.write import write_geo
        report["geo"]["outputs"] = write_geo(folder, result)
    write_text(folder / "result.json", json.dumps(report, indent=2) + "\n")
    return picture
