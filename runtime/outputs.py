"""The files of one query: mask.png (0/255), overlay.png and result.json, plus mask.tif, mask.geojson and
mask.gpkg when the input was georeferenced. Every writer of results (the commands, a batch engine) calls
:func:`write_query` per job."""
import json

import numpy as np

from .draw import overlay
from .files import write_text
from .image import save_rgb
from .results import SegmentResult

RANDOM_TITLE = "RANDOM WEIGHTS - not a real result"


def write_query(folder, image, result, models=None, overlay_png=True):
    """Write one query's files into ``folder``; returns the overlay picture (h x w x 3 uint8), or None.

    ``result``: a :class:`~pslg.runtime.results.SegmentResult` with the ``image`` (H x W x 3 uint8) it was
    segmented on, or a :class:`~pslg.runtime.geo.GeoResult` (``image`` None: it carries its view, and
    mask.png then shows that view's pixels; its ``geo`` block in result.json says where they lie).
    ``models``: the model set's summary, copied into result.json. ``overlay_png``: draw the overlay, write
    overlay.png and return the picture (False: neither, and None).
    """
    plain = isinstance(result, SegmentResult)
    segment = result if plain else result.result
    if plain and image is None:
        raise TypeError("write_query needs the image a SegmentResult was segmented on")
    image = image if plain else result.image
    save_rgb(folder / "mask.png", segment.mask.astype(np.uint8) * 255)
    picture = None
    if overlay_png:
        label = f"{segment.mode}: {segment.phrase}" if segment.phrase else segment.mode
        random = any("RANDOM" in w for w in segment.warnings)
        picture = overlay(image, segment.mask, segment.box, segment.point, text=label,
                          title=RANDOM_TITLE if random else None)
        save_rgb(folder / "overlay.png", picture)
    report = dict(result.to_json(), models=models)
    if not plain and result.georef is not None:
        from .geo.write import write_geo
        report["geo"]["outputs"] = write_geo(folder, result)
    write_text(folder / "result.json", json.dumps(report, indent=2) + "\n")
    return picture
