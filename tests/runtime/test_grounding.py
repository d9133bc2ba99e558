"""runtime.grounding: letterbox rules, caption rule, the text cache, truncation, bad input, ``pslg locate``."""
import json
import subprocess
import sys
import types

import numpy as np
import pytest

from pslg.export.lqvg.export import LETTERBOX
from pslg.runtime import backends, cli, modelset
from pslg.runtime.errors import ImageError, ManifestError, ModelSetNotFound, TextError
from pslg.runtime.grounding import Grounder, Letterbox, caption, cxcywh_to_xyxy, letterbox_image, truncate
from pslg.runtime.image import load_image
from pslg.runtime.specs import ShapeRange
from tests.lqvg_support import DATA
from tests.runner_options import CPU

IMAGE = DATA / "osbs_029.png"


@pytest.mark.parametrize("height, width, size, resized, pads", [
    (400, 400, 800, (800, 800), (0, 0, 0, 0)),
    (301, 800, 800, (800, 301), (249, 250, 0, 0)),       # dh = 249.5: the extra row goes to the bottom
    (500, 375, 1024, (768, 1024), (0, 0, 128, 128)),     # upscaled by 2.048
    (1600, 5, 800, (2, 800), (0, 0, 399, 399)),          # round(2.5) = 2: Python rounds half to even
    (333, 1000, 800, (800, 266), (267, 267, 0, 0)),      # round(266.4) = 266, dh = 267.0
    (1000, 451, 800, (361, 800), (0, 0, 219, 220)),      # round(360.8) = 361, dw = 219.5
])
def test_letterbox_geometry(height, width, size, resized, pads):
    box = Letterbox.fit(height, width, size)
    assert (box.new_width, box.new_height) == resized
    assert (box.top, box.bottom, box.left, box.right) == pads
    out = letterbox_image(np.full((height, width, 3), 200, np.uint8), size, LETTERBOX)
    assert out.pixels.shape == (size, size, 3) and out.tensor.shape == (1, 3, size, size)
    if any(pads):
        corner = out.pixels[-1, -1]
        assert corner.tolist() == [124, 116, 104] == [round(c) for c in LETTERBOX.pad_color]
        assert out.tensor[0, :, -1, -1] == pytest.approx([0.00557, -0.00490, 0.00819], abs=1e-4)
    # the way back uses the float half-paddings, as the official evaluation does
    x1, y1, x2, y2 = box.to_original((box.dw, box.dh, box.dw + box.new_width, box.dh + box.new_height))
    assert (x1, y1) == pytest.approx((0, 0)) and (x2, y2) == pytest.approx((resized[0] / box.ratio,
                                                                           resized[1] / box.ratio))


def test_letterbox_refuses_degenerate_images():
    with pytest.raises(ImageError, match="too elongated"):
        letterbox_image(np.zeros((1, 5000, 3), np.uint8), 800, LETTERBOX)
    with pytest.raises(ImageError):
        letterbox_image(np.zeros((10, 10, 3), np.float32), 800, LETTERBOX)


def test_caption_rule_and_truncation():
    assert caption("  The  Ship\tON the LEFT \n") == "the ship on the left"
    for bad in ("", "  \t\n"):
        with pytest.raises(TextError, match="empty"):
            caption(bad)
    with pytest.raises(TextError, match="string"):
        caption(None)
    assert truncate([0, 5, 6, 2], 4, 2) == [0, 5, 6, 2]
    assert truncate([0, 5, 6, 7, 8, 2], 4, 2) == [0, 5, 6, 2]
    assert cxcywh_to_xyxy((0.5, 0.25, 0.2, 0.1), 800).tolist() == pytest.approx([320, 160, 480, 240])


def test_runtime_does_not_import_torch():
    code = ("import sys, pslg.runtime.grounding, pslg.runtime.commands.locate; "
            "bad = [m for m in ('torch', 'torchvision', 'transformers') if m in sys.modules]; "
            "sys.exit(f'imported {bad}' if bad else 0)")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def grounder(lqvg_fixture_set):
    with Grounder(lqvg_fixture_set, CPU) as g:
        yield g


@pytest.fixture(scope="module")
def prepared(grounder):
    return grounder.prepare_image(load_image(IMAGE))


@pytest.mark.slow
def test_same_phrase_runs_the_text_graph_once(grounder, prepared):
    runs = grounder.text_runs
    first = grounder.locate(prepared, "The white storage tank")
    second = grounder.locate(prepared, "  the WHITE storage   tank ")
    assert grounder.text_runs == runs + 1
    assert not first.text_cached and second.text_cached
    assert second.caption == first.caption == "the white storage tank"
    assert second.box == first.box and second.timings_ms["text"] == 0.0
    assert first.timings_ms["text"] > 0 and "letterbox" not in first.timings_ms
    x1, y1, x2, y2 = first.box
    assert np.isfinite(first.box).all() and x2 > x1 and y2 > y1
    assert first.logits.shape == (10,) and first.boxes_cxcywh.shape == (10, 4)
    assert first.query == int(np.argmax(first.logits))
    assert first.score == pytest.approx(1 / (1 + np.exp(-first.logits.max())))


