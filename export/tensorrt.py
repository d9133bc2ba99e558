"""TensorRT engine builds: profiles and fp32 layer choice (plain logic), and thin builder calls.

Precision policy: the exported ONNX graphs are fp32, so fp16 builds use a
weakly typed network with the FP16 flag and *obeyed* precision constraints on
the layers that overflow or lose too much in fp16 (LayerNorm, decomposed or
not, Softmax, and the clamp/div/log of LQVG's inverse_sigmoid). A strongly
typed network would instead need fp16 casts baked into the ONNX graph.
"""
import numpy as np

from pslg.runtime.errors import BackendUnavailable, ExportError, ParameterError, ProfileError
from pslg.runtime.specs import ShapeRange

#: op types computed in fp32 in an fp16 engine
FP32_CORE_OPS = frozenset({"LayerNormalization", "Softmax", "ReduceMean", "Pow", "Sqrt", "Log"})
#: elementwise ops kept in fp32 when they sit between core ops (decomposed LayerNorm, inverse_sigmoid)
FP32_GLUE_OPS = frozenset({"Sub", "Add", "Div", "Clip", "Max", "Min"})

DEFAULT_LIMITS = {"prompts": 16, "points": 8}
#: optimum the tuner targets inside each range: one box + one point is the PSLG prompt
OPTIMUM = {"prompts": 1, "points": 3, "tokens": 16}


def fp32_nodes(model):
    """Names of the ONNX nodes an fp16 engine must keep in fp32 (see module docstring)."""
    producer = {out: n for n in model.graph.node for out in n.output}
    consumers = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    core = {n.name for n in model.graph.node if n.op_type in FP32_CORE_OPS}

    def feeds_core(node):
        return any(c.name in core for out in node.output for c in consumers.get(out, ()))

    def fed_by(node, ops):
        return any(i in producer and producer[i].op_type in ops for i in node.input)

    keep = set(core)
    for n in model.graph.node:
        if n.op_type not in FP32_GLUE_OPS:
            continue
        between = fed_by(n, FP32_CORE_OPS) and feeds_core(n)
        norm_div = n.op_type == "Div" and fed_by(n, {"Sqrt"})
        centring = n.op_type == "Sub" and any(c.op_type == "Pow" for out in n.output for c in consumers.get(out, ()))
        if between or norm_div or centring:
            keep.add(n.name)
    frontier = [producer[i] for n in model.graph.node if n.op_type == "Log" for i in n.input if i in producer]
    for _ in range(4):  # inverse_sigmoid: log(clamp(x) / clamp(1 - clamp(x))) lies within 4 steps of its Log
        frontier = [n for n in frontier if n.op_type in FP32_GLUE_OPS and n.name not in keep]
        keep.update(n.name for n in frontier)
        frontier = [producer[i] for n in frontier for i in n.input if i in producer]
    return sorted(keep)


def fp32_tensors(model, nodes):
    """Output tensor names of ``nodes``: TensorRT's ONNX parser keeps them as its layers' output names."""
    names = set(nodes)
    return sorted({out for n in model.graph.node if n.name in names for out in n.output})


def profile_ranges(spec, limits):
    """``{input: ShapeRange}`` for one graph from its named dynamic axes.

    ``limits`` maps an axis name to its maximum (``prompts``, ``points``,
    ``tokens``); an axis without a limit, or a limit the graph cannot take,
    is refused.
    """
    for axis, value in limits.items():
        if not isinstance(value, int) or value < 1:
            raise ProfileError(f"profile limit for '{axis}' must be a positive integer, got {value!r}")
    if limits.get("points", 2) < 2:
        raise ProfileError("a box prompt is two corner points: the points axis needs a maximum of at least 2")
    profile = {}
    for t in spec.inputs:
        lo, opt, hi = [], [], []
        for dim in t.shape:
            if isinstance(dim, int):
                lo.append(dim), opt.append(dim), hi.append(dim)
                continue
            if dim not in limits:
                raise ProfileError(f"{spec.name}: input '{t.name}' has dynamic axis '{dim}' with no profile limit")
            lo.append(1), opt.append(min(OPTIMUM.get(dim, 1), limits[dim])), hi.append(limits[dim])
        profile[t.name] = ShapeRange(tuple(lo), tuple(opt), tuple(hi))
    return profile


def build_limits(lqvg, max_prompts, max_points, max_tokens=None):
    """Axis limits: prompts/points from the options, tokens from the LQVG export (``lqvg``: its component or None)."""
    limits = {"prompts": max_prompts, "points": max_points}
    if lqvg is not None:
        exported = lqvg.max_tokens
        if max_tokens is not None and max_tokens > exported:
            raise ProfileError(f"--max-tokens {max_tokens} exceeds the {exported} tokens the text graph was "
                               f"exported for; re-export LQVG with --max-tokens {max_tokens}")
        limits["tokens"] = max_tokens or exported
    return limits


# ---------------------------------------------------------------- thin wrappers around the TensorRT builder

