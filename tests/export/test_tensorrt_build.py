"""Engine-build logic on the real exported graphs, without TensorRT."""
import importlib.util

import onnx
import pytest

from pslg.export import tensorrt as trt_build
from pslg.runtime import modelset
from pslg.runtime.cli import main
from pslg.runtime.errors import BackendUnavailable, ProfileError
from pslg.runtime.specs import ShapeRange


@pytest.fixture(scope="module")
def graphs(sam_tiny):
    models = modelset.open(sam_tiny[0])
    return models, {g: onnx.load(str(models.graph(g).path)) for g in ("sam_encoder", "sam_decoder")}


def ops_of(model, names):
    by_name = {n.name: n.op_type for n in model.graph.node}
    return {by_name[n] for n in names}


def test_fp32_layers_cover_layernorm_softmax_and_decomposed_norms(graphs):
    _, g = graphs
    for model in g.values():
        chosen = set(trt_build.fp32_nodes(model))
        for n in model.graph.node:
            if n.op_type in ("LayerNormalization", "Softmax", "ReduceMean", "Pow", "Sqrt"):
                assert n.name in chosen, n.name
        assert not ops_of(model, chosen) & {"MatMul", "Gemm", "Conv", "ConvTranspose", "Einsum"}
    encoder = set(trt_build.fp32_nodes(g["sam_encoder"]))
    # the ViT neck's LayerNorm2d, decomposed: mean, centre, square, mean, +eps, sqrt, divide
    for suffix in ("ReduceMean", "Sub", "Pow", "ReduceMean_1", "Add", "Sqrt", "Div"):
        assert f"/image_encoder/neck/neck.1/{suffix}" in encoder
    assert "/image_encoder/neck/neck.1/Mul" not in encoder


def test_fp32_layers_take_the_inverse_sigmoid_chain():
    from onnx import helper
    nodes = [helper.make_node("Clip", ["x", "zero", "one"], ["c"], name="clamp01"),
             helper.make_node("Clip", ["c", "eps", ""], ["num"], name="clamp_num"),
             helper.make_node("Sub", ["one", "c"], ["omc"], name="one_minus"),
             helper.make_node("Clip", ["omc", "eps", ""], ["den"], name="clamp_den"),
             helper.make_node("Div", ["num", "den"], ["q"], name="ratio"),
             helper.make_node("Log", ["q"], ["y"], name="log"),
             helper.make_node("MatMul", ["y", "w"], ["z"], name="proj")]
    model = helper.make_model(helper.make_graph(nodes, "g", [], []))
    assert set(trt_build.fp32_nodes(model)) == {"clamp01", "clamp_num", "one_minus", "clamp_den", "ratio", "log"}
    assert trt_build.fp32_tensors(model, ["log", "ratio"]) == ["q", "y"]


def test_profiles_from_the_manifest(graphs):
    models, _ = graphs
    limits = trt_build.build_limits(models.lqvg, 16, 8)
    dec = trt_build.profile_ranges(models.graph("sam_decoder"), limits)
    assert dec["point_coords"] == ShapeRange((1, 1, 2), (1, 3, 2), (16, 8, 2))
    assert dec["mask_input"] == ShapeRange((1, 1, 256, 256), (1, 1, 256, 256), (16, 1, 256, 256))
    assert dec["image_embeddings"].min == dec["image_embeddings"].max == (1, 256, 64, 64)
    enc = trt_build.profile_ranges(models.graph("sam_encoder"), limits)
    assert enc["image"].min == enc["image"].max == (1, 3, 1024, 1024)


@pytest.mark.parametrize("limits, message", [
    ({"prompts": 0, "points": 8}, "positive integer"),
    ({"prompts": 4, "points": 1}, "two corner points"),
    ({"prompts": 4}, "'points' with no profile limit"),
])
def test_profiles_the_graph_cannot_take_are_refused(graphs, limits, message):
    models, _ = graphs
    with pytest.raises(ProfileError, match=message):
        trt_build.profile_ranges(models.graph("sam_decoder"), limits)


def test_text_length_beyond_the_export_is_refused(pslg_small):
    lqvg = modelset.open(pslg_small).lqvg
    assert trt_build.build_limits(lqvg, 16, 8)["tokens"] == 12
    assert trt_build.build_limits(lqvg, 16, 8, max_tokens=10)["tokens"] == 10
    with pytest.raises(ProfileError, match="re-export LQVG"):
        trt_build.build_limits(lqvg, 16, 8, max_tokens=64)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="checks the missing-TensorRT message")
def test_build_without_tensorrt_is_a_named_error(sam_tiny, capsys):
    assert main(["build", "--models", str(sam_tiny[0])]) == BackendUnavailable.code
    assert "TensorRT is not installed" in capsys.readouterr().err


def test_verify_onnxruntime_against_itself_is_exact(pslg_small, tmp_path, capsys):
    import json
    out = tmp_path / "verify.json"
    assert main(["verify", "--models", str(pslg_small), "--backend", "onnxruntime", "--device", "cpu",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())["graphs"]
    assert set(report) == {"sam_encoder", "sam_decoder", "lqvg_text", "lqvg_grounding"}
    assert all(s["max_abs_diff"] == 0.0 for g in report.values() for s in g.values())
    assert report["sam_decoder"]["low_res_masks"]["mask_iou_min"] == 1.0
