"""TensorRT engine builds: profiles and fp32 layer choice (plain logic), and thin builder calls.

Precision policy: the exported ONNX graphs are fp32, so fp16 builds use a
weakly typed network with the FP16 flag and *obeyed* precision constraints on
the layers that overflow or lose too much in fp16 (LayerNorm, decomposed or
not, Softmax, and the clamp/div/log of LQVG's inverse_sigmoid). The choice is
made per ONNX node, by op type and graph position only, so it holds for any
SAM family's graph. TensorRT's ONNX parser may import one node as several
layers (Softmax: a softmax layer and a shape shuffle; Clip with tensor bounds:
max then min; LayerNormalization: broadcast shuffles and a normalization
layer), so every layer the parser made for a node is constrained, found by
walking back from the node's outputs to tensors that carry ONNX names. After
the build, the engine inspector (detailed profiling verbosity) must show each
constrained layer it can see in fp32; the build record says how many it saw.

Next step (TensorRT 11 removed this weakly typed API, and 10.12 deprecated
it): a strongly typed network, with the graph itself in fp16 and Cast nodes
to fp32 around the same nodes, built without precision flags. The nodes
:func:`fp32_nodes` picks are the ones to wrap; TensorRT 10.15's
strongly-typed autocast sample shows the shape.
"""
import json
import logging
import re
from dataclasses import dataclass

import numpy as np

from pslg.runtime.backends.tensorrt import format_precision
from pslg.runtime.errors import BackendUnavailable, ExportError, ParameterError, ProfileError
from pslg.runtime.specs import ShapeRange

log = logging.getLogger(__name__)

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


def onnx_tensor_names(model):
    """Every tensor name of an ONNX graph: inputs, initializers and node inputs/outputs."""
    g = model.graph
    return ({t for n in g.node for t in list(n.input) + list(n.output) if t} | {i.name for i in g.input}
            | {w.name for w in g.initializer})


def layers_of_nodes(network, model, nodes):
    """``{node: [layer index]}``: the TensorRT layers the ONNX parser made for each named ONNX node.

    From the layers that produce a node's outputs (the parser gives them the
    ONNX names), walk back through layer inputs until a tensor with an ONNX
    name: everything on the way was made for this node.
    """
    producer = {}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            producer[layer.get_output(j).name] = i
    named = onnx_tensor_names(model)
    by_name = {n.name: n for n in model.graph.node}
    result = {}
    for node in nodes:
        found, todo = set(), [producer[o] for o in by_name[node].output if o in producer]
        while todo:
            i = todo.pop()
            if i in found:
                continue
            found.add(i)
            layer = network.get_layer(i)
            for j in range(layer.num_inputs):
                t = layer.get_input(j)
                if t is not None and t.name not in named and t.name in producer:
                    todo.append(producer[t.name])
        result[node] = sorted(found)
    return result


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


# ---------------------------------------------------------------- reading the engine inspector

def _name_parts(name):
    """Layer names inside a fused engine layer's name (``A + B``, ``PWN(A, B)``, ``{ForeignNode[A...B]}``)."""
    return [p for p in re.split(r" \+ |PWN\(|\)|, |\{ForeignNode\[|\]\}|\.\.\.", name) if p]


def fp32_check(engine_information, constrained):
    """What the inspector (``get_engine_information`` JSON, detailed verbosity) says of the ``constrained`` layers.

    Returns ``{"constrained_layers", "fp32", "fused", "not_visible", "violations"}``: ``fp32``, layers the
    engine shows running in fp32 (alone, or fused only with other constrained layers); ``fused``, fused with
    unconstrained layers, so their own precision is not visible; ``not_visible``, layers the engine does not
    name (inside a Myelin foreign node, or optimised away); ``violations``, ``[(layer, precision)]`` of
    layers shown in a lower precision.
    """
    layers = json.loads(engine_information).get("Layers", [])
    if layers and not isinstance(layers[0], dict):
        raise ExportError("the engine inspector gave layer names only: the build must set "
                          "ProfilingVerbosity.DETAILED to check layer precisions")
    constrained = set(constrained)
    status, violations = {}, []
    for entry in layers:
        if entry.get("LayerType") == "Reformat":
            continue
        parts = _name_parts(entry.get("Name", ""))
        mine = [p for p in parts if p in constrained]
        if not mine:
            continue
        precisions = {format_precision(o.get("Format/Datatype", "")) for o in entry.get("Outputs", [])}
        if not set(parts) <= constrained:
            verdict = "fused"
        elif precisions <= {"fp32", "int"}:
            verdict = "fp32"
        else:
            verdict = "violation"
            violations.append((entry["Name"], sorted(precisions - {"fp32", "int"})))
        for p in mine:
            status[p] = verdict
    return {"constrained_layers": len(constrained), "fp32": sum(v == "fp32" for v in status.values()),
            "fused": sum(v == "fused" for v in status.values()), "not_visible": len(constrained - set(status)),
            "violations": violations}


