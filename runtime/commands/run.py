"""The full chain on one image: phrase -> box -> point -> mask -> refined mask, for one or more phrases and modes."""
import json
import re

import numpy as np

from ..draw import overlay, side_by_side
from ..errors import ParameterError
from ..files import output_dir, write_text
from ..image import load_image, save_rgb
from ..pipeline import MODES, Pipeline
from ..prompts import parse_numbers
from .options import add_models, add_runner, runner_options

#: stage order of the timing table
STAGES = ("letterbox", "tokenise", "text_encoder", "grounding", "sam_encoder", "sam_decoder", "cfpg", "mbo", "total")


def add_arguments(parser):
    parser.add_argument("image", help="image file (converted to 8-bit RGB, see README)")
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
    add_runner(parser)


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "query"


def write_query(folder, image, result, models=None):
    """mask.png (0/255), overlay.png and result.json (with the model set's ``models`` summary) of one query."""
    save_rgb(folder / "mask.png", result.mask.astype(np.uint8) * 255)
    label = f"{result.mode}: {result.phrase}" if result.phrase else result.mode
    picture = overlay(image, result.mask, result.box, result.point, text=label,
                      title="RANDOM WEIGHTS - not a real result" if any("RANDOM" in w for w in result.warnings)
                      else None)
    save_rgb(folder / "overlay.png", picture)
    write_text(folder / "result.json", json.dumps(dict(result.to_json(), models=models), indent=2) + "\n")
    return picture


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
    image = load_image(args.image)
    texts = args.text or [None]
    modes = args.mode or ["full"]
    box = parse_numbers(args.box, 4, "box") if args.box else None
    point = parse_numbers(args.point, 2, "point") if args.point else None
    if box is None and texts == [None]:
        raise ParameterError("give --text PHRASE (or --box x1,y1,x2,y2)")
    out = output_dir(args.out)
    with Pipeline.open(args.models, runner_options(args), warmup=not args.no_warmup) as pipeline:
        pipeline.set_image(image)
        models = pipeline.models.summary()
        report = {"image": str(args.image), "models": models, "warnings": pipeline.warnings,
                  "open_timings_ms": pipeline.open_timings_ms, "results": []}
        columns = {}
        single = len(texts) == 1 and len(modes) == 1
        for i, text in enumerate(texts):
            pictures = []
            for mode in modes:
                result = pipeline.segment(text=text, box=box, point=point, mode=mode, seed=args.seed)
                folder = out if single else out / f"{i:02d}-{slug(text or 'box')}" / mode.replace("+", "-")
                pictures.append(write_query(folder, image, result, models))
                report["results"].append(dict(result.to_json(), folder=str(folder)))
                columns[f"{mode}{'' if len(texts) == 1 else f' #{i}'}"] = result.timings_ms
            if len(pictures) > 1:
                save_rgb(out / f"{i:02d}-{slug(text or 'box')}" / "compare.png", side_by_side(*pictures))
        report["image_timings_ms"] = pipeline.image_timings_ms
    write_text(out / "result.json", json.dumps(report, indent=2) + "\n")
    print(timing_table(columns))
    print(f"results in {out}/")
    return 0
