"""Inference backends behind one small interface (see :mod:`.base`).

Callers never import a backend module: they ask the model set
(``ModelSet.open_runner``), which calls :func:`open_runner` here.
"""
import importlib.util

from ..errors import BackendError, BackendUnavailable, ParameterError

NAMES = ("onnxruntime", "tensorrt")


def tensorrt_available():
    """True when a TensorRT Python package (full or lean) is importable."""
    return any(importlib.util.find_spec(m) is not None for m in ("tensorrt", "tensorrt_lean"))


def choose(modelset, graph, backend):
    """The backend that will run ``graph``: ``auto`` prefers a TensorRT engine that loads."""
    if backend not in NAMES + ("auto",):
        raise ParameterError(f"unknown backend {backend!r}; choose one of auto, {', '.join(NAMES)}")
    if backend == "auto":
        return "tensorrt" if modelset.engine(graph) and tensorrt_available() else "onnxruntime"
    return backend


def open_runner(modelset, spec, backend="auto", device="auto", **options):
    """Open the runner for one graph of a model set.

    ``auto`` takes the TensorRT engine when one is listed and loads on this
    device, and otherwise ONNX Runtime (saying why in a warning).
    """
    if choose(modelset, spec.name, backend) == "tensorrt":
        from .tensorrt import open_tensorrt_runner, warn_fallback
        try:
            return open_tensorrt_runner(modelset, spec, device=device, **options)
        except BackendError as e:
            if backend != "auto":
                raise
            warn_fallback(spec.name, e)
        device = "auto" if str(device).startswith("cuda") else device
    if importlib.util.find_spec("onnxruntime") is None:
        raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)")
    from .onnxruntime import OrtRunner
    return OrtRunner(spec, device=device, **options)
