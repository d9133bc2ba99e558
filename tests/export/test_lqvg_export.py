"""``pslg export lqvg``: the 1024 px model set exports and runs; bad input stops it before anything is written."""
import re

import numpy as np
import pytest
import torch

from pslg.export.lqvg.export import TOLERANCES
from pslg.runtime import RunnerOptions, cli, modelset
from pslg.runtime.errors import CheckpointError, ParameterError, TokenizerError
from pslg.runtime.grounding import CAPTION_RULE, Grounder
from pslg.runtime.image import load_image
from tests import lqvg_support as support


@pytest.mark.slow
def test_export_at_1024_and_run(lqvg_small):
    models = modelset.open(lqvg_small)
    meta = models.component("lqvg")
    assert (meta.image_size, meta.max_tokens, meta.text_layers) == (1024, 12, 1)
    assert meta.provenance.random_weights and meta.provenance.weights == {"random": True, "seed": 3}
    assert meta.caption_rule == CAPTION_RULE and meta.provenance.versions["torch"] and meta.provenance.command
    assert "onnxslim" not in meta.provenance.exporter          # exported with --no-simplify
    assert meta.eos_id == 2 and meta.letterbox.interpolation == "area"
    for graph, diffs in meta.provenance.parity.items():
        assert all(d <= TOLERANCES[k] for k, d in diffs.items()), graph
    text, grounding = models.graph("lqvg_text"), models.graph("lqvg_grounding")
    assert [t.shape for t in text.inputs] == [(1, "tokens"), (1, "tokens")]
    assert grounding.inputs[0].shape == (1, 3, 1024, 1024)
    assert [t.shape for t in grounding.outputs] == [(1, 10), (1, 10, 4)]
    assert models.file("tokenizer").name == "tokenizer.json"
    assert any("RANDOM weights" in w for w in models.warnings)
    with Grounder(models, RunnerOptions(device="cpu")) as grounder:
        result = grounder.locate(load_image(support.DATA / "marina.png"), "two ships docked near the bridge")
    assert result.logits.shape == (10,) and np.isfinite(result.box).all()
    assert any("RANDOM weights" in w for w in result.warnings)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    sam = {"image_encoder.pos_embed": torch.zeros(1, 64, 64, 768),
           "image_encoder.blocks.0.norm1.weight": torch.ones(768)}
    torch.save(sam, root / "sam_vit_b.pth")
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, root / "random.pth")
    return root


@pytest.mark.parametrize("args, error, message", [
    (["--random-weights", "--image-size", "900"], ParameterError, "image size 900 is not supported"),
    (["--random-weights", "--max-tokens", "600"], ParameterError, "max tokens must be 2..512"),
    (["--checkpoint", "{ckpt}/random.pth", "--text-layers", "2"], ParameterError, "test configuration"),
    (["--checkpoint", "{ckpt}/sam_vit_b.pth"], CheckpointError, "not an LQVG checkpoint (it is a SAM checkpoint)"),
    (["--checkpoint", "{ckpt}/random.pth"], CheckpointError, "not an LQVG checkpoint"),
    (["--checkpoint", "{ckpt}/absent.pth"], CheckpointError, "does not exist"),
    (["--random-weights", "--tokenizer", "{ckpt}"], TokenizerError, "holds neither tokenizer.json"),
    (["--random-weights", "--tokenizer", "{ckpt}/absent"], TokenizerError, "does not exist"),
])
def test_bad_input_is_refused_before_anything_is_written(tmp_path, checkpoints, capsys, args, error, message,
                                                         tokenizer_dir):
    out = tmp_path / "set"
    argv = [a.format(ckpt=checkpoints) for a in args]
    if "--tokenizer" not in argv:
        argv += ["--tokenizer", str(tokenizer_dir)]
    assert cli.main(["export", "lqvg", *argv, "--out", str(out)]) == error.code
    assert f"pslg export: error: {error.__name__}" in capsys.readouterr().err
    with pytest.raises(error, match=re.escape(message)):
        support.export_cli(*argv, "--out", out)
    assert not out.exists()
