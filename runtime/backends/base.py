"""The interface every inference backend implements, and the options every runner takes.

A runner owns one graph on one device. Callers hand it named numpy arrays and
get named numpy arrays back; nothing framework-specific crosses the boundary.
Returned arrays may be the runner's own reused buffers: they stay valid until
the next ``run`` on the same runner (copy what you keep).
"""
import re
from dataclasses import dataclass
from typing import Dict

import numpy as np

from ..errors import ClosedError, ParameterError
from ..specs import GraphSpec

BACKENDS = ("auto", "onnxruntime", "tensorrt")
DEVICE_KINDS = ("auto", "cpu", "cuda", "trt-ep")
_DEVICE = re.compile(r"^(auto|cpu|cuda|trt-ep)(?::(\d+))?$")


@dataclass(frozen=True)
class RunnerOptions:
    """Where and how graphs run; one object handed from ``Pipeline.open`` (or the CLI) to every runner.

    ``backend``: ``auto`` (a model set's TensorRT engine where one loads on
    this device, else ONNX Runtime, with a warning that says why),
    ``onnxruntime`` or ``tensorrt`` (never falls back). ``device``: ``auto``,
    ``cpu``, ``cuda[:N]`` or ``trt-ep[:N]`` (ONNX Runtime's TensorRT execution
    provider). ``threads``: ONNX Runtime intra-op threads, 0 = all cores.
    ``cuda_graph``: TensorRT runners replay each input shape's work as a
    captured CUDA graph.
    """

    backend: str = "auto"
    device: str = "auto"
    threads: int = 0
    cuda_graph: bool = False

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ParameterError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            raise ParameterError(f"device must be auto, cpu, cuda[:N] or trt-ep[:N], got {self.device!r}")
        if self.device.startswith("cpu:") or self.device.startswith("auto:"):
            raise ParameterError(f"device {self.device!r}: only cuda and trt-ep take an index")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or not 0 <= self.threads <= 1024:
            raise ParameterError(f"threads must be an integer 0..1024 (0: all cores), got {self.threads!r}")
        if not isinstance(self.cuda_graph, bool):
            raise ParameterError(f"cuda_graph must be True or False, got {self.cuda_graph!r}")
        if self.backend == "tensorrt" and self.kind in ("cpu", "trt-ep"):
            raise ParameterError(f"backend 'tensorrt' runs on a GPU: device {self.device!r} is for ONNX Runtime")

    @property
    def kind(self) -> str:
        """``auto``, ``cpu``, ``cuda`` or ``trt-ep``."""
        return _DEVICE.match(self.device).group(1)

    @property
    def gpu_index(self) -> int:
        """The GPU a device names (0 when it names none)."""
        index = _DEVICE.match(self.device).group(2)
        return int(index) if index else 0


class Runner:
    """Base class: input checks, lifecycle. Subclasses implement ``_run`` and ``_describe``."""

    backend = "?"

    def __init__(self, spec: GraphSpec):
        self.spec = spec
        self.closed = False

    @property
    def device(self) -> str:
        """Where the graph runs, in the backend's words."""
        return "?"

    def describe(self):
        """``(inputs, outputs)`` as TensorSpec lists, read from the loaded graph itself."""
        return self._describe()

    def run(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Run the graph on a dict of named numpy arrays; returns a dict of outputs."""
        if self.closed:
            raise ClosedError(f"{self.backend} runner for {self.spec.name} is closed")
        missing = [t.name for t in self.spec.inputs if t.name not in feeds]
        extra = sorted(set(feeds) - {t.name for t in self.spec.inputs})
        if missing or extra:
            raise ParameterError(f"{self.spec.name}: missing inputs {missing}, unknown inputs {extra}")
        for t in self.spec.inputs:
            t.check(feeds[t.name])
        return self._run(feeds)

    def close(self) -> None:
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

