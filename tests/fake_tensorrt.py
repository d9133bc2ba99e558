"""A strict fake ``tensorrt`` module: the TensorRT 10 names from an extracted list, with enough behaviour to build
and run engines on the CPU.

* Names: only those in ``tests/fixtures/tensorrt/tensorrt-<version>.txt`` exist (see :mod:`tests.fake_api`).
* The ONNX parser imports nodes the way onnx-tensorrt does (``onnxOpImporters.cpp``, ``importerUtils.cpp``,
  ``ImporterContext.cpp`` of onnx/onnx-tensorrt 10.1-GA, commit 96e7811): one layer named after the node for most
  ops; Softmax as a softmax layer named after the node followed by a shape shuffle (``ONNXTRT_ShapeShuffle``)
  whose output takes the ONNX name; Clip with tensor bounds as two unnamed elementwise layers (max, then min);
  LayerNormalization as broadcast shuffles of scale and bias feeding a normalization layer named after the node.
* The builder decides each layer's precision as TensorRT's weak typing does (fp16 where allowed, the layer's
  own precision where it is set and OBEY_PRECISION_CONSTRAINTS is on), fuses a shape shuffle into the layer
  before it when both run in the same precision, and writes a plan the fake runtime reads back.
* An engine runs its source ONNX graph on ONNX Runtime (CPU), reading and writing the fake CUDA memory of
  :mod:`tests.fake_cuda`, so a runner built on it is checked end to end, buffer bounds included.
"""
import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import onnx

from tests.fake_api import LISTS, ApiList, Enum, Strict
from tests.fake_cuda import as_array

PLAN_MAGIC = b"FAKE-TRT-PLAN\n"
TIMING_MAGIC = b"FAKE-TIMING:"
DATA_TYPES = {"float32": "FLOAT", "float16": "HALF", "bfloat16": "BF16", "int8": "INT8", "int32": "INT32",
              "int64": "INT64", "bool": "BOOL", "uint8": "UINT8", "fp8": "FP8", "int4": "INT4"}
NUMPY = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
         "BOOL": np.bool_, "UINT8": np.uint8}
ONNX_TYPES = {1: "FLOAT", 10: "HALF", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 2: "UINT8", 16: "BF16"}
FORMATS = {"FP32": "Row major linear FP32", "FP16": "Row major linear FP16 format", "Int8": "Row major Int8 format",
           "INT64": "Row major linear Int64", "INT32": "Row major linear Int32", "BOOL": "Row major linear Bool"}

_ELEMENTWISE = ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Equal", "Less", "Greater", "And", "Or")
_UNARY = ("Sqrt", "Exp", "Log", "Abs", "Neg", "Erf", "Sin", "Cos", "Not", "Floor", "Ceil", "Reciprocal")
_SHUFFLE = ("Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze")
#: ONNX op -> (LayerType member, layer class) for the ops imported as one layer named after the node
ONE_LAYER = {
    **{op: ("ELEMENTWISE", "IElementWiseLayer") for op in _ELEMENTWISE},
    **{op: ("UNARY", "IUnaryLayer") for op in _UNARY},
    **{op: ("SHUFFLE", "IShuffleLayer") for op in _SHUFFLE},
    **{op: ("ACTIVATION", "IActivationLayer") for op in ("Relu", "Sigmoid", "Tanh", "LeakyRelu")},
    **{op: ("REDUCE", "IReduceLayer") for op in ("ReduceMean", "ReduceSum", "ReduceMax")},
    "Conv": ("CONVOLUTION", "IConvolutionLayer"), "ConvTranspose": ("DECONVOLUTION", "IDeconvolutionLayer"),
    "MatMul": ("MATRIX_MULTIPLY", "IMatrixMultiplyLayer"), "Gemm": ("MATRIX_MULTIPLY", "IMatrixMultiplyLayer"),
    "Einsum": ("EINSUM", "IEinsumLayer"), "Concat": ("CONCATENATION", "IConcatenationLayer"),
    "Gather": ("GATHER", "IGatherLayer"), "Slice": ("SLICE", "ISliceLayer"), "Split": ("SLICE", "ISliceLayer"),
    "Expand": ("SLICE", "ISliceLayer"), "Tile": ("SLICE", "ISliceLayer"), "Pad": ("SLICE", "ISliceLayer"),
    "Cast": ("CAST", "ICastLayer"), "Shape": ("SHAPE", "IShapeLayer"), "Where": ("SELECT", "ISelectLayer"),
    "Range": ("FILL", "IFillLayer"), "OneHot": ("ONE_HOT", "IOneHotLayer"), "ScatterND": ("SCATTER", "IScatterLayer"),
    "CumSum": ("REDUCE", "IReduceLayer"), "MaxPool": ("POOLING", "IPoolingLayer"),
    "GridSample": ("GRID_SAMPLE", "IGridSampleLayer"),
    "InstanceNormalization": ("NORMALIZATION", "INormalizationLayer"),
    "Resize": ("RESIZE", "IResizeLayer"), "Identity": ("IDENTITY", "IIdentityLayer"),
}


