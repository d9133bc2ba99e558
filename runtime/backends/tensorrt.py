"""TensorRT backend: one engine per graph, run on one CUDA stream with buffers kept per shape.

Everything that is logic (version and compatibility rules, profile checks,
buffer plans) is plain Python here and tested without TensorRT. The calls
into TensorRT and CUDA are the few ``_trt_*`` / ``_cuda_*`` functions at the
end, each named after the API it wraps. They are written against the
TensorRT 10.3 Python bindings (JetPack 6.1/6.2) and cuda-python 12.x's
``cuda.bindings.runtime``, and tested against fakes built from those
bindings' extracted name lists (``tests/fixtures/tensorrt``).
"""
import ctypes.util
import importlib
import importlib.util
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BackendRuntimeError, BackendUnavailable, EngineIncompatible, ProfileError
from ..specs import TensorSpec
from .base import Runner

log = logging.getLogger(__name__)

#: TensorRT releases this code supports: 10.3 (JetPack 6.1/6.2) up to, not including, 11 (which removed the
#: weakly typed precision API the fp16/int8 builds use). Keep in step with setup.cfg's [tensorrt] extra.
TENSORRT_MIN, TENSORRT_BELOW = (10, 3), (11, 0)
#: environment variable naming the lean runtime library for engines built with --exclude-lean-runtime
LEAN_LIBRARY_ENV = "PSLG_TENSORRT_LEAN_LIBRARY"
INSTALL_HINT = ("TensorRT is not installed. On Jetson it comes with JetPack 6.1 or 6.2 (TensorRT 10.3; "
                "python3-libnvinfer), plus 'pip install \"cuda-python>=12.6,<13\"'; on a desktop GPU with a CUDA 12 "
                "driver: pip install 'pslg-sam[tensorrt]' (tensorrt-cu12 10.x and cuda-python 12.x). Then build "
                "engines on the target device with 'pslg build --models DIR'.")
#: cudaErrorInsufficientDriver: the usual cause is cuda-python 13 (CUDA 13, driver r580+) on a CUDA 12 driver
_INSUFFICIENT_DRIVER = 35


def _import_first(names, error):
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise error


def version_tuple(version: str):
    """``"10.3.0.26"`` -> ``(10, 3, 0, 26)`` (non-numeric parts end the tuple)."""
    parts = []
    for p in str(version).split("."):
        if not p.isdigit():
            break
        parts.append(int(p))
    return tuple(parts)


def check_tensorrt_version(version: str) -> None:
    """Refuse a TensorRT this code was not written for, with a named error saying what to install."""
    v = version_tuple(version)
    if not TENSORRT_MIN <= v[:2] < TENSORRT_BELOW:
        lo, hi = ".".join(map(str, TENSORRT_MIN)), TENSORRT_BELOW[0]
        why = ("TensorRT 11 removed the weakly typed precision API (BuilderFlag.FP16/INT8, layer precisions, INT8 "
               "calibrators) that these builds use" if v[:1] >= TENSORRT_BELOW[:1] else
               "TensorRT 8.6 (JetPack 6.0) and other releases before 10.3 lack APIs it uses (IProgressMonitor, the "
               "tensor-name I/O API, explicit batch by default)")
        raise BackendUnavailable(f"TensorRT {version} is not supported: pslg-sam needs TensorRT >= {lo}, < {hi} "
                                 f"({why}). On Jetson use JetPack 6.1 or 6.2; on a desktop: "
                                 f"pip install 'pslg-sam[tensorrt]'")


def import_tensorrt():
    """The full ``tensorrt`` module, else ``tensorrt_lean`` (runtime only), of a supported version.

    BackendUnavailable if neither is installed or the version is outside 10.3..10.x.
    """
    trt = _import_first(("tensorrt", "tensorrt_lean"), BackendUnavailable(INSTALL_HINT))
    check_tensorrt_version(getattr(trt, "__version__", "0"))
    return trt