@pytest.mark.slow
def test_text_cache_is_least_recently_used(lqvg_fixture_set):
    with Grounder(lqvg_fixture_set, CPU, cache_size=2) as g:
        for phrase in ("a ship", "a plane", "a ship", "a boat", "a ship"):  # "a plane" is dropped for "a boat"
            g.text_features(phrase)
        assert g.text_runs == 3
        g.text_features("a plane")
        assert g.text_runs == 4
        g.clear_cache()
        g.text_features("a plane")
        assert g.text_runs == 5


@pytest.mark.slow
def test_a_smaller_tensorrt_token_profile_caps_the_phrase(monkeypatch, lqvg_fixture_set, caplog):
    models = modelset.open(lqvg_fixture_set, verify=False)
    opened = backends.open_runner

    def as_tensorrt(spec, options, engine=None):
        runner = opened(spec, options)
        if engine is not None:
            runner.backend = "tensorrt"  # stands for a TensorRT runner (no GPU here); only the profile matters
        return runner

    engine = types.SimpleNamespace(profile={"attention_mask": ShapeRange((1, 1), (1, 8), (1, 8))})
    monkeypatch.setattr(backends, "open_runner", as_tensorrt)
    monkeypatch.setattr(models, "engine", lambda graph: engine if graph == "lqvg_text" else None)
    with Grounder(models, CPU) as g:
        assert g.max_tokens == 8
        assert g.text_features("the large white storage tank at the bottom left").input_ids.shape == (1, 8)
    assert "takes 8" in caplog.text


def test_unknown_manifest_rules_are_refused(lqvg_fixture_set, tmp_path):
    import shutil
    for field, value in (("caption_rule", "upper-case"), ("letterbox", dict(
            interpolation="lanczos", pad_color=[0, 0, 0], pixel_mean=[0, 0, 0], pixel_std=[1, 1, 1]))):
        copy = shutil.copytree(lqvg_fixture_set, tmp_path / field)
        m = json.loads((copy / "manifest.json").read_text())
        m["components"]["lqvg"][field] = value
        (copy / "manifest.json").write_text(json.dumps(m))
        with pytest.raises(ManifestError, match="upper-case" if field == "caption_rule" else "lanczos"):
            Grounder(copy, CPU)


@pytest.mark.slow
def test_long_phrase_is_truncated_with_a_warning(grounder, prepared):
    phrase = " ".join(["the large white storage tank at the bottom left of the image"] * 6)
    text = grounder.text_features(phrase)
    assert text.truncated and text.input_ids.shape == (1, grounder.max_tokens)
    assert text.input_ids[0, 0] == 0 and text.input_ids[0, -1] == 2
    result = grounder.locate(prepared, phrase)
    assert result.truncated and result.text_cached
    assert any("truncated" in w for w in result.warnings)
    assert json.loads(json.dumps(result.to_json()))["truncated"] is True


@pytest.mark.slow
def test_text_graph_takes_1_to_max_tokens(grounder):
    for length in (1, grounder.max_tokens):
        ids = np.r_[0, np.full(length - 1, 100)][:length]
        assert grounder.encode_tokens(ids).features.shape == (1, length, 256)


@pytest.mark.slow
def test_bad_inputs_are_named_errors(grounder, prepared):
    with pytest.raises(TextError, match="empty"):
        grounder.locate(prepared, "   ")
    with pytest.raises(TextError, match="this model set takes 1 to 40"):
        grounder.encode_tokens(np.zeros(41, np.int64))
    with pytest.raises(TextError, match=r"must lie in \[0, 50265\)"):
        grounder.encode_tokens([0, 50265, 2])
    with pytest.raises(TextError, match="at least one 1"):
        grounder.encode_tokens([0, 5, 2], [0, 0, 0])
    with pytest.raises(TextError, match="integers"):
        grounder.encode_tokens(np.array([0.0, 2.0]))
    small = letterbox_image(np.zeros((10, 10, 3), np.uint8), 1024, LETTERBOX)
    with pytest.raises(ImageError, match="takes 800 px"):
        grounder.ground(small, grounder.encode_tokens([0, 5, 2]))


@pytest.mark.slow
def test_cli_locate_prints_json_and_draws(tmp_path, capsys, lqvg_fixture_set):
    drawn = tmp_path / "box.png"
    code = cli.main(["locate", str(IMAGE), "--models", str(lqvg_fixture_set), "--text", "Storage TANK",
                     "--device", "cpu", "--draw", str(drawn)])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {"box", "score", "query", "phrase", "caption", "truncated", "warnings", "timings_ms"} <= set(out)
    assert out["phrase"] == "Storage TANK" and out["caption"] == "storage tank" and len(out["box"]) == 4
    image = load_image(IMAGE)
    picture = load_image(drawn)
    assert picture.shape == image.shape and not np.array_equal(picture, image)


@pytest.mark.slow
def test_cli_locate_errors_exit_with_their_code(tmp_path, capsys, lqvg_fixture_set):
    models = str(lqvg_fixture_set)
    assert cli.main(["locate", str(IMAGE), "--models", models, "--text", " "]) == TextError.code
    assert cli.main(["locate", str(tmp_path / "none.png"), "--models", models, "--text", "a"]) == ImageError.code
    assert cli.main(["locate", str(IMAGE), "--models", str(tmp_path), "--text", "a"]) == ModelSetNotFound.code
    assert "pslg locate: error: TextError" in capsys.readouterr().err