_raw = object.__getattribute__  # the fake's own reads, not recorded as uses of the API


def _enum(mod, enum, member):
    return mod.__dict__[enum].__members__[member]


# ---------------------------------------------------------------- templates of the API classes

class Logger(Strict):
    def __init__(self, min_severity=None):
        object.__setattr__(self, "min_severity", min_severity)
        self._messages = []

    def _log(self, message):
        self._messages.append(message)
        print(f"[fake TensorRT] {message}", file=sys.stderr)


class Tensor(Strict):
    def _init(self, name, dtype, shape, layer=None):
        self._name, self._dtype, self._shape, self._layer = name, dtype, tuple(shape), layer
        return self

    name = property(lambda self: self._name, lambda self, v: setattr(self, "_name", v))
    dtype = property(lambda self: self._dtype)
    shape = property(lambda self: self._shape)


class Layer(Strict):
    def _init(self, mod, index, kind, name, inputs):
        self._mod, self._kind, self._inputs, self._outputs = mod, kind, list(inputs), []
        self._precision, self._output_types, self._name, self._metadata = None, {}, name, ""
        return self

    name = property(lambda self: self._name, lambda self, v: setattr(self, "_name", v))
    metadata = property(lambda self: self._metadata, lambda self, v: setattr(self, "_metadata", v))
    type = property(lambda self: _enum(self._mod, "LayerType", self._kind))
    num_inputs = property(lambda self: len(self._inputs))
    num_outputs = property(lambda self: len(self._outputs))
    precision_is_set = property(lambda self: self._precision is not None)

    @property
    def precision(self):
        return self._precision or _enum(self._mod, "DataType", "FLOAT")

    @precision.setter
    def precision(self, dtype):
        self._precision = dtype

    def get_input(self, index):
        return self._inputs[index]

    def get_output(self, index):
        return self._outputs[index]

    def set_output_type(self, index, dtype):
        if not 0 <= index < len(self._outputs):
            raise IndexError(index)
        self._output_types[index] = dtype

    def get_output_type(self, index):
        return self._output_types.get(index, self._outputs[index]._dtype)

    def output_type_is_set(self, index):
        return index in self._output_types


class Network(Strict):
    def _init(self, mod):
        self._mod, self._layers, self._inputs, self._outputs = mod, [], [], []
        self._names, self._suffix = set(), [0]
        return self

    num_layers = property(lambda self: len(self._layers))
    num_inputs = property(lambda self: len(self._inputs))
    num_outputs = property(lambda self: len(self._outputs))

    def get_layer(self, index):
        return self._layers[index]

    def get_input(self, index):
        return self._inputs[index]

    def get_output(self, index):
        return self._outputs[index]

    def _unique(self, base):
        """ImporterContext's generateUniqueName: base, else base_N with one counter for all names."""
        name = base
        while name in self._names:
            name = f"{base}_{self._suffix[0]}"
            self._suffix[0] += 1
        self._names.add(name)
        return name

    def _add(self, cls, kind, inputs, dtypes, name=None):
        index = len(self._layers)
        default = f"(Unnamed Layer* {index}) [{kind.title().replace('_', '')}]"
        layer = self._mod._new(cls, self._mod, index, kind, self._unique(name) if name else default, inputs)
        shape = inputs[0]._shape if inputs else ()
        layer._outputs = [self._mod._new("ITensor", f"{default}_output" + (f"_{i}" if i else ""), d, shape, layer)
                          for i, d in enumerate(dtypes)]
        if name:
            layer._metadata = f"[ONNX Layer: {name}]"
        self._layers.append(layer)
        return layer