def import_cudart():
    """cuda-python's runtime bindings (``cuda.bindings.runtime``, or ``cuda.cudart`` before 12.6)."""
    return _import_first(("cuda.bindings.runtime", "cuda.cudart"),
                         BackendUnavailable("the TensorRT backend needs cuda-python: pip install "
                                            "'cuda-python>=12.6,<13' (CUDA 12 drivers, JetPack 6)"))


# ---------------------------------------------------------------- logic (no TensorRT needed)

@dataclass(frozen=True)
class DeviceInfo:
    """What an engine is tied to: TensorRT version and the GPU it was built on."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str


def compatibility_problems(engine, device, onnx_sha256):
    """Why ``engine`` (an EngineSpec) cannot run here (empty list: it can).

    Plain engines need the TensorRT version that built them. Version-compatible
    engines that embed their lean runtime run on any TensorRT of the same major
    version, not older than the builder; those built without it
    (``--exclude-lean-runtime``) run only through the builder's lean runtime
    library, which :func:`lean_library` takes from this TensorRT, so they need
    the same version too. All need the same compute capability and must come
    from the graph now in the set.
    """
    problems = []
    built, here = engine.tensorrt_version, device.tensorrt_version
    if engine.version_compatible and engine.lean_runtime_embedded:
        b, h = version_tuple(built), version_tuple(here)
        if b[:1] != h[:1] or h[:3] < b[:3]:
            problems.append(f"version-compatible engine from TensorRT {built} needs a TensorRT {b[0]}.x runtime "
                            f">= {built}, this is {here}")
    elif built != here:
        lean = (" (built --version-compatible --exclude-lean-runtime: it runs only through the lean runtime of the "
                "TensorRT that built it)" if engine.version_compatible else "")
        problems.append(f"built with TensorRT {built}, this is TensorRT {here}{lean}")
    if engine.compute_capability != device.compute_capability:
        problems.append(f"built for {engine.gpu_name} (compute capability {engine.compute_capability}), "
                        f"this GPU is {device.gpu_name} ({device.compute_capability})")
    if engine.onnx_sha256 != onnx_sha256:
        problems.append("the ONNX graph changed since the engine was built (sha256 differs)")
    return problems


def lean_library(trt):
    """Path (or soname) of the lean runtime library for ``IRuntime.load_runtime``.

    ``$PSLG_TENSORRT_LEAN_LIBRARY`` when set, else ``libnvinfer_lean`` found on the
    library path (JetPack) or beside the ``tensorrt_libs`` wheel (pip).
    """
    path = os.environ.get(LEAN_LIBRARY_ENV)
    if path:
        return path
    found = ctypes.util.find_library("nvinfer_lean")
    if found:
        return found
    spec = importlib.util.find_spec("tensorrt_libs")
    major = version_tuple(trt.__version__)[:1] or (10,)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / f"libnvinfer_lean.so.{major[0]}"
        if candidate.is_file():
            return str(candidate)
    raise EngineIncompatible(f"engine built --exclude-lean-runtime needs TensorRT's lean runtime library "
                             f"(libnvinfer_lean.so), which was not found: set {LEAN_LIBRARY_ENV} to its path")


def rebuild_hint(engine):
    return f"pslg build --models {engine.models_dir} --graphs {engine.graph}"


def check_compatible(engine, device, onnx_sha256):
    """Raise EngineIncompatible, saying how to rebuild, unless the engine fits this device."""
    problems = compatibility_problems(engine, device, onnx_sha256)
    if problems:
        raise EngineIncompatible(f"engine {engine.path.name} for {engine.graph} cannot run here: "
                                 f"{'; '.join(problems)}. Rebuild it on this device: {rebuild_hint(engine)}")


def check_profile(feeds, profile):
    """Refuse inputs whose shape lies outside the engine's optimization profile (before TensorRT sees them)."""
    for name, ranges in profile.items():
        shape = feeds[name].shape
        if not ranges.contains(shape):
            raise ProfileError(f"input '{name}' has shape {list(shape)}, outside the engine's profile "
                               f"{list(ranges.min)}..{list(ranges.max)}; rebuild with a wider profile "
                               f"(pslg build --max-prompts/--max-points)")


