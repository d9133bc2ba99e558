"""The full chain on one image: phrase -> box -> point -> mask -> refined mask, for one or more phrases and modes."""
import json
import re

from ..draw import side_by_side
from ..errors import ParameterError
from ..files import output_dir, write_text
from ..geo import open_source
from ..geo.segment import Segmenter
from ..image import save_rgb
from ..outputs import write_query
from ..pipeline import MODES, Pipeline
from ..prompts import parse_numbers
from .options import add_kernel_threads, add_models, add_raster, add_runner, raster_arguments, runner_options

#: stage order of the timing table
STAGES = ("read", "letterbox", "tokenise", "text_encoder", "grounding", "sam_encoder", "sam_decoder", "cfpg", "mbo",
          "total")


def add_arguments(parser):
    parser.add_argument("image", help="image file (converted to 8-bit RGB, see README), or a GeoTIFF / COG")
    add_models(parser)
    parser.add_argument("--text", action="append", default=[], help="phrase to ground; repeat for several")
    parser.add_argument("--box", help="x1,y1,x2,y2: skip grounding and use this box (the phrase stays the label)")
    parser.add_argument("--point", help="x,y: use this foreground point instead of CFPG's")
    parser.add_argument("--mode", action="append", choices=MODES,
                        help="box | box+point | full | classical; repeat to compare (default: full)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="CFPG k-means seed")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip the warm-up run at open (the first query then pays lazy start-up)")
    add_raster(parser)
    add_runner(parser)
    add_kernel_threads(parser)


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "query"


def timing_table(columns):
    """Per-stage milliseconds, one column per query."""
    names = list(columns)
    rows = [f"{'stage':14s}" + "".join(f"{n[:18]:>20s}" for n in names)]
    for stage in STAGES:
        cells = [columns[n].get(stage) for n in names]
        if any(c is not None for c in cells):
            rows.append(f"{stage:14s}" + "".join(f"{'-' if c is None else f'{c:.1f}':>20s}" for c in cells))
    return "\n".join(rows)


def run(args):
    texts = args.text or [None]
    modes = args.mode or ["full"]
    bands, crs = raster_arguments(args)
    box = parse_numbers(args.box, 4, "box") if args.box else None
    point = parse_numbers(args.point, 2, "point") if args.point else None
    if box is None and texts == [None]:
        raise ParameterError("give --text PHRASE (or --box x1,y1,x2,y2)")
    out = output_dir(args.out)
    with open_source(args.image, bands) as source, \
            Pipeline.open(args.models, runner_options(args), warmup=not args.no_warmup,
                          kernel_threads=args.kernel_threads) as pipeline:
        segmenter = Segmenter(pipeline, source)
        models = pipeline.models.summary()
        report = {"image": str(args.image), "models": models, "warnings": pipeline.warnings + list(source.warnings),
                  "open_timings_ms": pipeline.open_timings_ms, "results": []}
        columns = {}
        single = len(texts) == 1 and len(modes) == 1
        for i, text in enumerate(texts):
            pictures = []
            for mode in modes:
                result = segmenter.segment(text=text, box=box, point=point, crs=crs, mode=mode, seed=args.seed)
                folder = out if single else out / f"{i:02d}-{slug(text or 'box')}" / mode.replace("+", "-")
                pictures.append(write_query(folder, result, models))
                report["results"].append(dict(result.to_json(), folder=str(folder)))
                columns[f"{mode}{'' if len(texts) == 1 else f' #{i}'}"] = result.result.timings_ms
            if len(pictures) > 1:
                save_rgb(out / f"{i:02d}-{slug(text or 'box')}" / "compare.png", side_by_side(*pictures))
        report["image_timings_ms"] = pipeline.image_timings_ms
    write_text(out / "result.json", json.dumps(report, indent=2) + "\n")
    print(timing_table(columns))
    print(f"results in {out}/")
    return 0
