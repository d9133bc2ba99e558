"""ONNX Runtime backend: one InferenceSession per graph, outputs in reused buffers."""
import numpy as np
import onnxruntime as ort

from ..errors import BackendRuntimeError, BackendUnavailable, ModelFileError
from ..specs import TensorSpec
from .base import RunnerOptions, Runner

_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
           "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(uint8)": "uint8",
           "tensor(int8)": "int8", "tensor(bool)": "bool"}


def select_providers(device, available=None):
    """Execution providers for a device name: ``auto``, ``cpu``, ``cuda[:N]`` or ``trt-ep[:N]``.

    ``auto`` takes CUDA when this onnxruntime has it, else the CPU. The TensorRT
    execution provider is only used when asked for: it builds engines on first run.
    """
    available = ort.get_available_providers() if available is None else available
    options = RunnerOptions(device=device)
    kind = options.kind
    if kind == "auto":
        kind = "cuda" if "CUDAExecutionProvider" in available else "cpu"
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    dev = {"device_id": options.gpu_index}
    wanted = {"cuda": ["CUDAExecutionProvider"],
              "trt-ep": ["TensorrtExecutionProvider", "CUDAExecutionProvider"]}[kind]
    missing = [p for p in wanted if p not in available]
    if missing:
        raise BackendUnavailable(
            f"device {device!r} needs {', '.join(missing)}, which this onnxruntime lacks (it has "
            f"{', '.join(available)}); install the GPU build in its own environment: pip install 'pslg-sam[gpu]'")
    return [(p, dict(dev)) for p in wanted] + ["CPUExecutionProvider"]


def graph_path(spec, providers):
    """The file to load: the graph's CPU variant when only the CPU runs it, else the portable graph."""
    return spec.cpu_path if spec.cpu_path is not None and providers == ["CPUExecutionProvider"] else spec.path


def session_options(threads=0):
    """The session options every graph of ours runs with (``threads``: intra-op threads, 0 for ONNX Runtime's
    default)."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    # The arena reuses its blocks from run to run, so large intermediates are not paged in afresh on every
    # run; the memory pattern would add one more block of the whole plan on top of them (SAM ViT-B's encoder:
    # peak RSS 3.7 GB after one run, 6.8 GB after two). Arena without pattern, measured on this 2-core CPU:
    # ViT-B 3.6 GB steady and 6.3 s a run, vs 3.8 GB and 7.2 s with neither; SAM 2.1 Hiera-S 0.67 vs 0.87 GB.
    opts.enable_cpu_mem_arena = True
    opts.enable_mem_pattern = False
    return opts


class OrtRunner(Runner):
    """Runs one ONNX graph; output buffers are kept per output shape and reused."""

    backend = "onnxruntime"

    def __init__(self, spec, device="auto", threads=0):
        super().__init__(spec)
        opts = session_options(threads)
        self.providers = select_providers(device)
        self.path = graph_path(spec, self.providers)
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=self.providers)
        except Exception as e:  # onnxruntime raises its own untyped exceptions for unreadable files
            raise ModelFileError(f"onnxruntime cannot load {self.path}: {e}") from None
        self._device = self.session.get_providers()[0]
        self._binding = self.session.io_binding()
        self._buffers = {}

    @property
    def device(self):
        return self._device

    def _describe(self):
        def specs(args):
            return [TensorSpec(a.name, _DTYPES.get(a.type, a.type),
                               tuple(d if isinstance(d, int) else (d or "?") for d in a.shape)) for a in args]
        return specs(self.session.get_inputs()), specs(self.session.get_outputs())

    def _buffer(self, spec, shape):
        key = (spec.name, shape)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = np.empty(shape, dtype=spec.dtype)
        return buf

    def _run(self, feeds):
        binding = self._binding
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(array))
        shapes = self.spec.output_shapes(feeds)
        out = {}
        for spec in self.spec.outputs:
            shape = shapes[spec.name]
            if shape is None:
                binding.bind_output(spec.name)
            else:
                out[spec.name] = buf = self._buffer(spec, shape)
                binding.bind_output(spec.name, "cpu", 0, buf.dtype, buf.shape, buf.ctypes.data)
        try:
            self.session.run_with_iobinding(binding)
        except Exception as e:
            raise BackendRuntimeError(f"onnxruntime failed on {self.spec.name}: {e}") from None
        if len(out) < len(self.spec.outputs):
            names = [o.name for o in self.session.get_outputs()]
            for name, value in zip(names, binding.copy_outputs_to_cpu()):
                out.setdefault(name, value)
        return out

    def close(self):
        if not self.closed:
            self._binding = self.session = None
            self._buffers.clear()
        super().close()