@dataclass(frozen=True)
class BufferPlan:
    """Bytes of every input and output tensor for one set of input shapes."""

    shapes: dict
    dtypes: dict

    @classmethod
    def for_feeds(cls, spec, feeds):
        shapes = {t.name: tuple(feeds[t.name].shape) for t in spec.inputs}
        outs = spec.output_shapes(feeds)
        missing = [k for k, v in outs.items() if v is None]
        if missing:
            raise BackendRuntimeError(f"{spec.name}: output shapes of {missing} do not follow from the inputs")
        shapes.update(outs)
        return cls(shapes, {t.name: t.dtype for t in spec.inputs + spec.outputs})

    def nbytes(self, name):
        return int(np.prod(self.shapes[name], dtype=np.int64)) * np.dtype(self.dtypes[name]).itemsize

    @property
    def total_bytes(self):
        return sum(self.nbytes(n) for n in self.shapes)

    @property
    def key(self):
        return tuple(sorted(self.shapes.items()))


_FORMAT_PRECISIONS = (("FP32", "fp32"), ("Float", "fp32"), ("FP16", "fp16"), ("Half", "fp16"), ("BF16", "bf16"),
                      ("Int8", "int8"), ("INT8", "int8"), ("FP8", "fp8"), ("Int32", "int"), ("Int64", "int"),
                      ("Bool", "int"))


def format_precision(text: str) -> str:
    """The precision a ``Format/Datatype`` string of the engine inspector names (``"Row major linear FP32"`` ->
    ``fp32``; ``int`` for integer and bool tensors; ``unknown`` otherwise)."""
    for key, precision in _FORMAT_PRECISIONS:
        if re.search(rf"\b{key}\b", text):
            return precision
    return "unknown"


# ---------------------------------------------------------------- the runner

