"""SAM latency: our ONNX Runtime path vs segment-anything's PyTorch predictor, same weights, same input.

    python -m pslg.benchmarks.sam [--model-type vit_b] [--checkpoint PATH] [--runs 5] [--json OUT]

Both sides run on this machine's CPU with their default thread counts. The
encoder figure is a new image's first query (``set_image`` and one box
prompt on both sides: preprocessing, encoder, one decode); the
decoder figure is one box prompt including upsampling to the image size.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from pslg import data
from pslg.runtime import RunnerOptions
from pslg.runtime.image import load_image
from pslg.runtime.pipeline import Pipeline

from .timing import measure, summary, table

DEFAULT_IMAGE = data.path("marina.png")
DEFAULT_BOX = (1238.0, 756.0, 1347.0, 806.0)


def run_benchmark(model_type="vit_b", checkpoint=None, image_path=DEFAULT_IMAGE, box=DEFAULT_BOX, runs=5, seed=0):
    import torch
    from segment_anything import SamPredictor

    from pslg.export.sam import export_sam, load_sam
    image = load_image(image_path)
    box = np.asarray(box, np.float64)
    with tempfile.TemporaryDirectory() as models:
        export_sam(models, model_type, checkpoint=checkpoint, random_weights=checkpoint is None, seed=seed)
        model, _ = load_sam(model_type, checkpoint=checkpoint, random_weights=checkpoint is None, seed=seed)
        predictor = SamPredictor(model)
        with torch.inference_mode():
            def first_query():
                predictor.set_image(image)
                predictor.predict(box=box, multimask_output=False)

            torch_enc = measure(first_query, runs)
            torch_dec = measure(lambda: predictor.predict(box=box, multimask_output=False), runs)
        with Pipeline.open(models, RunnerOptions("onnxruntime", "cpu")) as pipeline:
            ort_enc = measure(lambda: (pipeline.set_image(image), pipeline.segment(box=box, mode="box")), runs)
            ort_dec = measure(lambda: pipeline.segment(box=box, mode="box"), runs)
    result = {"model_type": model_type, "weights": "checkpoint" if checkpoint else f"random, seed {seed}",
              "image": str(image_path), "image_size": list(image.shape[:2]), "runs": runs,
              "torch_threads": torch.get_num_threads(),
              "encoder_ms": {"pytorch": summary(torch_enc), "onnxruntime": summary(ort_enc)},
              "decoder_ms": {"pytorch": summary(torch_dec), "onnxruntime": summary(ort_dec)}}
    for stage in ("encoder_ms", "decoder_ms"):
        s = result[stage]
        s["speedup_p50"] = s["pytorch"]["p50"] / s["onnxruntime"]["p50"]
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pslg.benchmarks.sam", description=__doc__.splitlines()[0])
    parser.add_argument("--model-type", default="vit_b", choices=("vit_b", "vit_l", "vit_h", "vit_t"))
    parser.add_argument("--checkpoint", help="SAM checkpoint (default: seeded random weights)")
    parser.add_argument("--image", default=str(DEFAULT_IMAGE))
    parser.add_argument("--runs", type=int, default=5, help="timed runs per stage after one warm-up (median reported)")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)
    r = run_benchmark(args.model_type, args.checkpoint, args.image, runs=args.runs)
    rows = [[stage[:-3], r[stage]["pytorch"]["p50"], r[stage]["onnxruntime"]["p50"], f"{r[stage]['speedup_p50']:.2f}x"]
            for stage in ("encoder_ms", "decoder_ms")]
    print(f"SAM {r['model_type']} ({r['weights']}), image {r['image_size'][1]}x{r['image_size'][0]}, "
          f"median of {r['runs']} after warm-up")
    print(table(rows, ["stage", "pytorch ms", "onnxruntime ms", "speed-up"]))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
