"""Compare a backend with ONNX Runtime fp32 (CPU) on every graph of a model set, with the same inputs.

The reference runs the portable graphs (what TensorRT builds from), so
``--backend onnxruntime --device cpu`` checks a set's CPU variants against them.

Downstream graphs get the reference's outputs as inputs, so each graph is
judged on its own. Prints per-output max/mean absolute differences and, for
SAM masks, the IoU of the thresholded low-resolution masks.
"""
import json

import numpy as np

from .. import backends, modelset, sam
from ..backends import RunnerOptions
from ..errors import ParityError
from ..files import output_file, write_text
from ..image import load_image
from .options import add_models, add_runner, runner_options

REFERENCE = RunnerOptions("onnxruntime", "cpu")


def add_arguments(parser):
    add_models(parser)
    add_runner(parser, backends=("onnxruntime", "tensorrt"), default="tensorrt")
    parser.add_argument("--image", help="image to feed (default: a seeded synthetic image)")
    parser.add_argument("--text", default="the white boat at the end of the pier", help="phrase for LQVG graphs")
    parser.add_argument("--min-iou", type=float, default=0.99, help="fail when a mask IoU is below this")
    parser.add_argument("--json", help="write the report here")


def synthetic_image(height=720, width=1280, seed=0):
    """A deterministic image with smooth structure (not white noise), for when no image is given."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([np.sin(xx / 37.0) + np.cos(yy / 23.0), np.sin((xx + yy) / 51.0), np.cos(xx / 19.0)], -1)
    img = (img - img.min()) / (img.max() - img.min()) * 200 + rng.uniform(0, 55, (height, width, 3))
    return img.astype(np.uint8)


def graph_feeds(models, image, text, reference):
    """Yield ``(graph, feeds)`` in call order, feeding each graph the reference's upstream outputs."""
    if models.has("sam"):
        tensor, transform = sam.preprocess(image, models.sam)
        yield "sam_encoder", {"image": tensor}
        h, w = image.shape[:2]
        boxes = np.array([[w * 0.3, h * 0.3, w * 0.6, h * 0.7], [w * 0.1, h * 0.2, w * 0.25, h * 0.4]])
        centres = (boxes[:, None, :2] + boxes[:, None, 2:]) / 2
        coords, labels = sam.encode_prompts(transform, boxes=boxes, points=centres, layout=models.sam.prompt_layout)
        yield "sam_decoder", sam.decoder_feeds(reference("sam_encoder"), coords, labels, meta=models.sam)
    if models.has("lqvg"):
        from tokenizers import Tokenizer

        from .. import grounding
        meta = models.lqvg
        ids = Tokenizer.from_file(str(models.file("tokenizer"))).encode(grounding.caption(text)).ids
        ids = np.array([grounding.truncate(ids, meta.max_tokens, meta.eos_id)], np.int64)
        mask = np.ones_like(ids)
        yield "lqvg_text", {"input_ids": ids, "attention_mask": mask}
        yield "lqvg_grounding", {"image": grounding.letterbox_image(image, meta.image_size, meta.letterbox).tensor,
                                 "text_features": reference("lqvg_text")["text_features"].copy(),
                                 "attention_mask": mask}


def compare(graph, ref, got):
    """Per-output differences, plus mask IoU where the output is SAM mask logits."""
    report = {}
    for name, r in ref.items():
        g = got[name]
        diff = np.abs(g.astype(np.float64) - r.astype(np.float64))
        entry = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())}
        if name == "low_res_masks":
            a, b = r > 0, g > 0
            union = np.logical_or(a, b).sum(axis=(-1, -2))
            inter = np.logical_and(a, b).sum(axis=(-1, -2))
            entry["mask_iou_min"] = float(np.min(np.where(union == 0, 1.0, inter / np.maximum(union, 1))))
        report[name] = entry
    return report


def verify(models, options, image, text):
    """``{graph: {output: stats}}`` of the runners ``options`` names against ONNX Runtime fp32 on the CPU."""
    runners = {}
    outputs = {}

    def runner(graph, which):
        key = (graph, which)
        if key not in runners:
            spec = models.graph(graph)
            runners[key] = (backends.open_runner(spec.portable(), REFERENCE) if which == "reference"
                            else backends.open_runner(spec, options, models.engine(graph)))
        return runners[key]

    def reference(graph):
        return outputs[graph]

    report = {}
    try:
        for graph, feeds in graph_feeds(models, image, text, reference):
            outputs[graph] = {k: v.copy() for k, v in runner(graph, "reference").run(feeds).items()}
            got = runner(graph, "checked").run(feeds)
            report[graph] = compare(graph, outputs[graph], got)
    finally:
        for r in runners.values():
            r.close()
    return report


def run(args):
    report_path = output_file(args.json) if args.json else None
    models = modelset.open(args.models)
    image = load_image(args.image) if args.image else synthetic_image()
    options = runner_options(args)
    report = verify(models, options, image, args.text)
    for graph, outs in report.items():
        for name, s in outs.items():
            iou = f"  mask IoU >= {s['mask_iou_min']:.4f}" if "mask_iou_min" in s else ""
            print(f"{graph:16s} {name:18s} max |diff| {s['max_abs_diff']:.3e}  mean {s['mean_abs_diff']:.3e}{iou}")
    if report_path:
        write_text(report_path, json.dumps({"backend": options.backend, "device": options.device,
                                          "models": models.summary(), "graphs": report}, indent=2) + "\n")
    worst = min((s["mask_iou_min"] for o in report.values() for s in o.values() if "mask_iou_min" in s), default=1.0)
    if worst < args.min_iou:
        raise ParityError(f"{args.backend} masks differ from ONNX Runtime fp32: IoU {worst:.4f} < {args.min_iou}")
    return 0