class TensorRTRunner(Runner):
    """Runs one engine. Device and pinned host buffers are allocated once per input-shape set.

    Before the first run of a shape set, the output shapes TensorRT computes
    (``get_tensor_shape`` once the input shapes are set) must equal those the
    manifest implies, so no buffer is ever smaller than what TensorRT writes.
    Outputs are copied out of the pinned buffers: what ``run`` returns stays
    valid after the next run and after ``close()``.
    """

    backend = "tensorrt"

    def __init__(self, spec, engine, gpu=0, cuda_graph=False):
        super().__init__(spec)
        self.trt, self.cudart = import_tensorrt(), import_cudart()
        self.profile = engine.profile
        self.cuda_graph = cuda_graph
        self.gpu = gpu
        self._plans = {}
        self.stream = None
        try:
            plan = engine.path.read_bytes()
        except OSError as e:
            raise EngineIncompatible(f"cannot read the engine {engine.path}: {e.strerror}; {rebuild_hint(engine)}") \
                from None
        self.runtime, self.engine = deserialize_plan(self.trt, plan, engine, str(engine.path))
        self.context = _trt_create_execution_context(self.engine, engine)
        self.stream = _cuda_stream_create(self.cudart)

    @property
    def device(self):
        return f"cuda:{self.gpu}"

    def _describe(self):
        return _trt_io_tensors(self.trt, self.engine)

    def _allocation(self, plan):
        alloc = self._plans.get(plan.key)
        if alloc is None:
            self._check_output_shapes(plan)
            alloc = {"device": {}, "host": {}, "graph": None}
            self._plans[plan.key] = alloc
            for name in plan.shapes:
                n = max(plan.nbytes(name), 1)
                alloc["device"][name] = _cuda_malloc(self.cudart, n)
                alloc["host"][name] = _cuda_malloc_host(self.cudart, n, plan.shapes[name], plan.dtypes[name])
        return alloc

    def _check_output_shapes(self, plan):
        """The engine's own output shapes for the input shapes just set must be the manifest's (Polygraphy does
        the same): a larger one would make TensorRT write past the buffer."""
        for t in self.spec.outputs:
            got = tuple(int(d) for d in _trt_get_tensor_shape(self.context, t.name))
            if got != plan.shapes[t.name]:
                raise BackendRuntimeError(
                    f"{self.spec.name}: for inputs {[list(plan.shapes[i.name]) for i in self.spec.inputs]} the engine "
                    f"computes output '{t.name}' as {list(got)}, the manifest implies {list(plan.shapes[t.name])}; "
                    f"the engine does not belong to this graph: rebuild it (pslg build)")

    def _run(self, feeds):
        check_profile(feeds, self.profile)
        plan = BufferPlan.for_feeds(self.spec, feeds)
        inputs = [t.name for t in self.spec.inputs]
        outputs = [t.name for t in self.spec.outputs]
        for name in inputs:
            _trt_set_input_shape(self.context, name, plan.shapes[name])
        alloc = self._allocation(plan)
        for name in inputs:
            np.copyto(alloc["host"][name], feeds[name])
        for name in inputs + outputs:
            _trt_set_tensor_address(self.context, name, alloc["device"][name])
        for name in inputs:
            _cuda_memcpy_async(self.cudart, alloc["device"][name], alloc["host"][name], "h2d", self.stream)
        self._enqueue(alloc)
        for name in outputs:
            _cuda_memcpy_async(self.cudart, alloc["host"][name], alloc["device"][name], "d2h", self.stream)
        _cuda_stream_synchronize(self.cudart, self.stream)
        return {name: alloc["host"][name].copy() for name in outputs}

    def _enqueue(self, alloc):
        """Run the engine: replay this shape set's CUDA graph (captured on first use), else enqueue directly."""
        if self.cuda_graph and alloc["graph"] is None:
            try:
                alloc["graph"] = _cuda_capture_graph(self.cudart, self.stream,
                                                     lambda: _trt_execute_async_v3(self.context, self.stream))
            except BackendRuntimeError as e:
                alloc["graph"] = False  # do not try again for this shape set
                log.warning("%s: CUDA graph capture failed (%s); enqueueing without a graph", self.spec.name,
                            e.message)
        if alloc["graph"]:
            _cuda_graph_launch(self.cudart, alloc["graph"], self.stream)
        else:
            _trt_execute_async_v3(self.context, self.stream)

    def close(self):
        """Free every buffer, graph exec and the stream; CUDA errors while freeing are raised (after freeing the
        rest), not ignored."""
        if self.closed:
            return
        self.closed = True
        plans, self._plans = self._plans, {}
        errors = []

        def free(result):
            try:
                _cuda_check(result)
            except BackendRuntimeError as e:
                errors.append(e.message)
        for alloc in plans.values():
            if alloc["graph"]:
                free(self.cudart.cudaGraphExecDestroy(alloc["graph"]))
            for ptr in alloc["device"].values():
                free(self.cudart.cudaFree(ptr))
            for arr in alloc["host"].values():
                free(self.cudart.cudaFreeHost(arr.ctypes.data))
        self.context = self.engine = self.runtime = None
        if self.stream is not None:
            free(self.cudart.cudaStreamDestroy(self.stream))
        if errors:
            raise BackendRuntimeError(f"{self.spec.name}: freeing CUDA resources failed: {'; '.join(errors)}")


def device_info(trt=None, cudart=None, device=0):
    """TensorRT version and the name / compute capability of GPU ``device``."""
    trt, cudart = trt or import_tensorrt(), cudart or import_cudart()
    props = _cuda_get_device_properties(cudart, device)
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return DeviceInfo(trt.__version__, name.strip("\x00 "), f"{props.major}.{props.minor}")


def open_engine(spec, engine, options):
    """Check ``engine`` (the EngineSpec built from ``spec``) against this device, then load it."""
    trt, cudart = import_tensorrt(), import_cudart()
    if engine is None:
        raise EngineIncompatible(f"model set {spec.path.parent} has no TensorRT engine for {spec.name}: "
                                 f"run 'pslg build --models {spec.path.parent}' on this device")
    # modelset.open verified the graph against its recorded hash: compare that, do not hash the file again
    check_compatible(engine, device_info(trt, cudart, options.gpu_index), spec.sha256)
    _cuda_set_device(cudart, options.gpu_index)
    return TensorRTRunner(spec, engine, options.gpu_index, cuda_graph=options.cuda_graph)


