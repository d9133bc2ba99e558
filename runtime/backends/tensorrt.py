"""TensorRT backend: one engine per graph, run on one CUDA stream with buffers kept per shape.

Everything that is logic (profile checks, compatibility decisions, buffer
plans) is plain Python here and tested without TensorRT. The calls into
TensorRT and CUDA are the few ``_trt_*`` / ``_cuda_*`` functions at the end,
each named after the API it wraps and citing the documentation section it
follows (TensorRT 10 Python API; cuda-python's ``cuda.bindings.runtime``).
"""
import ctypes
import importlib
from dataclasses import dataclass

import numpy as np

from ..errors import BackendRuntimeError, BackendUnavailable, EngineIncompatible, ProfileError
from ..specs import TensorSpec
from .base import Runner

INSTALL_HINT = ("TensorRT is not installed. On Jetson it comes with JetPack (python3-libnvinfer, or the "
                "'nvidia-tensorrt' apt package); on a desktop GPU install the 'tensorrt' and 'cuda-python' "
                "wheels from NVIDIA's Python package index (pip install 'pslg-sam[tensorrt]' with that index "
                "configured). Then build engines on the target device with 'pslg build --models DIR'.")


def _import_first(names, error):
    for name in names:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise error


def import_tensorrt():
    """The full ``tensorrt`` module, else ``tensorrt_lean`` (runtime only); BackendUnavailable if neither."""
    return _import_first(("tensorrt", "tensorrt_lean"), BackendUnavailable(INSTALL_HINT))


def import_cudart():
    """cuda-python's runtime bindings (new and old module layouts)."""
    return _import_first(("cuda.bindings.runtime", "cuda.cudart"),
                         BackendUnavailable("the TensorRT backend needs cuda-python: pip install cuda-python"))


# ---------------------------------------------------------------- logic (no TensorRT needed)

