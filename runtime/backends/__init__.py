"""Inference backends behind one small interface (see :mod:`.base`).

Callers never import a backend module: they call :func:`open_runner` with
what to run (a :class:`~pslg.runtime.specs.GraphSpec`, the
:class:`~pslg.runtime.specs.EngineSpec` built from it if any) and one
:class:`RunnerOptions`. Backend modules are imported only when used, so a
model set without engines never loads TensorRT or cuda-python.
"""
import importlib.util
import logging

from ..errors import BackendError, BackendUnavailable, GraphSignatureError, ParameterError
from ..specs import check_signature
from .base import BACKENDS, Runner, RunnerOptions

__all__ = ["BACKENDS", "Runner", "RunnerOptions", "open_runner"]

log = logging.getLogger(__name__)


def _checked(runner, spec):
    """The runner, once the graph it loaded matches the declared signature (closed and refused otherwise)."""
    try:
        check_signature(spec, runner.describe())
    except GraphSignatureError:
        runner.close()
        raise
    return runner


def _ort_runner(spec, options):
    if importlib.util.find_spec("onnxruntime") is None:
        raise BackendUnavailable("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)")
    from .onnxruntime import OrtRunner
    if options.backend == "auto" and options.kind in ("cuda", "trt-ep"):
        try:
            return OrtRunner(spec, options.device, options.threads)
        except BackendUnavailable as e:
            log.warning("%s: %s; running on the CPU", spec.name, e.message)
            return OrtRunner(spec, "cpu", options.threads)
    return OrtRunner(spec, options.device, options.threads)


def open_runner(spec, options=None, engine=None) -> Runner:
    """Open the runner for one graph and check its signature.

    ``auto`` takes ``engine`` (a TensorRT engine of ``spec``) when there is
    one and it loads on this device (the device named by ``options``, GPU 0
    for ``auto``), and otherwise ONNX Runtime on the same device, with a
    warning that says why. ``tensorrt`` never falls back.
    """
    options = RunnerOptions() if options is None else options
    if not isinstance(options, RunnerOptions):
        raise ParameterError(f"options must be a RunnerOptions, got {type(options).__name__} {options!r}")
    if options.backend == "tensorrt" or (options.backend == "auto" and engine is not None and options.kind != "cpu"):
        try:
            from .tensorrt import open_engine
            return _checked(open_engine(spec, engine, options), spec)
        except (BackendError, GraphSignatureError) as e:
            if options.backend == "tensorrt":
                raise
            log.warning("%s: TensorRT engine not used (%s); running on ONNX Runtime", spec.name, e.message)
    return _checked(_ort_runner(spec, options), spec)
