"""Checkpoint files, read one way for every model family: safely, strictly, and recorded.

:func:`read_state_dict` reads a ``.pth``/``.pt`` file with
``torch.load(weights_only=True)`` and only ``argparse.Namespace`` allowlisted
(official training scripts pickle their arguments beside the weights), so a
file that pickles anything else is refused, not executed. It unwraps the
layouts the official releases use: a bare state dict (segment-anything,
MobileSAM), ``{"model": ...}`` (SAM 2, LQVG's ``main.py``), ``{"state_dict":
...}``, and a ``module.`` prefix (DataParallel).
"""
import argparse
import re
from pathlib import Path

import torch

from pslg.runtime import modelset
from pslg.runtime.errors import CheckpointError

WRAPPERS = ("model", "state_dict")


def read_state_dict(path, what="checkpoint"):
    """The tensor state dict in a checkpoint file; CheckpointError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types for corrupt files
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if refused:
            raise CheckpointError(f"{what} {path.name} pickles {refused.group(1)}, which is neither a tensor nor "
                                  f"the training arguments; the file is refused rather than executed") from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|$)", str(e), re.S)
        raise CheckpointError(f"{what} {path.name} is not a loadable PyTorch checkpoint (corrupt or truncated?): "
                              f"{detail.group(1) if detail else str(e).strip() or type(e).__name__}") from None
    for key in WRAPPERS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{what} {path.name} holds no tensor state dict (nor one under "
                              f"{' or '.join(repr(k) for k in WRAPPERS)})")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def load_strict(module, state, what, model_name):
    """Load ``state`` into ``module`` only if keys and shapes match exactly; the refusal names them."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {list(state[k].shape)} (expected {list(v.shape)})" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = [f"{name} ({len(keys)}): {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                 for name, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)) if keys]
        raise CheckpointError(f"{what} does not fit {model_name}: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)
    return module


def file_record(path):
    """The manifest's record of a weights file: its name and sha256."""
    return {"file": Path(path).name, "sha256": modelset.sha256(path)}
