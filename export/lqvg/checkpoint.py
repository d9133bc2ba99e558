"""Official LQVG checkpoints: strict loading with the tolerances the official files need.

``main.py`` writes ``torch.save({'model': state_dict, 'optimizer', 'lr_scheduler',
'epoch', 'args': argparse.Namespace}, path, _use_new_zipfile_serialization=False)``;
:func:`~pslg.export.weights.read_state_dict` reads it safely.

Loading is strict: every key and shape of the official state dict must be
there, nothing else, with three tolerances the official files need:
``text_encoder.embeddings.position_ids`` (a buffer transformers < 4.31
saved), thop's ``total_ops`` / ``total_params`` artefacts (the official
loader ignores them too), and the box-refinement alias: ``bbox_embed.*`` and
``transformer.decoder.bbox_embed.*`` are one tensor, so either copy suffices
(both must agree when both are given).
"""
from pathlib import Path

import torch

from pslg.runtime.errors import CheckpointError

from ..weights import load_strict, read_state_dict

IGNORED_KEYS = ("text_encoder.embeddings.position_ids",)
IGNORED_SUFFIXES = ("total_ops", "total_params")
ALIAS_PREFIXES = ("bbox_embed.", "transformer.decoder.bbox_embed.")
#: Keys every LQVG state dict has; a dict with none of them is another model's.
SIGNATURE_KEYS = ("transformer.level_embed", "query_embed.weight", "text_encoder.embeddings.word_embeddings.weight",
                  "fusion_module.multihead_attn.in_proj_weight")


def read_checkpoint(path):
    """The LQVG state dict of a checkpoint file (``{'model': ...}`` or bare); another model's is refused."""
    state = read_state_dict(path)
    check_lqvg(state, Path(path).name)
    return state


def _resolve_aliases(state):
    first, second = ALIAS_PREFIXES
    for key in [k for k in state if k.startswith(first) or k.startswith(second)]:
        twin = second + key[len(first):] if key.startswith(first) else first + key[len(second):]
        if twin not in state:
            state[twin] = state[key]
        elif state[twin].shape == state[key].shape and not torch.equal(state[twin], state[key]):
            raise CheckpointError(f"'{key}' and '{twin}' must hold the same tensor (box-refinement alias) "
                                  f"but differ")


def check_lqvg(state, what):
    """Refuse the state dict of another model (SAM, a random dict) before anything is built."""
    if not any(k in state for k in SIGNATURE_KEYS):
        hint = " (it is a SAM checkpoint)" if any(k.startswith("image_encoder.") for k in state) else ""
        raise CheckpointError(f"{what} is not an LQVG checkpoint{hint}: it has none of {', '.join(SIGNATURE_KEYS)} "
                              f"(first keys: {', '.join(list(state)[:3])})")


def load_checkpoint_state(model, state, what="checkpoint"):
    """Load an official state dict into :class:`~.model.LQVG` strictly; refusals name the keys."""
    check_lqvg(state, what)
    state = {k: v for k, v in state.items() if k not in IGNORED_KEYS and not k.endswith(IGNORED_SUFFIXES)}
    _resolve_aliases(state)
    return load_strict(model, state, what, "LQVG")
