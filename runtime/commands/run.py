"""``pslg run``: the full chain on one image for one or more phrases (and modes); SAM encodes it once."""
import json
import re
from pathlib import Path

import numpy as np

from ..draw import overlay, side_by_side
from ..image import load_image, save_rgb
from ..pipeline import MODES, Pipeline
from ..prompts import parse_numbers

#: stage order of the timing table
STAGES = ("tokenise", "text_encoder", "grounding", "sam_encoder", "sam_decoder", "cfpg", "mbo", "total")


def add_arguments(parser):
    parser.add_argument("image", help="image file (converted to 8-bit RGB, see README)")
    parser.add_argument("--models", required=True, help="model-set folder")
    parser.add_argument("--text", action="append", default=[], help="phrase to ground; repeat for several")
    parser.add_argument("--box", help="x1,y1,x2,y2: skip grounding and use this box (the phrase stays the label)")
    parser.add_argument("--point", help="x,y: use this foreground point instead of CFPG's")
    parser.add_argument("--mode", action="append", choices=MODES,
                        help="box | box+point | full | classical; repeat to compare (default: full)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt"))
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or trt-ep[:N]")
    parser.add_argument("--seed", type=int, default=0, help="CFPG k-means seed")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip the warm-up run at open (the first query then pays lazy start-up)")


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "query"


def write_query(folder, image, result):
    """mask.png (0/255), overlay.png and result.json of one query."""
    folder.mkdir(parents=True, exist_ok=True)
    save_rgb(folder / "mask.png", result.mask.astype(np.uint8) * 255)
    label = f"{result.mode}: {result.phrase}" if result.phrase else result.mode
    picture = overlay(image, result.mask, result.box, result.point, text=label,
                      title="RANDOM WEIGHTS - not a real result" if any("RANDOM" in w for w in result.warnings)
                      else None)
    save_rgb(folder / "overlay.png", picture)
    (folder / "result.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
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
        from ..errors import ParameterError
        raise ParameterError("give --text PHRASE (or --box x1,y1,x2,y2)")
    out = Path(args.out)
    with Pipeline.open(args.models, backend=args.backend, device=args.device, warmup=not args.no_warmup) as pipeline:
        pipeline.set_image(image)
        image_timings = dict(pipeline.image_timings_ms)
        report = {"image": str(args.image), "models": str(args.models), "warnings": pipeline.warnings,
                  "open_timings_ms": pipeline.open_timings_ms, "image_timings_ms": image_timings,
                  "results": []}
        columns = {}
        single = len(texts) == 1 and len(modes) == 1
        for i, text in enumerate(texts):
            pictures = []
            for mode in modes:
                result = pipeline.segment(text=text, box=box, point=point, mode=mode, seed=args.seed)
                folder = out if single else out / f"{i:02d}-{slug(text or 'box')}" / mode.replace("+", "-")
                pictures.append(write_query(folder, image, result))
                entry = result.to_json()
                entry["folder"] = str(folder)
                report["results"].append(entry)
                stages = dict(result.timings_ms)
                if i == 0:  # the encoder ran once, for the first query's image
                    stages["sam_encoder"] = image_timings.get("sam_encoder")
                columns[f"{mode}{'' if len(texts) == 1 else f' #{i}'}"] = stages
            if len(pictures) > 1:
                save_rgb(out / f"{i:02d}-{slug(text or 'box')}" / "compare.png", side_by_side(*pictures))
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(report, indent=2) + "\n")
    for w in report["warnings"]:
        print(f"WARNING: {w}")
    print(timing_table(columns))
    print(f"results in {out}/")
    return 0