# ---------------------------------------------------------------- thin wrappers around the TensorRT builder

def import_tensorrt_builder():
    """The full ``tensorrt`` package of a supported version (the lean runtime has no builder)."""
    from pslg.runtime.backends.tensorrt import INSTALL_HINT, check_tensorrt_version
    try:
        import tensorrt
    except ImportError:
        raise BackendUnavailable(INSTALL_HINT) from None
    check_tensorrt_version(tensorrt.__version__)
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


@dataclass
class BuiltEngine:
    """One build's outputs: the plan, the timing cache to keep, and the fp32 layers set per ONNX node."""

    plan: bytes
    timing_cache: bytes
    fp32_layers: dict
    timing_cache_status: str


def build_serialized_network(trt, onnx_path, model, profile, precision, fp32_node_names, workspace_bytes,
                             timing_cache=None, dla_core=None, version_compatible=False,
                             exclude_lean_runtime=False, calibrator=None, progress_stream=None) -> BuiltEngine:
    """Parse an ONNX file (``model``: the same graph, loaded without weights) and build one serialized engine."""
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
    # detailed layer information in the plan, so the engine inspector can show each layer's precision
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if progress_stream is not None:
        config.progress_monitor = _Progress(trt, progress_stream)
    fp32_layers = _set_precision(trt, network, model, config, precision, fp32_node_names, calibrator)
    _add_optimization_profile(builder, config, profile)
    if dla_core is not None:
        # Developer guide "Working with DLA": default device DLA, GPU fallback for unsupported layers.
        if not 0 <= dla_core < builder.num_DLA_cores:
            raise ParameterError(f"--dla-core {dla_core}: this device has {builder.num_DLA_cores} DLA cores")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(dla_core)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    if version_compatible:
        # Developer guide "Version Compatibility": VERSION_COMPATIBLE, optionally EXCLUDE_LEAN_RUNTIME.
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        if exclude_lean_runtime:
            config.set_flag(trt.BuilderFlag.EXCLUDE_LEAN_RUNTIME)
    status = _set_timing_cache(config, timing_cache)
    # Python API > Core > Builder.build_serialized_network: None on failure (the reason went to the logger)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError(f"TensorRT could not build an engine from {onnx_path} (see the log above)")
    return BuiltEngine(bytes(plan), bytes(config.get_timing_cache().serialize()), fp32_layers, status)


def _set_timing_cache(config, stored):
    """Use the stored timing cache, or a fresh one when TensorRT refuses it; returns what happened."""
    # Developer guide "Timing Cache": create_timing_cache from the stored bytes, set_timing_cache. It returns
    # False for a cache from another device or TensorRT version (ignore_mismatch=False): start afresh then.
    if stored and config.set_timing_cache(config.create_timing_cache(stored), ignore_mismatch=False):
        return "reused"
    if stored:
        log.warning("the timing cache was made on another GPU or TensorRT version; building with a fresh one")
    if not config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False):
        raise ExportError("TensorRT refused a fresh timing cache")
    return "replaced (made on another device)" if stored else "fresh"


def _set_precision(trt, network, model, config, precision, fp32_node_names, calibrator):
    """Precision flags, and fp32 on every layer the parser made for ``fp32_node_names``; returns
    ``{node: [layer names]}`` of the layers constrained."""
    # Developer guide "Reduced Precision" / "Layer-Level Control of Precision": BuilderFlag.FP16 (and INT8 with
    # a calibrator), layer.precision + set_output_type, and OBEY_PRECISION_CONSTRAINTS so they are honoured.
    if precision == "fp32":
        return {}
    config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    floats = (trt.float32, trt.float16)
    skip = (trt.LayerType.CONSTANT, trt.LayerType.SHAPE)
    constrained = {}
    for node, indices in layers_of_nodes(network, model, fp32_node_names).items():
        names = []
        for i in indices:
            layer = network.get_layer(i)
            outs = [layer.get_output(j) for j in range(layer.num_outputs)]
            if layer.type in skip or not outs or any(o.dtype not in floats for o in outs):
                continue  # weights and shape arithmetic: nothing to compute in fp32
            layer.precision = trt.float32
            for j in range(len(outs)):
                layer.set_output_type(j, trt.float32)
            names.append(layer.name)
        constrained[node] = names
    return constrained