# ---------------------------------------------------------------- thin wrappers around TensorRT and CUDA

def deserialize_plan(trt, plan, engine, what):
    """``(runtime, ICudaEngine)`` of the serialized ``plan`` that the EngineSpec ``engine`` describes (its file
    need not be written yet); EngineIncompatible when TensorRT refuses it.

    Python API > Core > Runtime: ``deserialize_cuda_engine`` returns None on failure (the reason goes to the
    logger). Developer guide "Version Compatibility": ``engine_host_code_allowed`` only for version-compatible
    plans that embed the lean runtime; plans built without it run through ``load_runtime(lean library)``.
    "Working with DLA": ``IRuntime.DLA_core`` is set before deserializing, or the engine runs on core 0.
    """
    hint = f"rebuild it: {rebuild_hint(engine)}"
    try:
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    except (TypeError, RuntimeError) as e:  # pybind11: createInferRuntime returned nullptr (no usable CUDA)
        raise BackendUnavailable(f"TensorRT could not create a runtime ({e}); check the NVIDIA driver and CUDA "
                                 f"installation (nvidia-smi, or tegrastats on Jetson)") from None
    if engine.version_compatible and not engine.lean_runtime_embedded:
        library = lean_library(trt)
        runtime = runtime.load_runtime(str(library))
        if runtime is None:
            raise EngineIncompatible(f"TensorRT could not load the lean runtime {library} for {what}")
    elif engine.version_compatible:
        runtime.engine_host_code_allowed = True
    if engine.dla_core is not None:
        if not 0 <= engine.dla_core < runtime.num_DLA_cores:
            raise EngineIncompatible(f"{what} was built for DLA core {engine.dla_core}; this device has "
                                     f"{runtime.num_DLA_cores} DLA cores; {hint}")
        runtime.DLA_core = int(engine.dla_core)
    cuda_engine = runtime.deserialize_cuda_engine(plan)
    if cuda_engine is None:
        raise EngineIncompatible(f"TensorRT could not deserialize {what} (corrupt, or built by another version; "
                                 f"see the TensorRT log above); {hint}")
    return runtime, cuda_engine


def engine_information(trt, cuda_engine) -> str:
    """The engine inspector's JSON of every layer (names, types and, for plans built with detailed profiling
    verbosity, each input/output's ``Format/Datatype``)."""
    # Python API > Core > ICudaEngine.create_engine_inspector, EngineInspector.get_engine_information
    return cuda_engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)


def _trt_create_execution_context(cuda_engine, engine):
    # Python API > Core > ICudaEngine.create_execution_context: None when device memory runs out
    context = cuda_engine.create_execution_context()
    if context is None:
        raise BackendRuntimeError(f"TensorRT could not create an execution context for {engine.path.name} "
                                  f"(out of GPU memory?)")
    return context


def _trt_io_tensors(trt, engine):
    # Python API > Core > ICudaEngine: num_io_tensors, get_tensor_name/mode/dtype/shape (TensorRT 10 I/O API)
    inputs, outputs = [], []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name
        shape = tuple(d if d >= 0 else "?" for d in engine.get_tensor_shape(name))
        spec = TensorSpec(name, dtype, shape)
        (inputs if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append(spec)
    return inputs, outputs


def _trt_set_input_shape(context, name, shape):
    # Python API > Core > IExecutionContext.set_input_shape (dynamic shapes, developer guide "Dynamic Shapes")
    if not context.set_input_shape(name, tuple(shape)):
        raise ProfileError(f"TensorRT refused shape {list(shape)} for input '{name}'")


def _trt_get_tensor_shape(context, name):
    # Python API > Core > IExecutionContext.get_tensor_shape: output shapes once every input shape is set
    return context.get_tensor_shape(name)


def _trt_set_tensor_address(context, name, pointer):
    # Python API > Core > IExecutionContext.set_tensor_address: False for an unknown name or a bad address
    if not context.set_tensor_address(name, int(pointer)):
        raise BackendRuntimeError(f"TensorRT refused the device address of tensor '{name}'")


def _trt_execute_async_v3(context, stream):
    # Python API > Core > IExecutionContext.execute_async_v3
    if not context.execute_async_v3(int(stream)):
        raise BackendRuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log above)")


