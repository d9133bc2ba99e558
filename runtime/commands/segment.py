"""Segment inside a box with SAM (plus an optional foreground point), or many boxes of one image from a file."""
import json

import numpy as np
from tqdm import tqdm

from ..draw import overlay
from ..errors import ParameterError
from ..files import output_dir, write_text
from ..geo import open_source
from ..geo.segment import Segmenter
from ..image import save_rgb
from ..outputs import write_query
from ..pipeline import Pipeline
from ..prompts import parse_numbers
from .options import add_kernel_threads, add_models, add_raster, add_runner, raster_arguments, runner_options


def add_arguments(parser):
    parser.add_argument("image", help="image file (converted to 8-bit RGB, see README), or a GeoTIFF / COG")
    add_models(parser, help="model-set folder with sam_encoder/sam_decoder")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--box", help="x1,y1,x2,y2 in image pixels (or xmin,ymin,xmax,ymax in --box-crs)")
    what.add_argument("--boxes", metavar="FILE",
                      help="many boxes: GeoJSON (lon/lat unless --box-crs says otherwise) or CSV (x1,y1,x2,y2 "
                           "[,id, ...] in pixels or --box-crs); writes one FeatureCollection")
    parser.add_argument("--point", help="x,y of a foreground point (with --box)")
    parser.add_argument("--out", required=True, help="output folder: mask.png, overlay.png, result.json "
                                                     "(+ mask.tif, mask.geojson, mask.gpkg for a georeferenced input)")
    parser.add_argument("--multimask", action="store_true",
                        help="let SAM predict three masks and keep the best-scored one")
    add_raster(parser)
    add_runner(parser)
    add_kernel_threads(parser)


def run(args):
    bands, crs = raster_arguments(args)
    if args.boxes and args.point:
        raise ParameterError("--point goes with --box; a --boxes file segments each box alone")
    box = parse_numbers(args.box, 4, "box") if args.box else None
    point = parse_numbers(args.point, 2, "point") if args.point else None
    jobs = None
    if args.boxes:
        from ..geo.boxes import read_boxes
        jobs = read_boxes(args.boxes, args.box_crs)
    out = output_dir(args.out)
    with open_source(args.image, bands) as source, \
            Pipeline.open(args.models, runner_options(args), kernel_threads=args.kernel_threads) as pipeline:
        segmenter = Segmenter(pipeline, source)
        summary = pipeline.models.summary()
        if jobs is None:
            result = segmenter.segment(box=box, point=point, crs=crs, mode="box+point" if point else "box",
                                       multimask=args.multimask)
            write_query(out, result, summary)
            print(json.dumps(dict(result.to_json(), models=summary), indent=2))
            return 0
        with tqdm(total=len(jobs), unit="box", disable=None) as bar:
            results = segmenter.segment_boxes(jobs, mode="box", multimask=args.multimask,
                                              progress=lambda _: bar.update())
        write_collection(out, args, results, summary)
    print(f"{len(results)} objects in {out}/")
    return 0


def write_collection(out, args, results, models):
    """result.json of every object; mask.geojson and mask.gpkg of all (georeferenced input); mask.png and
    overlay.png of all masks when the image was read whole (every result then shares one view)."""
    outputs = []
    if results[0].georef is not None:
        from ..geo.write import write_vectors
        outputs += [p.name for p in write_vectors(out, results)]
    views = {id(r.view) for r in results}
    if len(views) == 1:
        union = np.logical_or.reduce([r.result.mask for r in results])
        save_rgb(out / "mask.png", union.astype(np.uint8) * 255)
        save_rgb(out / "overlay.png", overlay(results[0].image, union, text=f"{len(results)} objects"))
        outputs += ["mask.png", "overlay.png"]
    report = {"image": str(args.image), "boxes": str(args.boxes), "models": models, "outputs": outputs,
              "results": [r.to_json() for r in results]}
    write_text(out / "result.json", json.dumps(report, indent=2) + "\n")
