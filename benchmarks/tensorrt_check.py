"""One-shot check of the TensorRT path on a machine with TensorRT and a GPU (the first real Jetson, say).

    python -m pslg.benchmarks.tensorrt_check --models engines/demo [--work DIR] [--precisions fp32 fp16]

For each precision it copies the model set into ``WORK/<precision>`` (one
engine per graph and precision), runs ``pslg build`` there, compares every
graph with ONNX Runtime fp32 on the CPU (``pslg verify``'s comparison), reads
each engine's layer precisions with the engine inspector, and prints one
table. Exits 0 when every mask IoU reaches ``--min-iou``, else 52 (ParityError).
"""
import argparse
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

from pslg.runtime import RunnerOptions, modelset
from pslg.runtime.backends import tensorrt as trt_backend
from pslg.runtime.cli import main as pslg
from pslg.runtime.commands.verify import synthetic_image, verify
from pslg.runtime.errors import ParityError, PslgError
from pslg.runtime.files import output_dir, write_text
from pslg.runtime.image import load_image

COLUMNS = ("graph", "precision", "build s", "max |diff|", "mask IoU", "layers fp32/fp16/int8/other",
           "kept fp32: seen/fused/hidden")


def layer_precisions(trt, engine):
    """``Counter`` of the engine's layers by the precision of their first output (engine inspector)."""
    _, cuda_engine = trt_backend.deserialize_plan(trt, engine.path.read_bytes(), engine, str(engine.path))
    counts = Counter()
    for layer in json.loads(trt_backend.engine_information(trt, cuda_engine)).get("Layers", []):
        outputs = layer.get("Outputs", []) if isinstance(layer, dict) else []
        counts[trt_backend.format_precision(outputs[0].get("Format/Datatype", "")) if outputs else "unknown"] += 1
    return counts


def check(models_dir, work, precisions, image, text, options):
    """Rows of the table: build, verify and inspect each graph at each precision."""
    trt = trt_backend.import_tensorrt()
    rows = []
    for precision in precisions:
        target = work / precision
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(models_dir, target)
        code = pslg(["build", "--models", str(target), "--precision", precision])
        if code != 0:
            raise PslgError(f"pslg build --precision {precision} failed with exit code {code} (see above)")
        models = modelset.open(target)
        report = verify(models, options, image, text)
        builds = models.summary()["engines"]
        for graph, outputs in report.items():
            engine, build = models.engine(graph), builds[graph]
            counts = layer_precisions(trt, engine)
            kept = build.get("fp32_check")
            rows.append({
                "graph": graph, "precision": engine.precision, "build s": build.get("build_seconds"),
                "max |diff|": max(s["max_abs_diff"] for s in outputs.values()),
                "mask IoU": min((s["mask_iou_min"] for s in outputs.values() if "mask_iou_min" in s), default=None),
                "layers fp32/fp16/int8/other": "/".join(str(counts.pop(p, 0)) for p in ("fp32", "fp16", "int8"))
                + f"/{sum(counts.values())}",
                "kept fp32: seen/fused/hidden": (f"{kept['fp32']}/{kept['fused']}/{kept['not_visible']} "
                                                 f"of {kept['constrained_layers']}") if kept else "-",
                "outputs": outputs})
    return rows


def format_table(rows):
    cells = [[("-" if r[c] is None else f"{r[c]:.3e}" if c == "max |diff|" else
               f"{r[c]:.4f}" if c == "mask IoU" else str(r[c])) for c in COLUMNS] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def run(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pslg.benchmarks.tensorrt_check",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="engines/demo", help="model-set folder with exported graphs")
    parser.add_argument("--work", default="out/tensorrt_check", help="where the per-precision copies are built")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "fp16"], choices=("fp32", "fp16"))
    parser.add_argument("--image", help="image to feed (default: a seeded synthetic image)")
    parser.add_argument("--text", default="the white boat at the end of the pier")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--min-iou", type=float, default=0.99)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    try:
        rows = check(Path(args.models), output_dir(args.work), args.precisions,
                     load_image(args.image) if args.image else synthetic_image(), args.text,
                     RunnerOptions("tensorrt", args.device))
        print(format_table(rows))
        if args.json:
            write_text(args.json, json.dumps(rows, indent=2) + "\n")
        worst = min((r["mask IoU"] for r in rows if r["mask IoU"] is not None), default=1.0)
        if worst < args.min_iou:
            raise ParityError(f"TensorRT masks differ from ONNX Runtime fp32: IoU {worst:.4f} < {args.min_iou}")
    except PslgError as e:
        print(f"tensorrt_check: error: {e}", file=sys.stderr)
        return e.code
    return 0


if __name__ == "__main__":
    sys.exit(run())