def _cuda_check(result):
    """The value(s) of a cuda-python call, or BackendRuntimeError naming the CUDA error."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        name = getattr(err, "name", str(err))
        hint = (": the NVIDIA driver is older than the CUDA version of cuda-python; with CUDA 12 drivers "
                "(JetPack 6) install 'cuda-python>=12.6,<13'" if int(err) == _INSUFFICIENT_DRIVER else "")
        raise BackendRuntimeError(f"CUDA error {int(err)} ({name}){hint}")
    return rest[0] if len(rest) == 1 else rest


def _cuda_stream_create(cudart):
    # cuda-python runtime API: cudaStreamCreate()
    return _cuda_check(cudart.cudaStreamCreate())


def _cuda_set_device(cudart, index):
    # cuda-python runtime API: cudaSetDevice(int device)
    _cuda_check(cudart.cudaSetDevice(index))


def _cuda_get_device_properties(cudart, index):
    # cuda-python runtime API: cudaGetDeviceProperties(int device)
    return _cuda_check(cudart.cudaGetDeviceProperties(index))


def _cuda_malloc(cudart, nbytes):
    # cuda-python runtime API: cudaMalloc(size_t size)
    return _cuda_check(cudart.cudaMalloc(nbytes))


def _cuda_malloc_host(cudart, nbytes, shape, dtype):
    # cuda-python runtime API: cudaMallocHost(size_t size) (pinned memory), viewed as a numpy array
    ptr = _cuda_check(cudart.cudaMallocHost(nbytes))
    buf = (ctypes.c_byte * nbytes).from_address(int(ptr))
    return np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape, dtype=np.int64))).reshape(shape)


def _cuda_memcpy_async(cudart, dst, src, direction, stream):
    # cuda-python runtime API: cudaMemcpyAsync(dst, src, size_t count, kind: cudaMemcpyKind, stream)
    kind = (cudart.cudaMemcpyKind.cudaMemcpyHostToDevice if direction == "h2d"
            else cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost)
    dst_ptr = dst.ctypes.data if isinstance(dst, np.ndarray) else int(dst)
    src_ptr = src.ctypes.data if isinstance(src, np.ndarray) else int(src)
    nbytes = (src if isinstance(src, np.ndarray) else dst).nbytes
    _cuda_check(cudart.cudaMemcpyAsync(dst_ptr, src_ptr, nbytes, kind, stream))


def _cuda_stream_synchronize(cudart, stream):
    # cuda-python runtime API: cudaStreamSynchronize(stream)
    _cuda_check(cudart.cudaStreamSynchronize(stream))


def _cuda_capture_graph(cudart, stream, enqueue):
    """Capture ``enqueue`` on ``stream`` into an instantiated graph exec (the graph itself is destroyed).

    TensorRT developer guide "CUDA Graphs" and trtexec: one enqueue before capturing (TensorRT may allocate
    or set up on the first run), then cudaStreamBeginCapture(stream, mode) in thread-local mode, so another
    thread's CUDA calls do not invalidate the capture, cudaStreamEndCapture(stream) and
    cudaGraphInstantiate(graph, flags=0) (the cuda-python 12.x and 13.x signature). A failure anywhere ends
    the capture and raises BackendRuntimeError; the caller falls back to plain enqueues.
    """
    enqueue()
    _cuda_check(cudart.cudaStreamSynchronize(stream))
    _cuda_check(cudart.cudaStreamBeginCapture(
        stream, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal))
    try:
        enqueue()
    finally:
        graph = _cuda_check(cudart.cudaStreamEndCapture(stream))
    try:
        return _cuda_check(cudart.cudaGraphInstantiate(graph, 0))
    finally:
        _cuda_check(cudart.cudaGraphDestroy(graph))


def _cuda_graph_launch(cudart, graph_exec, stream):
    # cuda-python runtime API: cudaGraphLaunch(graphExec, stream)
    _cuda_check(cudart.cudaGraphLaunch(graph_exec, stream))