def _add_optimization_profile(builder, config, profile):
    # Developer guide "Optimization Profiles": one profile with min/opt/max per input.
    p = builder.create_optimization_profile()
    for name, r in profile.items():
        p.set_shape(name, r.min, r.opt, r.max)
    config.add_optimization_profile(p)


def inspect_fp32(trt, plan, engine, fp32_layers):
    """Deserialize the new ``plan`` (its EngineSpec ``engine``) here and check with the engine inspector that
    every constrained layer it shows runs in fp32 (:func:`fp32_check`); ExportError naming any that does not."""
    from pslg.runtime.backends.tensorrt import deserialize_plan, engine_information
    constrained = [name for names in fp32_layers.values() for name in names]
    _, cuda_engine = deserialize_plan(trt, plan, engine, f"the new engine for {engine.graph}")
    report = fp32_check(engine_information(trt, cuda_engine), constrained)
    if report["violations"]:
        shown = ", ".join(f"{name} ({'/'.join(p)})" for name, p in report["violations"][:5])
        raise ExportError(f"{engine.graph}: TensorRT did not keep {len(report['violations'])} constrained layers in "
                          f"fp32 although OBEY_PRECISION_CONSTRAINTS was set: {shown}")
    return report


def calibration_batches(images, meta):
    """SAM-encoder inputs for INT8 calibration, one preprocessed image at a time (``meta``: the SamComponent)."""
    from pslg.runtime.image import load_image
    from pslg.runtime.sam import preprocess
    for path in images:
        tensor, _ = preprocess(load_image(path), meta)
        yield np.ascontiguousarray(tensor)


def entropy_calibrator(trt, batches, expected, cache_path):
    """An IInt8EntropyCalibrator2 over ``batches`` (developer guide "INT8 Calibration Using Python").

    TensorRT reads an exception in ``get_batch`` as "no more batches", so the
    calibrator keeps it and :meth:`finish` raises it after the build, as it
    does when fewer than ``expected`` batches were used (unless the cache,
    keyed to the graph's sha256, was read instead). ``finish`` frees the
    device buffer; call it whatever the build did.
    """
    from pslg.runtime.backends.tensorrt import _cuda_check, _cuda_malloc, import_cudart
    cudart = import_cudart()

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches, self.device, self.nbytes = iter(batches), None, 0
            self.served, self.error, self.cache_used = 0, None, False

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            try:
                if len(names) != 1:
                    raise ExportError(f"int8 calibration feeds one input, the graph has {list(names)}")
                batch = next(self.batches, None)
                if batch is None:
                    return None
                if self.device is None:
                    self.device, self.nbytes = _cuda_malloc(cudart, batch.nbytes), batch.nbytes
                if batch.nbytes != self.nbytes:
                    raise ExportError(f"calibration batch {self.served + 1} has {batch.nbytes} bytes, "
                                      f"not {self.nbytes}")
                _cuda_check(cudart.cudaMemcpy(self.device, batch.ctypes.data, batch.nbytes,
                                              cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
                self.served += 1
                return [int(self.device)]
            except Exception as e:  # noqa: BLE001 (re-raised by finish(): TensorRT would swallow it)
                self.error = e
                return None

        def read_calibration_cache(self):
            if cache_path.exists():
                self.cache_used = True
                return cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache):
            try:
                cache_path.write_bytes(bytes(cache))
            except OSError as e:
                self.error = e

        def finish(self):
            if self.device is not None:
                device, self.device = self.device, None
                _cuda_check(cudart.cudaFree(device))
            if self.error is not None:
                raise ExportError(f"INT8 calibration failed after {self.served} of {expected} images: "
                                  f"{getattr(self.error, 'message', self.error)}") from self.error
            if not self.cache_used and self.served != expected:
                raise ExportError(f"INT8 calibration used {self.served} of {expected} images (TensorRT stopped "
                                  f"asking); the engine was not recorded")

    return Calibrator()
