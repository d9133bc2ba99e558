"""Command-line argument groups every sub-command shares, defined once."""
from ..backends.base import BACKENDS, RunnerOptions
from ..errors import ParameterError


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


def add_raster(parser):
    """``--bands`` and ``--box-crs`` for GeoTIFF input (the ``[geo]`` extra)."""
    group = parser.add_argument_group("GeoTIFF input (needs the [geo] extra)")
    group.add_argument("--bands", metavar="B[,G,B]",
                       help="1-based band numbers shown as R,G,B (or one band as gray), e.g. 3,2,1 "
                            "(default: the bands the file calls red/green/blue, else 1,2,3)")
    group.add_argument("--box-crs", metavar="CRS",
                       help="the CRS of the --box/--point numbers (and of a --boxes file): anything pyproj "
                            "understands, e.g. EPSG:4326 (lon/lat; a box is then west,south,east,north) or the "
                            "raster's own EPSG:32617; 'pixel' for pixels (default: pixels; a GeoJSON --boxes file: "
                            "EPSG:4326)")


def raster_arguments(args):
    """``(bands or None, box CRS or None)`` of :func:`add_raster`'s arguments; a CRS is checked here."""
    bands = None
    if args.bands:
        try:
            bands = [int(b) for b in args.bands.split(",")]
        except ValueError:
            raise ParameterError(f"--bands must be comma-separated band numbers, e.g. 3,2,1; got {args.bands!r}") \
                from None
    crs = args.box_crs if args.box_crs and args.box_crs.lower() not in ("pixel", "pixels") else None
    if crs is not None:
        from ..geo.crs import parse_crs
        parse_crs(crs)
    return bands, crs


def add_kernel_threads(parser):
    """``--kernel-threads N``: threads of the CPU stages (CFPG, MBO: Numba kernels and OpenCV)."""
    parser.add_argument("--kernel-threads", type=int, metavar="N",
                        help="threads of the CFPG/MBO kernels and their OpenCV calls (default: kernels 1, OpenCV "
                             "its own; on few cores the serial max-flow gains nothing from more; try the core count "
                             "on a Jetson)")
