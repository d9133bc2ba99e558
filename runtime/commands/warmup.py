"""``pslg warmup``: compile (or load from cache) the Numba kernels, and optionally open a model set."""
import json


def add_arguments(parser):
    parser.add_argument("--models", help="also open this model set and run every stage once")
    parser.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt"))
    parser.add_argument("--device", default="auto")


def run(args):
    from .. import kernels
    report = {"kernels_ms": round(kernels.warmup() * 1e3, 1)}
    if args.models:
        from ..pipeline import Pipeline
        with Pipeline.open(args.models, backend=args.backend, device=args.device) as pipeline:
            report["pipeline_warmup_ms"] = {k: round(v, 1) for k, v in pipeline.open_timings_ms.items()}
    print(json.dumps(report))
    return 0