class ParserError(Strict):
    def _init(self, text, node_name=""):
        self._text, self._node_name = text, node_name
        return self

    def desc(self):
        return self._text

    def node_name(self):
        return self._node_name

    def __str__(self):
        return f"In node {self._node_name}: {self._text}"


class OnnxParser(Strict):
    def __init__(self, network, logger):
        self._network, self._logger, self._errors = network, logger, []

    num_errors = property(lambda self: len(self._errors))

    def get_error(self, index):
        return self._errors[index]

    def parse_from_file(self, model):
        if not Path(model).is_file():
            self._errors.append(self._network._mod._new("ParserError", f"cannot read {model}"))
            return False
        self._network._onnx = str(Path(model).resolve())
        try:
            _import_onnx(self._network, onnx.load(str(model), load_external_data=False))
        except _Unsupported as e:
            self._errors.append(self._network._mod._new("ParserError", str(e), e.node))
            return False
        return True


class _Unsupported(Exception):
    def __init__(self, node):
        super().__init__(f"No importer registered for op: {node.op_type}")
        self.node = node.name


def _dims(value_info):
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim)


def _import_onnx(network, model):
    """Import ``model`` into ``network`` the way onnx-tensorrt's importers do (see the module docstring)."""
    mod = network._mod
    dtype = lambda name: _enum(mod, "DataType", name)  # noqa: E731
    weights = {w.name: (ONNX_TYPES[w.data_type], tuple(w.dims)) for w in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            value = onnx.numpy_helper.to_array(node.attribute[0].t)
            weights[node.output[0]] = (ONNX_TYPES[onnx.helper.np_dtype_to_tensor_dtype(value.dtype)], value.shape)
    tensors = {}
    for vi in model.graph.input:
        if vi.name not in weights:
            t = mod._new("ITensor", vi.name, dtype(ONNX_TYPES[vi.type.tensor_type.elem_type]), _dims(vi))
            network._inputs.append(t)
            tensors[vi.name] = t

    def tensor(name):
        if name not in tensors:  # an initializer used as a tensor becomes a constant layer with its name
            kind, shape = weights[name]
            layer = network._add("IConstantLayer", "CONSTANT", [], [dtype(kind)], name=name)
            layer._outputs[0]._init(name, dtype(kind), shape, layer)
            tensors[name] = layer._outputs[0]
        return tensors[name]

    def constant(kind):
        return network._add("IConstantLayer", "CONSTANT", [], [dtype(kind)])._outputs[0]

    def shape_shuffle(t):
        return network._add("IShuffleLayer", "SHUFFLE", [t], [t._dtype], name="ONNXTRT_ShapeShuffle")._outputs[0]

    for node in model.graph.node:
        if node.op_type == "Constant":
            continue
        ins = [tensor(n) if n else None for n in node.input]
        first = next((t for t in ins if t is not None), None)
        if node.op_type == "Softmax":  # addSoftmax (registered with the node) + addShuffle back to the input shape
            sm = network._add("ISoftMaxLayer", "SOFTMAX", [ins[0]], [ins[0]._dtype], name=node.name)
            outs = [shape_shuffle(sm._outputs[0])]
        elif node.op_type == "Clip" and any(n and n not in weights for n in node.input[1:]):
            lo, hi = [(ins[i] if i < len(ins) and ins[i] is not None else constant("FLOAT")) for i in (1, 2)]
            lo, hi = [shape_shuffle(b) if len(b._shape) < len(ins[0]._shape) else b for b in (lo, hi)]
            mx = network._add("IElementWiseLayer", "ELEMENTWISE", [ins[0], lo], [ins[0]._dtype])
            outs = [network._add("IElementWiseLayer", "ELEMENTWISE", [mx._outputs[0], hi], [ins[0]._dtype])
                    ._outputs[0]]
        elif node.op_type == "Clip":  # bounds are initializers: one activation layer (kCLIP)
            outs = [network._add("IActivationLayer", "ACTIVATION", [ins[0]], [ins[0]._dtype], name=node.name)
                    ._outputs[0]]
        elif node.op_type == "LayerNormalization":
            scale, bias = [shape_shuffle(t) if t is not None else constant("FLOAT") for t in (ins + [None])[1:3]]
            outs = [network._add("INormalizationLayer", "NORMALIZATION", [ins[0], scale, bias], [ins[0]._dtype],
                                 name=node.name)._outputs[0]]
        elif node.op_type in ONE_LAYER:
            kind, cls = ONE_LAYER[node.op_type]
            if node.op_type == "Shape":
                out_type = dtype("INT64")
            elif node.op_type == "Cast":
                out_type = dtype(ONNX_TYPES[next(a.i for a in node.attribute if a.name == "to")])
            elif node.op_type in ("Equal", "Less", "Greater", "Not", "And", "Or"):
                out_type = dtype("BOOL")
            elif node.op_type in ("Where", "OneHot"):
                out_type = ins[-1]._dtype if node.op_type == "OneHot" else ins[1]._dtype
            else:
                out_type = first._dtype if first is not None else dtype("FLOAT")
            layer = network._add(cls, kind, [t for t in ins if t is not None], [out_type] * len(node.output),
                                 name=node.name)
            outs = [layer._outputs[i] for i in range(len(node.output))]
        else:
            raise _Unsupported(node)
        for t, name in zip(outs, node.output):
            if name:
                t._name = name
                tensors[name] = t
    for vi in model.graph.output:  # the engine's output shapes are the graph's (dynamic axes as -1)
        t = tensors[vi.name]
        t._shape, t._dtype = _dims(vi), dtype(ONNX_TYPES[vi.type.tensor_type.elem_type])
        network._outputs.append(t)


class TimingCache(Strict):
    def _init(self, mod, tag, entries=b""):
        self._mod, self._tag, self._entries = mod, tag, entries
        return self

    def serialize(self):
        return self._mod._new("IHostMemory", TIMING_MAGIC + self._tag.encode() + b"\n" + self._entries)


class HostMemory(Strict):
    def _init(self, data):
        self._data = bytes(data)
        return self

    nbytes = property(lambda self: len(self._data))

    def __bytes__(self):
        return self._data


class Profile(Strict):
    def _init(self):
        self._shapes = {}
        return self

    def set_shape(self, input, min, opt, max):  # noqa: A002 (the binding's parameter names)
        if not (len(min) == len(opt) == len(max)) or any(a > b for a, b in zip(min, max)):
            raise RuntimeError("Shape provided for min is inconsistent with other shapes.")
        self._shapes[input] = (tuple(min), tuple(opt), tuple(max))


class BuilderConfig(Strict):
    def _init(self, mod):
        self._mod, self._flags, self._profiles, self._cache, self._pools = mod, set(), [], None, {}
        for name, value in (("progress_monitor", None), ("int8_calibrator", None), ("DLA_core", -1),
                            ("default_device_type", _enum(mod, "DeviceType", "GPU")),
                            ("profiling_verbosity", _enum(mod, "ProfilingVerbosity", "LAYER_NAMES_ONLY"))):
            object.__setattr__(self, name, value)
        return self

    num_optimization_profiles = property(lambda self: len(self._profiles))

    def set_flag(self, flag):
        self._flags.add(flag.name)

    def get_flag(self, flag):
        return flag.name in self._flags

    def clear_flag(self, flag):
        self._flags.discard(flag.name)

    def set_memory_pool_limit(self, pool, pool_size):
        self._pools[pool.name] = int(pool_size)

    def add_optimization_profile(self, profile):
        self._profiles.append(profile)
        return len(self._profiles) - 1

    def create_timing_cache(self, serialized_timing_cache):
        data = bytes(serialized_timing_cache)
        if data.startswith(TIMING_MAGIC):
            tag, _, entries = data[len(TIMING_MAGIC):].partition(b"\n")
            return self._mod._new("ITimingCache", self._mod, tag.decode(), entries)
        return self._mod._new("ITimingCache", self._mod, self._mod._options["device_tag"])

    def set_timing_cache(self, cache, ignore_mismatch):
        if cache._tag != self._mod._options["device_tag"] and not ignore_mismatch:  # a cache from another device
            return False
        self._cache = cache
        return True

    def get_timing_cache(self):
        return self._cache


class Builder(Strict):
    def __init__(self, logger):
        self._logger = logger

    num_DLA_cores = property(lambda self: self._mod._options["dla_cores"])
    platform_has_fast_fp16 = property(lambda self: True)

    def create_network(self, flags=0):
        return self._mod._new("INetworkDefinition", self._mod)

    def create_builder_config(self):
        return self._mod._new("IBuilderConfig", self._mod)

    def create_optimization_profile(self):
        return self._mod._new("IOptimizationProfile")

    def build_serialized_network(self, network, config):
        try:
            plan = _build(self._mod, network, config, self._logger)
        except _BuildFailed as e:
            self._logger._log(f"build failed: {e}")
            return None
        return self._mod._new("IHostMemory", PLAN_MAGIC + json.dumps(plan).encode())


class _BuildFailed(Exception):
    pass


def _check_subclass(mod, obj, base):
    fake = next((c for c in type(obj).__mro__ if c.__dict__.get("_api_name")), None)
    if fake is None or base not in mod._api.mro(fake._api_name):
        raise TypeError(f"incompatible function arguments: expected {base}, got {type(obj).__name__}")
    if not obj.__dict__.get("_initialised"):
        raise TypeError(f"{base}.__init__() must be called when overriding __init__")


def _progress(mod, config, phases):
    monitor = _raw(config, "progress_monitor")
    if monitor is None:
        return
    _check_subclass(mod, monitor, "IProgressMonitor")
    for phase, parent, steps in phases:
        monitor.phase_start(phase, parent, steps)
        for step in range(steps):
            if monitor.step_complete(phase, step) is False:
                raise _BuildFailed("cancelled by the progress monitor")
        monitor.phase_finish(phase)


def _calibrate(mod, network, config):
    calibrator = _raw(config, "int8_calibrator")
    if calibrator is None:
        raise _BuildFailed("INT8 without a calibrator or dynamic ranges")
    _check_subclass(mod, calibrator, "IInt8Calibrator")
    cache = calibrator.read_calibration_cache()
    if cache:
        return {"calibration": "from cache", "batches": 0}
    names = [network._inputs[i]._name for i in range(len(network._inputs))]
    shapes = {n: s[1] for n, s in config._profiles[0]._shapes.items()}
    batches = 0
    while True:
        try:  # pybind11 trampoline: an exception in get_batch is printed and read as "no more batches"
            pointers = calibrator.get_batch(names)
        except Exception as e:  # noqa: BLE001 (this is what the real bindings do)
            print(f"[TRT] [E] Exception caught in get_batch(): {e}", file=sys.stderr)
            pointers = None
        if not pointers:
            break
        for name, ptr in zip(names, pointers):
            mod._cudart.memory(ptr, int(np.prod(shapes[name])) * 4, "device")
        batches += 1
    if batches == 0:
        raise _BuildFailed("calibration failed: the calibrator gave no batch")
    calibrator.write_calibration_cache(b"FAKE-CALIBRATION %d" % batches)
    return {"calibration": "computed", "batches": batches}


def _runs_in(mod, layer, flags):
    """The precision a layer runs in under weak typing: ``FP32``, ``FP16``, ``Int8`` or its integer type."""
    dtypes = [layer._outputs[i]._dtype.name for i in range(len(layer._outputs))]
    if layer._kind in ("CONSTANT", "SHAPE") or any(d not in ("FLOAT", "HALF") for d in dtypes):
        return next((d for d in dtypes if d not in ("FLOAT", "HALF")), "FP32") if dtypes else "FP32"
    if "OBEY_PRECISION_CONSTRAINTS" in flags and layer._precision is not None:
        return {"FLOAT": "FP32", "HALF": "FP16", "INT8": "Int8"}[layer._precision.name]
    if "INT8" in flags and layer._kind in ("CONVOLUTION", "MATRIX_MULTIPLY"):
        return "Int8"
    return "FP16" if "FP16" in flags else "FP32"


def _build(mod, network, config, logger):
    if len(network._outputs) == 0:
        raise _BuildFailed("network has no outputs")
    dynamic = [t._name for t in network._inputs if -1 in t._shape]
    shapes = config._profiles[0]._shapes if config._profiles else {}
    missing = [n for n in dynamic if n not in shapes]
    if missing:
        raise _BuildFailed(f"dynamic inputs {missing} have no optimization profile")
    _progress(mod, config, [("Building engine", None, 2), ("Tactic selection", "Building engine", 3)])
    calibration = _calibrate(mod, network, config) if "INT8" in config._flags else None
    layers = []
    for layer in network._layers:
        run = _runs_in(mod, layer, config._flags)
        outputs = [{"name": layer._outputs[i].name,
                    "format": FORMATS.get(run if layer._outputs[i]._dtype.name in ("FLOAT", "HALF") else
                                          layer._outputs[i]._dtype.name, run)}
                   for i in range(len(layer._outputs))]
        entry = {"name": layer._name, "type": layer._kind, "runs": run, "outputs": outputs,
                 "inputs": [t._name for t in layer._inputs], "metadata": layer._metadata}
        previous = layers[-1] if layers else None
        if (layer._name.startswith("ONNXTRT_ShapeShuffle") and previous and previous["runs"] == run
                and [o["name"] for o in previous["outputs"]] == entry["inputs"]):
            previous.update(name=f"{previous['name']} + {layer._name}", outputs=outputs)  # fused
        else:
            layers.append(entry)
    dla = _raw(config, "DLA_core") if _raw(config, "default_device_type") == _enum(mod, "DeviceType", "DLA") else None
    io = [{"name": t._name, "mode": mode, "dtype": t._dtype.name, "shape": list(t._shape)}
          for mode, ts in (("INPUT", network._inputs), ("OUTPUT", network._outputs)) for t in ts]
    return {"tensorrt": mod.__version__, "onnx": network._onnx, "io": io, "layers": layers,
            "profile": {n: [list(s) for s in r] for n, r in shapes.items()}, "dla_core": dla,
            "flags": sorted(config._flags), "verbosity": _raw(config, "profiling_verbosity").name,
            "calibration": calibration}


class Runtime(Strict):
    def __init__(self, logger):
        if self._mod._options["runtime_error"]:  # what pybind11 raises when createInferRuntime returns nullptr
            raise TypeError("pybind11::init(): factory function returned nullptr")
        self._logger, self._version, self._lean = logger, self._mod.__version__, False
        object.__setattr__(self, "DLA_core", 0)
        object.__setattr__(self, "engine_host_code_allowed", False)

    num_DLA_cores = property(lambda self: self._mod._options["dla_cores"])

    def load_runtime(self, path):
        m = re.search(r"\.so\.(\d+\.\d+\.\d+)", Path(path).name)
        if not Path(path).is_file():
            self._logger._log(f"cannot load the lean runtime {path}")
            return None
        lean = type(self)(self._logger)
        lean._version, lean._lean = (m.group(1) if m else self._version), True
        return lean

    def deserialize_cuda_engine(self, serialized_engine):
        data = bytes(serialized_engine)
        if not data.startswith(PLAN_MAGIC):
            self._logger._log("Error Code 1: Serialization (Serialization assertion magicTagRead == kMAGIC_TAG "
                              "failed.)")
            return None
        plan = json.loads(data[len(PLAN_MAGIC):])
        flags = plan["flags"]
        if plan["tensorrt"] != self._version:
            if "VERSION_COMPATIBLE" not in flags:
                self._logger._log(f"plan built by TensorRT {plan['tensorrt']}, this is {self._version}")
                return None
        if "EXCLUDE_LEAN_RUNTIME" in flags and not (self._lean and self._version == plan["tensorrt"]):
            self._logger._log("a plan without its lean runtime needs load_runtime() of the builder's version")
            return None
        if "VERSION_COMPATIBLE" in flags and "EXCLUDE_LEAN_RUNTIME" not in flags \
                and not _raw(self, "engine_host_code_allowed"):
            self._logger._log("the plan holds host code: set engine_host_code_allowed")
            return None
        core = _raw(self, "DLA_core")
        if plan["dla_core"] is not None and not 0 <= core < self._mod._options["dla_cores"]:
            self._logger._log(f"DLA core {core} does not exist")
            return None
        engine = self._mod._new("ICudaEngine", self._mod, plan)
        engine._dla_core = core if plan["dla_core"] is not None else None
        return engine


class Engine(Strict):
    def _init(self, mod, plan):
        self._mod, self._plan, self._io = mod, plan, {t["name"]: t for t in plan["io"]}
        self._order = [t["name"] for t in plan["io"]]
        self._session, self._dla_core = None, None
        return self

    num_io_tensors = property(lambda self: len(self._order))
    num_layers = property(lambda self: len(self._plan["layers"]))

    def get_tensor_name(self, index):
        return self._order[index]

    def get_tensor_mode(self, name):
        return _enum(self._mod, "TensorIOMode", self._io[name]["mode"] if name in self._io else "NONE")

    def get_tensor_dtype(self, name):
        return _enum(self._mod, "DataType", self._io[name]["dtype"])

    def get_tensor_shape(self, name):
        return tuple(self._io[name]["shape"])

    def create_execution_context(self, strategy=None):
        return self._mod._new("IExecutionContext", self)

    def create_engine_inspector(self):
        return self._mod._new("EngineInspector", self)

    def _run(self, feeds):
        if self._session is None:
            import onnxruntime
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 2
            self._session = onnxruntime.InferenceSession(self._plan["onnx"], options,
                                                         providers=["CPUExecutionProvider"])
        names = [o.name for o in self._session.get_outputs()]
        return dict(zip(names, self._session.run(names, feeds)))


class Context(Strict):
    def _init(self, engine):
        self._engine, self._shapes, self._addresses, self._out_shapes = engine, {}, {}, {}
        self._runs = 0
        return self

    def set_input_shape(self, name, shape):
        io = self._engine._io.get(name)
        shape = tuple(shape)
        if io is None or io["mode"] != "INPUT" or len(shape) != len(io["shape"]):
            return False
        lo, _, hi = self._engine._plan["profile"].get(name, (io["shape"], None, io["shape"]))
        if not all(a <= s <= b for s, a, b in zip(shape, lo, hi)):
            return False
        self._shapes[name] = shape
        self._out_shapes = {}
        return True

    @property
    def all_binding_shapes_specified(self):
        return all(n in self._shapes for n, t in self._engine._io.items() if t["mode"] == "INPUT")

    def get_tensor_shape(self, name):
        io = self._engine._io[name]
        if io["mode"] == "INPUT":
            return self._shapes.get(name, tuple(io["shape"]))
        if -1 not in io["shape"]:
            return tuple(io["shape"])
        if not self._out_shapes:  # output shapes follow from the input shapes: run the graph once on zeros
            zeros = {n: np.zeros(s, NUMPY[self._engine._io[n]["dtype"]]) for n, s in self._shapes.items()}
            self._out_shapes = {k: v.shape for k, v in self._engine._run(zeros).items()}
        return tuple(self._out_shapes[name])

    def set_tensor_address(self, name, memory):
        if name not in self._engine._io or not int(memory):
            return False
        self._addresses[name] = int(memory)
        return True

    def execute_async_v3(self, stream_handle):
        io = self._engine._io
        if not self.all_binding_shapes_specified or set(self._addresses) != set(io):
            return False
        cudart = self._engine._mod._cudart

        def kernel():
            feeds = {n: as_array(cudart, self._addresses[n], self._shapes[n], NUMPY[io[n]["dtype"]]).copy()
                     for n, t in io.items() if t["mode"] == "INPUT"}
            for name, value in self._engine._run(feeds).items():
                out = as_array(cudart, self._addresses[name], value.shape, value.dtype)  # OutOfBounds if too small
                out[...] = value
            self._runs += 1
        cudart.enqueue(stream_handle, kernel)
        return True


class Inspector(Strict):
    def _init(self, engine):
        self._engine = engine
        object.__setattr__(self, "execution_context", None)
        return self

    def _layer(self, entry, verbosity):
        if verbosity != "DETAILED":
            return entry["name"]
        return {"Name": entry["name"], "LayerType": entry["type"].title(),
                "Inputs": [{"Name": n} for n in entry["inputs"]],
                "Outputs": [{"Name": o["name"], "Format/Datatype": o["format"]} for o in entry["outputs"]],
                "Metadata": entry["metadata"]}

    def get_engine_information(self, format):  # noqa: A002
        plan = self._engine._plan
        layers = [] if plan["verbosity"] == "NONE" else [self._layer(e, plan["verbosity"]) for e in plan["layers"]]
        return json.dumps({"Layers": layers, "Bindings": [t["name"] for t in plan["io"]]})

    def get_layer_information(self, layer_index, format):  # noqa: A002
        return json.dumps(self._layer(self._engine._plan["layers"][layer_index], self._engine._plan["verbosity"]))


class Unimplemented(Strict):
    """A listed class the fake has no behaviour for: it exists, and cannot be made."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(f"the fake does not implement tensorrt.{type(self)._api_name}")


class ProgressMonitor(Strict):
    def __init__(self):
        self._initialised = True


class Calibrator(Strict):
    def __init__(self):
        self._initialised = True


#: API class -> template (the listed classes without a template exist but cannot be made)
TEMPLATES = {"Logger": Logger, "ILayer": Layer, "ITensor": Tensor, "INetworkDefinition": Network,
             "OnnxParser": OnnxParser,
             "ParserError": ParserError, "ITimingCache": TimingCache, "IHostMemory": HostMemory,
             "IOptimizationProfile": Profile, "IBuilderConfig": BuilderConfig, "Builder": Builder,
             "Runtime": Runtime, "ICudaEngine": Engine, "IExecutionContext": Context, "EngineInspector": Inspector,
             "IProgressMonitor": ProgressMonitor, "IInt8EntropyCalibrator2": Calibrator,
             "IInt8Calibrator": Calibrator}


class FakeModule(types.ModuleType):
    """Module-level names are checked against the list and recorded, like members."""

    def __getattribute__(self, name):
        if name.startswith("_"):
            return types.ModuleType.__getattribute__(self, name)
        api = types.ModuleType.__getattribute__(self, "_api")
        if not (name in api.classes or name in api.functions or name in api.attrs or name in api.values.get("", ())):
            raise AttributeError(f"module 'tensorrt' has no attribute '{name}' (not in {api.path.name})")
        api.use(name)
        try:
            return types.ModuleType.__getattribute__(self, name)
        except AttributeError:
            raise NotImplementedError(f"the fake does not implement tensorrt.{name}") from None

    def _new(self, cls, *args):
        """An instance of the module's class ``cls`` made through its template's ``_init`` (no public constructor)."""
        obj = object.__new__(types.ModuleType.__getattribute__(self, cls))
        return obj._init(*args)


def make_tensorrt(list_name="tensorrt-10.3.0.txt", cudart=None, version=None, device_tag="sm87", dla_cores=2,
                  runtime_error=False):
    """A fresh fake ``tensorrt`` module from one name list; ``cudart`` is the :class:`FakeCudart` it runs on."""
    api = ApiList(LISTS / list_name)
    mod = FakeModule("tensorrt")
    mod._api, mod._cudart = api, cudart
    mod._options = {"device_tag": device_tag, "dla_cores": dla_cores, "runtime_error": runtime_error}
    mod.__version__ = version or re.search(r"tensorrt-([\d.]+)\.txt", list_name).group(1)
    layer_classes = {c for c in api.classes if "ILayer" in api.mro(c)}
    for name in api.classes:
        if name in api.enums:
            mod.__dict__[name] = Enum(api, name, api.values.get(name, ()))
            continue
        template = TEMPLATES.get(name) or (Layer if name in layer_classes else Unimplemented)
        mod.__dict__[name] = type(name, (template,), {"_api": api, "_api_name": name, "_mod": mod})
    _check_templates(api)
    for attr, member in DATA_TYPES.items():
        if attr in api.attrs:
            mod.__dict__[attr] = _enum(mod, "DataType", member)
    severity = mod.__dict__["ILogger.Severity"]
    for cls in ("Logger", "ILogger"):  # Severity exported into ILogger, copied onto Logger by __init__.py
        for member in api.values.get(cls, ()):
            if member in severity.__members__:
                type.__setattr__(mod.__dict__[cls], member, severity.__members__[member])
    mod.nptype = lambda trt_type: NUMPY[trt_type.name]
    return mod


def _check_templates(api):
    """Every public name a template defines must be in the list: the fake offers nothing the API lacks."""
    for name, template in TEMPLATES.items():
        if name not in api.classes:
            continue
        own = {k for c in template.__mro__ if c not in (Strict, object) for k in vars(c) if not k.startswith("_")}
        extra = sorted(k for k in own if api.member(name, k) is None)
        assert not extra, f"fake {name} defines {extra}, which {api.path.name} does not list"


def install(monkeypatch, list_name="tensorrt-10.3.0.txt", cuda_list="cuda-bindings-12.9.4.txt", cuda=None, **options):
    """Put a fresh fake ``tensorrt`` and ``cuda.bindings.runtime`` in ``sys.modules``; returns ``(trt, cudart)``."""
    from tests.fake_cuda import FakeCudart
    cudart = cuda or FakeCudart(cuda_list)
    trt = make_tensorrt(list_name, cudart, **options)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cudart)
    return trt, cudart
