"""Segment inside a box with SAM (plus an optional foreground point): mask.png, overlay.png, result.json."""
import json

from ..files import output_dir
from ..image import load_image
from ..pipeline import Pipeline
from ..prompts import parse_numbers
from .options import add_models, add_runner, runner_options
from .run import write_query


def add_arguments(parser):
    parser.add_argument("image", help="image file (converted to 8-bit RGB, see README)")
    add_models(parser, help="model-set folder with sam_encoder/sam_decoder")
    parser.add_argument("--box", required=True, help="x1,y1,x2,y2 in image pixels")
    parser.add_argument("--point", help="x,y of a foreground point")
    parser.add_argument("--out", required=True, help="output folder: mask.png, overlay.png, result.json")
    parser.add_argument("--multimask", action="store_true",
                        help="let SAM predict three masks and keep the best-scored one")
    add_runner(parser)


def run(args):
    image = load_image(args.image)
    box = parse_numbers(args.box, 4, "box")
    point = parse_numbers(args.point, 2, "point") if args.point else None
    out = output_dir(args.out)
    with Pipeline.open(args.models, runner_options(args)) as pipeline:
        pipeline.set_image(image)
        result = pipeline.segment(box=box, point=point, mode="box+point" if point else "box",
                                  multimask=args.multimask)
        summary = pipeline.models.summary()
    write_query(out, image, result, summary)
    print(json.dumps(dict(result.to_json(), models=summary), indent=2))
    return 0