@dataclass(frozen=True)
class DeviceInfo:
    """What an engine is tied to: TensorRT version and the GPU it was built on."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str


def compatibility_problems(engine, device, onnx_sha256):
    """Why ``engine`` (an EngineSpec) cannot run here (empty list: it can).

    Plain engines need the same TensorRT version; version-compatible ones a
    runtime of the same major version, not older than the builder. Both need
    the same compute capability and must come from the graph now in the set.
    """
    problems = []
    built, here = engine.tensorrt_version, device.tensorrt_version
    if engine.version_compatible:
        b, h = _version_tuple(built), _version_tuple(here)
        if b[0] != h[0] or h < b:
            problems.append(f"version-compatible engine from TensorRT {built} needs a TensorRT {b[0]}.x runtime "
                            f">= {built}, this is {here}")
    elif built != here:
        problems.append(f"built with TensorRT {built}, this is TensorRT {here}")
    if engine.compute_capability != device.compute_capability:
        problems.append(f"built for {engine.gpu_name} (compute capability {engine.compute_capability}), "
                        f"this GPU is {device.gpu_name} ({device.compute_capability})")
    if engine.onnx_sha256 != onnx_sha256:
        problems.append("the ONNX graph changed since the engine was built (sha256 differs)")
    return problems


def _version_tuple(version):
    return tuple(int(p) for p in version.split(".")[:3] if p.isdigit())


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


# ---------------------------------------------------------------- the runner

class TensorRTRunner(Runner):
    """Runs one engine. Device and pinned host buffers are allocated once per input-shape set."""

    backend = "tensorrt"

    def __init__(self, spec, engine, gpu=0, cuda_graph=False):
        super().__init__(spec)
        self.trt, self.cudart = import_tensorrt(), import_cudart()
        self.profile = engine.profile
        self.cuda_graph = cuda_graph
        self.gpu = gpu
        self._plans = {}
        self.engine = _trt_deserialize_cuda_engine(self.trt, engine)
        self.context = _trt_create_execution_context(self.engine)
        self.stream = _cuda_stream_create(self.cudart)

    @property
    def device(self):
        return f"cuda:{self.gpu}"

    def _describe(self):
        return _trt_io_tensors(self.trt, self.engine)

    def _allocation(self, plan):
        alloc = self._plans.get(plan.key)
        if alloc is None:
            alloc = {"device": {}, "host": {}, "graph": None}
            for name in plan.shapes:
                n = max(plan.nbytes(name), 1)
                alloc["device"][name] = _cuda_malloc(self.cudart, n)
                alloc["host"][name] = _cuda_malloc_host(self.cudart, n, plan.shapes[name], plan.dtypes[name])
            self._plans[plan.key] = alloc
        return alloc

    def _run(self, feeds):
        check_profile(feeds, self.profile)
        plan = BufferPlan.for_feeds(self.spec, feeds)
        alloc = self._allocation(plan)
        inputs = [t.name for t in self.spec.inputs]
        outputs = [t.name for t in self.spec.outputs]
        for name in inputs:
            np.copyto(alloc["host"][name], feeds[name])
        for name in inputs:
            _trt_set_input_shape(self.context, name, plan.shapes[name])
        for name in inputs + outputs:
            _trt_set_tensor_address(self.context, name, alloc["device"][name])
        for name in inputs:
            _cuda_memcpy_async(self.cudart, alloc["device"][name], alloc["host"][name], "h2d", self.stream)
        if self.cuda_graph:
            if alloc["graph"] is None:
                alloc["graph"] = _cuda_capture_graph(self.cudart, self.stream,
                                                     lambda: _trt_execute_async_v3(self.context, self.stream))
            _cuda_graph_launch(self.cudart, alloc["graph"], self.stream)
        else:
            _trt_execute_async_v3(self.context, self.stream)
        for name in outputs:
            _cuda_memcpy_async(self.cudart, alloc["host"][name], alloc["device"][name], "d2h", self.stream)
        _cuda_stream_synchronize(self.cudart, self.stream)
        return {name: alloc["host"][name] for name in outputs}

    def close(self):
        """Free every buffer, graph exec and the stream; CUDA errors while freeing are raised, not ignored."""
        if not self.closed:
            self.closed = True
            plans, self._plans = self._plans, {}
            for alloc in plans.values():
                if alloc["graph"] is not None:
                    _cuda_check(self.cudart.cudaGraphExecDestroy(alloc["graph"]))
                for ptr in alloc["device"].values():
                    _cuda_check(self.cudart.cudaFree(ptr))
                for arr in alloc["host"].values():
                    _cuda_check(self.cudart.cudaFreeHost(arr.ctypes.data))
            self.context = self.engine = None
            _cuda_check(self.cudart.cudaStreamDestroy(self.stream))


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

def _trt_deserialize_cuda_engine(trt, engine):
    # Python API > Core > Runtime: IRuntime.deserialize_cuda_engine; developer guide "Version Compatibility":
    # engine_host_code_allowed is set only for version-compatible plans that embed the lean runtime.
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    if engine.lean_runtime_embedded:
        runtime.engine_host_code_allowed = True
    with open(engine.path, "rb") as f:
        plan = runtime.deserialize_cuda_engine(f.read())
    if plan is None:
        raise EngineIncompatible(f"TensorRT could not deserialize {engine.path} (corrupt, or built by another "
                                 f"version); rebuild it: {rebuild_hint(engine)}")
    return plan


def _trt_create_execution_context(engine):
    # Python API > Core > ICudaEngine.create_execution_context
    return engine.create_execution_context()


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


def _trt_set_tensor_address(context, name, pointer):
    # Python API > Core > IExecutionContext.set_tensor_address
    context.set_tensor_address(name, int(pointer))


def _trt_execute_async_v3(context, stream):
    # Python API > Core > IExecutionContext.execute_async_v3
    if not context.execute_async_v3(int(stream)):
        raise BackendRuntimeError("TensorRT execute_async_v3 failed")


def _cuda_check(result):
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise BackendRuntimeError(f"CUDA error {err}")
    return rest[0] if len(rest) == 1 else rest


def _cuda_stream_create(cudart):
    # cuda-python runtime API: cudaStreamCreate
    return _cuda_check(cudart.cudaStreamCreate())


def _cuda_set_device(cudart, index):
    # cuda-python runtime API: cudaSetDevice
    _cuda_check(cudart.cudaSetDevice(index))


def _cuda_get_device_properties(cudart, index):
    # cuda-python runtime API: cudaGetDeviceProperties
    return _cuda_check(cudart.cudaGetDeviceProperties(index))


def _cuda_malloc(cudart, nbytes):
    # cuda-python runtime API: cudaMalloc
    return _cuda_check(cudart.cudaMalloc(nbytes))


def _cuda_malloc_host(cudart, nbytes, shape, dtype):
    # cuda-python runtime API: cudaMallocHost (pinned memory), viewed as a numpy array
    ptr = _cuda_check(cudart.cudaMallocHost(nbytes))
    buf = (ctypes.c_byte * nbytes).from_address(int(ptr))
    return np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape, dtype=np.int64))).reshape(shape)


def _cuda_memcpy_async(cudart, dst, src, direction, stream):
    # cuda-python runtime API: cudaMemcpyAsync
    kind = (cudart.cudaMemcpyKind.cudaMemcpyHostToDevice if direction == "h2d"
            else cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost)
    dst_ptr = dst.ctypes.data if isinstance(dst, np.ndarray) else int(dst)
    src_ptr = src.ctypes.data if isinstance(src, np.ndarray) else int(src)
    nbytes = (src if isinstance(src, np.ndarray) else dst).nbytes
    _cuda_check(cudart.cudaMemcpyAsync(dst_ptr, src_ptr, nbytes, kind, stream))


def _cuda_stream_synchronize(cudart, stream):
    # cuda-python runtime API: cudaStreamSynchronize
    _cuda_check(cudart.cudaStreamSynchronize(stream))


def _cuda_capture_graph(cudart, stream, enqueue):
    # cuda-python runtime API: cudaStreamBeginCapture / cudaStreamEndCapture / cudaGraphInstantiate
    # (TensorRT developer guide "CUDA Graphs": capture execute_async_v3 after one warm-up run)
    enqueue()
    _cuda_check(cudart.cudaStreamSynchronize(stream))
    _cuda_check(cudart.cudaStreamBeginCapture(stream, cudart.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal))
    try:
        enqueue()
    finally:
        graph = _cuda_check(cudart.cudaStreamEndCapture(stream))
    try:
        return _cuda_check(cudart.cudaGraphInstantiate(graph, 0))
    finally:
        _cuda_check(cudart.cudaGraphDestroy(graph))


def _cuda_graph_launch(cudart, graph_exec, stream):
    # cuda-python runtime API: cudaGraphLaunch
    _cuda_check(cudart.cudaGraphLaunch(graph_exec, stream))

