"""Parity with the official LQVG on the fixture (seed-7 weights, osbs_029.png, its token ids).

Tolerances from the fixture's README: boxes of all ten queries 1e-4, logits
1e-3, the box in original pixels 0.5 px. Both our PyTorch model and our
runtime on the exported ONNX graphs are checked.
"""
import numpy as np
import pytest
import torch

from pslg.export.lqvg.export import LETTERBOX
from pslg.runtime import RunnerOptions
from pslg.runtime.grounding import Grounder, letterbox_image
from pslg.runtime.image import load_image
from tests.lqvg_support import DATA

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fx(lqvg_fixture):
    return lqvg_fixture


@pytest.fixture(scope="module")
def prepared(fx):
    return letterbox_image(load_image(DATA / str(fx["image_file"])), int(fx["image_size"]), LETTERBOX)


def test_preprocessing_reproduces_the_official_letterbox(fx, prepared):
    assert np.array_equal(prepared.pixels, fx["letterboxed_uint8_hwc_rgb"])
    box = prepared.letterbox
    assert (box.ratio, box.dw, box.dh) == (fx["letterbox_ratio"], fx["letterbox_dw"], fx["letterbox_dh"])


def test_pytorch_model_matches_official(fx, prepared, lqvg_fixture_model):
    model = lqvg_fixture_model
    ids, mask = torch.from_numpy(fx["input_ids"]), torch.from_numpy(fx["attention_mask"])
    seen = {}
    hooks = [model.text_encoder.register_forward_hook(lambda m, i, o: seen.setdefault("text", o)),
             model.poolout_module.register_forward_hook(lambda m, i, o: seen.setdefault("sentence", o))]
    try:
        with torch.no_grad():
            logits, boxes = model(torch.from_numpy(prepared.tensor), ids, mask)
    finally:
        for hook in hooks:
            hook.remove()
    assert np.abs(seen["text"].numpy() - fx["text_last_hidden_state"]).max() < 1e-4
    assert np.abs(seen["sentence"].numpy() - fx["text_sentence_feature"]).max() < 1e-4
    assert np.abs(boxes.numpy() - fx["pred_boxes"].reshape(1, 10, 4)).max() < 1e-4
    assert np.abs(logits.numpy() - fx["pred_logits"].reshape(1, 10)).max() < 1e-3


def test_runtime_on_exported_onnx_matches_official(fx, prepared, lqvg_fixture_set):
    with Grounder(lqvg_fixture_set, RunnerOptions(device="cpu")) as grounder:
        result = grounder.locate_tokens(load_image(DATA / str(fx["image_file"])), fx["input_ids"],
                                        fx["attention_mask"])
        again = grounder.locate_tokens(prepared, fx["input_ids"][0])
    assert np.abs(result.boxes_cxcywh - fx["pred_boxes"].reshape(10, 4)).max() < 1e-4
    assert np.abs(result.logits - fx["pred_logits"].reshape(10)).max() < 1e-3
    assert result.query == int(fx["best_query"])
    assert result.score == pytest.approx(float(fx["best_score"]), abs=1e-4)
    assert np.abs(np.array(result.box) - fx["box_xyxy_original"]).max() < 0.5
    assert result.tokens == fx["input_ids"][0].tolist() and not result.truncated
    assert set(result.timings_ms) == {"letterbox", "tokenise", "text", "grounding"}
    assert np.array_equal(again.logits, result.logits) and again.box == result.box
