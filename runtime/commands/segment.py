"""``pslg segment``: the SAM stage on one image with a box (and optionally a point)."""
import json
from pathlib import Path

from ..image import load_image
from ..pipeline import Pipeline
from ..prompts import parse_numbers
from .run import write_query


def add_arguments(parser):
    parser.add_argument("image", help="image file (converted to 8-bit RGB, see README)")
    parser.add_argument("--models", required=True, help="model-set folder (with sam_encoder/sam_decoder)")
    parser.add_argument("--box", required=True, help="x1,y1,x2,y2 in image pixels")
    parser.add_argument("--point", help="x,y of a foreground point")
    parser.add_argument("--out", required=True, help="output folder: mask.png, overlay.png, result.json")
    parser.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt"))
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or trt-ep[:N]")
    parser.add_argument("--multimask", action="store_true", help="keep the best of SAM's three masks")


def run(args):
    image = load_image(args.image)
    box = parse_numbers(args.box, 4, "box")
    point = parse_numbers(args.point, 2, "point") if args.point else None
    with Pipeline.open(args.models, backend=args.backend, device=args.device) as pipeline:
        pipeline.set_image(image)
        result = pipeline.segment(box=box, point=point, mode="box+point" if point else "box",
                                  multimask=args.multimask)
        result.timings_ms.update(pipeline.image_timings_ms)
    write_query(Path(args.out), image, result)
    print(json.dumps(result.to_json(), indent=2))
    return 0
