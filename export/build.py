"""Build TensorRT engines for every graph of a model set on this device, recorded in its manifest.

Build on the device that will run the engines (a Jetson builds for its own
GPU and TensorRT version): the runtime refuses an engine from another.
"""
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import onnx

from pslg.runtime import modelset
from pslg.runtime.backends.tensorrt import device_info
from pslg.runtime.commands.options import add_models
from pslg.runtime.errors import ParameterError, PathError
from pslg.runtime.files import writing
from pslg.runtime.specs import EngineSpec

from . import tensorrt as trt_build

PRECISIONS = ("fp32", "fp16", "int8")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def add_arguments(parser):
    add_models(parser, help="model-set folder with exported ONNX graphs")
    parser.add_argument("--graphs", nargs="+", help="graphs to build (default: all in the manifest)")
    parser.add_argument("--precision", default="fp16", choices=PRECISIONS,
                        help="fp16 keeps LayerNorm/Softmax/log in fp32; int8 applies to the SAM encoder only")
    parser.add_argument("--calibration-images", help="folder of images for int8 calibration")
    parser.add_argument("--max-prompts", type=int, default=trt_build.DEFAULT_LIMITS["prompts"],
                        help="most prompts decoded in one SAM decoder call")
    parser.add_argument("--max-points", type=int, default=trt_build.DEFAULT_LIMITS["points"],
                        help="most points per prompt, box corners included")
    parser.add_argument("--max-tokens", type=int, help="longest phrase in tokens (default: the export's maximum)")
    parser.add_argument("--timing-cache", help="timing cache file, read and updated (default: one in MODELS named "
                                               "after this GPU and TensorRT version)")
    parser.add_argument("--workspace-gb", type=float, default=2.0, help="builder workspace limit")
    parser.add_argument("--dla-core", type=int, help="build for this DLA core (Jetson), GPU fallback on")
    parser.add_argument("--version-compatible", action="store_true",
                        help="engines that later TensorRT runtimes (and tensorrt_lean) of the same major version load")
    parser.add_argument("--exclude-lean-runtime", action="store_true",
                        help="with --version-compatible: do not embed the lean runtime in each engine")


def run(args):
    trt = trt_build.import_tensorrt_builder()
    if args.exclude_lean_runtime and not args.version_compatible:
        raise ParameterError("--exclude-lean-runtime only applies with --version-compatible")
    models = modelset.open(args.models)
    graphs = args.graphs or list(models.graph_names)
    limits = trt_build.build_limits(models.lqvg, args.max_prompts, args.max_points, args.max_tokens)
    specs = [models.graph(g) for g in graphs]
    profiles = {s.name: trt_build.profile_ranges(s, limits) for s in specs}
    images = _calibration_images(args.calibration_images) if args.precision == "int8" else None
    device = device_info(trt)
    cache_path = Path(args.timing_cache or models.path / modelset.timing_cache_file(device.compute_capability,
                                                                                    device.tensorrt_version))
    for i, spec in enumerate(specs, 1):
        precision = args.precision if spec.name == "sam_encoder" or args.precision != "int8" else "fp16"
        print(f"[{i}/{len(specs)}] {spec.name}: {precision}, profile {profiles[spec.name]}", file=sys.stderr)
        model = onnx.load(str(spec.path), load_external_data=False)
        keep = trt_build.fp32_nodes(model) if precision != "fp32" else []
        calibrator = None
        if precision == "int8":
            calibrator = trt_build.entropy_calibrator(
                trt, trt_build.calibration_batches(images, models.component("sam")), len(images),
                models.path / modelset.calibration_cache_file(spec.name, spec.sha256))
        t0 = time.perf_counter()
        try:
            built = trt_build.build_serialized_network(
                trt, spec.path, model, profiles[spec.name], precision, keep, int(args.workspace_gb * (1 << 30)),
                cache_path.read_bytes() if cache_path.exists() else None, args.dla_core, args.version_compatible,
                args.exclude_lean_runtime, calibrator, sys.stderr)
        finally:
            if calibrator is not None:
                calibrator.finish()
        seconds = time.perf_counter() - t0
        path = models.path / modelset.engine_file(spec.name, precision)
        engine = EngineSpec(spec.name, path, precision, device.tensorrt_version, device.gpu_name,
                            device.compute_capability, profiles[spec.name], spec.sha256, tuple(keep),
                            args.version_compatible, args.version_compatible and not args.exclude_lean_runtime,
                            args.dla_core)
        check = trt_build.inspect_fp32(trt, built.plan, engine, built.fp32_layers) if keep else None
        with writing(path):
            path.write_bytes(built.plan)
        with writing(cache_path):
            cache_path.write_bytes(built.timing_cache)
        build = {"workspace_gb": args.workspace_gb, "build_seconds": round(seconds, 1),
                 "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "timing_cache": built.timing_cache_status}
        if check is not None:
            build["fp32_check"] = {k: v for k, v in check.items() if k != "violations"}
        if calibrator is not None:
            build["calibration"] = {"images": len(images), "batches": calibrator.served,
                                    "cache": "reused" if calibrator.cache_used else "computed"}
        modelset.record_engine(models.path, engine, build=build)
        seen = f", fp32 layers confirmed {check['fp32']}/{check['constrained_layers']}" if check else ""
        print(f"[{i}/{len(specs)}] {spec.name}: {path.name} in {seconds:.0f} s{seen}", file=sys.stderr)
    return 0


def _calibration_images(folder):
    """The calibration images, each decoded once first so a bad file fails before any build (ImageError)."""
    from pslg.runtime.image import load_image
    if not folder:
        raise ParameterError("--precision int8 needs --calibration-images DIR (representative aerial images)")
    if not Path(folder).is_dir():
        raise PathError(f"--calibration-images {folder} is not a folder")
    images = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ParameterError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    for p in images:
        load_image(p)
    return images
