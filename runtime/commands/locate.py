"""``pslg locate IMAGE --models DIR --text PHRASE``: the LQVG box of a phrase, as JSON on stdout."""
import json
from pathlib import Path

import cv2

from ..grounding import Grounder, caption
from ..image import load_image, save_rgb

BOX_COLOR = (255, 64, 0)


def add_arguments(parser):
    parser.add_argument("image", type=Path, help="image file (PNG, JPEG, TIFF ...)")
    parser.add_argument("--models", type=Path, required=True, metavar="DIR", help="model set with an lqvg component")
    parser.add_argument("--text", required=True, metavar="PHRASE", help="what to find, e.g. 'the ship on the left'")
    parser.add_argument("--draw", type=Path, metavar="PATH", help="also write the image with the box and phrase")
    parser.add_argument("--backend", default="auto", help="auto, onnxruntime or tensorrt (default auto)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or trt-ep[:N] (default auto)")


def draw_box(image, box, label):
    """A copy of ``image`` with ``box`` (original pixels) outlined and ``label`` above it."""
    out = image.copy()
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    thickness = max(2, round(max(image.shape[:2]) / 400))
    cv2.rectangle(out, (x1, y1), (x2, y2), BOX_COLOR, thickness)
    scale = max(0.5, max(image.shape[:2]) / 1200)
    (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    y = max(y1, h + base + 2)
    cv2.rectangle(out, (x1, y - h - base - 2), (x1 + w + 4, y), BOX_COLOR, -1)
    cv2.putText(out, label, (x1 + 2, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def run(args):
    caption(args.text)  # refuse an empty phrase before loading anything
    image = load_image(args.image)
    with Grounder(args.models, backend=args.backend, device=args.device) as grounder:
        result = grounder.locate(image, args.text)
    if args.draw:
        save_rgb(args.draw, draw_box(image, result.box, f"{result.caption} {result.score:.2f}"))
    print(json.dumps(result.to_json()))
    return 0
