"""Find the box of a phrase with LQVG alone; prints the box, its score and every query's raw output as JSON."""
import json

from ..draw import overlay
from ..files import output_file
from ..geo import open_source
from ..geo.segment import Located, grounding_view
from ..grounding import Grounder, caption
from ..image import save_rgb
from .options import add_models, add_raster, add_runner, raster_arguments, runner_options


def add_arguments(parser):
    parser.add_argument("image", help="image file (PNG, JPEG ...), or a GeoTIFF / COG (a large one is grounded "
                                      "on its overview)")
    add_models(parser, help="model set with an lqvg component")
    parser.add_argument("--text", required=True, metavar="PHRASE", help="what to find, e.g. 'the ship on the left'")
    parser.add_argument("--draw", metavar="PATH", help="also write the image with the box and phrase (PNG or JPEG)")
    add_raster(parser)
    add_runner(parser)


def run(args):
    caption(args.text)  # refuse an empty phrase or an unwritable --draw before loading anything
    draw = output_file(args.draw) if args.draw else None
    bands, _ = raster_arguments(args)
    with open_source(args.image, bands) as source:
        view = grounding_view(source)
        with Grounder(args.models, runner_options(args)) as grounder:
            located = Located.of(grounder.locate(view.rgb, args.text), view, source)
        report = located.to_json()
    result = located.grounding
    if draw:
        save_rgb(draw, overlay(view.rgb, box=result.box, text=f"{result.caption} {result.score:.2f}"))
    print(json.dumps(report))
    return 0