def import_tensorrt_builder():
    """The full ``tensorrt`` package (the lean runtime has no builder)."""
    try:
        import tensorrt
    except ImportError:
        from pslg.runtime.backends.tensorrt import INSTALL_HINT
        raise BackendUnavailable(INSTALL_HINT) from None
    return tensorrt


class _Progress:
    """Prints the builder's phases (TensorRT 10 IProgressMonitor), indented by depth."""

    def __new__(cls, trt, stream):
        class Monitor(trt.IProgressMonitor):
            def __init__(self):
                trt.IProgressMonitor.__init__(self)
                self.depth = {}

            def phase_start(self, phase_name, parent_phase, num_steps):
                self.depth[phase_name] = self.depth.get(parent_phase, -1) + 1
                print(f"{'  ' * self.depth[phase_name]}{phase_name} ({num_steps} steps)", file=stream, flush=True)

            def step_complete(self, phase_name, step):
                return True

            def phase_finish(self, phase_name):
                self.depth.pop(phase_name, None)

        return Monitor()


def build_serialized_network(trt, onnx_path, profile, precision, fp32_outputs, workspace_bytes,
                             timing_cache=None, dla_core=None, version_compatible=False,
                             exclude_lean_runtime=False, calibrator=None, progress_stream=None):
    """Parse an ONNX file and build one serialized engine; returns ``(plan bytes, timing cache bytes)``."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # Developer guide "Creating a Network Definition": explicit batch is the only mode in TensorRT 10 (flags 0).
    network = builder.create_network(0)
    # Python API > Parsers > OnnxParser.parse_from_file
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT's ONNX parser refused {onnx_path}: {errors}")
    config = builder.create_builder_config()
    # Python API > Core > IBuilderConfig.set_memory_pool_limit (MemoryPoolType.WORKSPACE)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if progress_stream is not None:
        config.progress_monitor = _Progress(trt, progress_stream)
    _set_precision(trt, network, config, precision, fp32_outputs, calibrator)
    _add_optimization_profile(builder, config, profile)
    if dla_core is not None:
        # Developer guide "Working with DLA": default device DLA, GPU fallback for unsupported layers.
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(dla_core)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    if version_compatible:
        # Developer guide "Version Compatibility": VERSION_COMPATIBLE, optionally EXCLUDE_LEAN_RUNTIME.
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        if exclude_lean_runtime:
            config.set_flag(trt.BuilderFlag.EXCLUDE_LEAN_RUNTIME)
    # Developer guide "Timing Cache": create_timing_cache from the stored bytes, set_timing_cache, reuse.
    cache = config.create_timing_cache(timing_cache or b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    # Python API > Core > Builder.build_serialized_network
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"TensorRT could not build an engine from {onnx_path} (see the log above)")
    return bytes(plan), bytes(config.get_timing_cache().serialize())


def _set_precision(trt, network, config, precision, fp32_outputs, calibrator):
    # Developer guide "Reduced Precision" / "Layer-Level Control of Precision": BuilderFlag.FP16 (and INT8 with
    # a calibrator), layer.precision + set_output_type, and OBEY_PRECISION_CONSTRAINTS so they are honoured.
    if precision == "fp32":
        return
    config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    keep = set(fp32_outputs)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if any(o.name in keep for o in outs):
            layer.precision = trt.float32
            for j, o in enumerate(outs):
                if o.dtype in (trt.float32, trt.float16):
                    layer.set_output_type(j, trt.float32)


def _add_optimization_profile(builder, config, profile):
    # Developer guide "Optimization Profiles": one profile with min/opt/max per input.
    p = builder.create_optimization_profile()
    for name, r in profile.items():
        p.set_shape(name, r.min, r.opt, r.max)
    config.add_optimization_profile(p)


def calibration_batches(images, meta):
    """SAM-encoder inputs for INT8 calibration, one preprocessed image at a time (``meta``: the SamComponent)."""
    from pslg.runtime.image import load_image
    from pslg.runtime.sam import preprocess
    if not images:
        raise ParameterError("int8 needs calibration images (--calibration-images DIR)")
    for path in images:
        tensor, _ = preprocess(load_image(path), meta)
        yield np.ascontiguousarray(tensor)


def entropy_calibrator(trt, batches, cache_path):
    """An IInt8EntropyCalibrator2 over ``batches`` (developer guide "INT8 Calibration Using Python")."""
    from pslg.runtime.backends.tensorrt import _cuda_check, import_cudart
    cudart = import_cudart()

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches, self.device = iter(batches), None

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            batch = next(self.batches, None)
            if batch is None:
                return None
            if self.device is None:
                self.device = _cuda_check(cudart.cudaMalloc(batch.nbytes))
            _cuda_check(cudart.cudaMemcpy(self.device, batch.ctypes.data, batch.nbytes,
                                          cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
            return [int(self.device)]

        def read_calibration_cache(self):
            return cache_path.read_bytes() if cache_path.exists() else None

        def write_calibration_cache(self, cache):
            cache_path.write_bytes(bytes(cache))

    return Calibrator()
