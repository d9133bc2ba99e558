"""Command-line argument groups every sub-command shares, defined once."""
from ..backends.base import BACKENDS, RunnerOptions


def add_models(parser, required=True, help="model-set folder (manifest.json, graphs, engines)"):
    """``--models DIR``."""
    parser.add_argument("--models", required=required, metavar="DIR", help=help)


def add_runner(parser, backends=BACKENDS, default="auto", prefix=""):
    """``--backend``, ``--device``, ``--threads``, ``--cuda-graph`` (with ``prefix``: ``--compare-backend`` ...)."""
    dest = prefix.replace("-", "_")
    group = parser.add_argument_group(f"{prefix}runner" if prefix else "where the graphs run")
    group.add_argument(f"--{prefix}backend", default=default, choices=backends,
                       help=f"{' | '.join(backends)}: auto takes a model set's TensorRT engines where they load on "
                            f"this device, else ONNX Runtime (default: {default or 'none'})")
    group.add_argument(f"--{prefix}device", default="auto", metavar="DEVICE",
                       help="auto, cpu, cuda[:N] or trt-ep[:N] (ONNX Runtime's TensorRT provider) (default: auto)")
    group.add_argument(f"--{prefix}threads", type=int, default=0, metavar="N",
                       help="ONNX Runtime intra-op threads, 0 = all cores (default: 0)")
    group.add_argument(f"--{prefix}cuda-graph", action="store_true", dest=f"{dest}cuda_graph",
                       help="TensorRT: replay each input shape's work as a captured CUDA graph")


def runner_options(args, prefix="") -> RunnerOptions:
    """The :class:`RunnerOptions` the group's arguments name (validated there)."""
    dest = prefix.replace("-", "_")
    return RunnerOptions(getattr(args, f"{dest}backend"), getattr(args, f"{dest}device"),
                         getattr(args, f"{dest}threads"), getattr(args, f"{dest}cuda_graph"))
