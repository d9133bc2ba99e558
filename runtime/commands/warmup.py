"""Compile the Numba kernels ahead of the first query (and optionally open a model set and run every stage)."""
import json

from .options import add_models, add_runner, runner_options


def add_arguments(parser):
    add_models(parser, required=False, help="also open this model set and run every stage once")
    add_runner(parser)


def run(args):
    from .. import kernels
    report = {"kernels_ms": round(kernels.warmup() * 1e3, 1)}
    if args.models:
        from ..pipeline import Pipeline
        with Pipeline.open(args.models, runner_options(args)) as pipeline:
            report["pipeline_warmup_ms"] = {k: round(v, 1) for k, v in pipeline.open_timings_ms.items()}
    print(json.dumps(report))
    return 0
