"""Strict, safe loading of official LQVG checkpoints into our model (spec: lqvg_state_dict.tsv)."""
import argparse

import pytest
import torch

from pslg.export.lqvg.checkpoint import load_checkpoint_state, read_checkpoint
from pslg.export.lqvg.model import LQVG, Config
from pslg.runtime.errors import CheckpointError
from tests import lqvg_support as support
from tests.fixtures.lqvg.lqvg_weights import read_spec

SPEC = read_spec(support.SPEC)
POSITION_IDS = "text_encoder.embeddings.position_ids"


@pytest.fixture(scope="module")
def model():
    return LQVG(Config(800)).eval()


@pytest.fixture(scope="module")
def spec_state():
    """Exactly the spec's keys and shapes, filled with 0.5; alias keys share their twin's tensor."""
    state = {}
    for key, dtype, shape, alias in SPEC:
        state[key] = state[alias] if alias else torch.full(shape, 0.5, dtype=getattr(torch, dtype))
    return state


def test_our_state_dict_is_the_spec(model):
    state = model.state_dict()
    ours = {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()}
    assert ours == {k: (s, d) for k, d, s, _ in SPEC}
    assert sum(p.numel() for p in model.parameters()) == 166_376_918
    for key, _, _, alias in SPEC:
        if alias:
            assert state[key].data_ptr() == state[alias].data_ptr(), key


def test_spec_state_dict_loads_strictly(model, spec_state):
    extra = {POSITION_IDS: torch.arange(514)[None], "backbone.0.body.total_ops": torch.zeros(1)}
    load_checkpoint_state(model, {**spec_state, **extra})
    assert torch.all(model.transformer.level_embed == 0.5)
    assert torch.all(model.text_encoder.embeddings.word_embeddings.weight == 0.5)


def test_legacy_pickle_checkpoint_loads(model, spec_state, tmp_path):
    path = support.save_legacy_checkpoint({**spec_state, POSITION_IDS: torch.arange(514)[None]}, tmp_path / "l.pth")
    with open(path, "rb") as f:
        assert f.read(2) != b"PK", "expected the legacy (non-zip) format"
    state = read_checkpoint(path)
    assert POSITION_IDS in state
    load_checkpoint_state(model, state, "legacy checkpoint")
    assert torch.all(model.query_embed.weight == 0.5)


@pytest.mark.parametrize("change, named", [
    (lambda s: s.pop("transformer.level_embed"), "transformer.level_embed"),
    (lambda s: s.setdefault("transformer.extra_head.weight", torch.zeros(2)), "transformer.extra_head.weight"),
    (lambda s: s.__setitem__("query_embed.weight", torch.zeros(300, 256)), "query_embed.weight [300, 256]"),
    (lambda s: s.__setitem__("text_encoder.embeddings.position_embeddings.weight", torch.zeros(512, 768)),
     "text_encoder.embeddings.position_embeddings.weight [512, 768]"),
])
def test_missing_extra_or_misshaped_key_is_refused(model, spec_state, change, named):
    state = dict(spec_state)
    change(state)
    with pytest.raises(CheckpointError, match="does not fit LQVG") as err:
        load_checkpoint_state(model, state)
    assert named in str(err.value)


def test_alias_keys(model, spec_state):
    one_copy = {k: v for k, v in spec_state.items() if not k.startswith("transformer.decoder.bbox_embed.")}
    load_checkpoint_state(model, one_copy)
    differ = dict(spec_state)
    differ["bbox_embed.1.layers.0.bias"] = torch.zeros(256)
    with pytest.raises(CheckpointError, match="bbox_embed.1.layers.0.bias"):
        load_checkpoint_state(model, differ)


@pytest.mark.parametrize("state, message", [
    ({"image_encoder.pos_embed": torch.zeros(1, 64, 64, 768), "mask_decoder.iou_token.weight": torch.zeros(1, 256)},
     "not an LQVG checkpoint (it is a SAM checkpoint)"),
    ({"weight": torch.zeros(3), "bias": torch.zeros(3)}, "not an LQVG checkpoint"),
])
def test_other_models_are_refused(tmp_path, state, message):
    path = tmp_path / "other.pth"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_checkpoint(path)


class Payload:
    """Stands for any object a malicious pickle could carry."""


def test_unsafe_or_broken_files_are_refused(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"model": {"transformer.level_embed": torch.zeros(4, 256)}, "args": Payload()}, evil,
               _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="refused rather than executed"):
        read_checkpoint(evil)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"\x80\x02not a pickle")
    with pytest.raises(CheckpointError, match="not a loadable PyTorch checkpoint"):
        read_checkpoint(broken)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pth")
    no_tensors = tmp_path / "args_only.pth"
    torch.save({"args": argparse.Namespace(lr=1e-4)}, no_tensors)
    with pytest.raises(CheckpointError, match="holds no tensor state dict"):
        read_checkpoint(no_tensors)
