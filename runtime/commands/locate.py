"""Find the box of a phrase with LQVG alone; prints the box, its score and every query's raw output as JSON."""
import json

from ..draw import overlay
from ..files import output_file
from ..grounding import Grounder, caption
from ..image import load_image, save_rgb
from .options import add_models, add_runner, runner_options


def add_arguments(parser):
    parser.add_argument("image", help="image file (PNG, JPEG, TIFF ...)")
    add_models(parser, help="model set with an lqvg component")
    parser.add_argument("--text", required=True, metavar="PHRASE", help="what to find, e.g. 'the ship on the left'")
    parser.add_argument("--draw", metavar="PATH", help="also write the image with the box and phrase (PNG or JPEG)")
    add_runner(parser)


def run(args):
    caption(args.text)  # refuse an empty phrase or an unwritable --draw before loading anything
    draw = output_file(args.draw) if args.draw else None
    image = load_image(args.image)
    with Grounder(args.models, runner_options(args)) as grounder:
        result = grounder.locate(image, args.text)
    if draw:
        save_rgb(draw, overlay(image, box=result.box, text=f"{result.caption} {result.score:.2f}"))
    print(json.dumps(result.to_json()))
    return 0
