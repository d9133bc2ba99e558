"""pslg.runtime: the lean, torch-free side of PSLG-SAM (see ``Pipeline``).

Importing this package or a small module of it (``pslg.runtime.errors``) is
cheap: ``Pipeline`` and ``RunnerOptions`` load numba, OpenCV and the
inference backends on first use.
"""
from .errors import PslgError

__all__ = ["MODES", "Pipeline", "PslgError", "RunnerOptions"]

_LAZY = {"Pipeline": "pipeline", "MODES": "pipeline", "RunnerOptions": "backends"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
