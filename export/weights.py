"""Checkpoint helpers both exporters share: strict loading that names the keys, and file records."""
from pathlib import Path

from pslg.runtime import modelset
from pslg.runtime.errors import CheckpointError


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
