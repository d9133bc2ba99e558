"""Engine builds: fp32 layer choice on the real exported graphs, and ``pslg build`` on a strict fake of TensorRT 10.3
whose ONNX parser imports nodes as onnx-tensorrt does (tests/fake_tensorrt.py)."""
import importlib.util
import json
import logging
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from pslg.export import tensorrt as trt_build
from pslg.runtime import modelset
from pslg.runtime.cli import main
from pslg.runtime.errors import BackendUnavailable, ExportError, ImageError, ParameterError, ProfileError
from pslg.runtime.specs import ShapeRange
from tests import fake_tensorrt
from tests.fake_api import LISTS, ApiList

FREED = {"device": 0, "host": 0, "streams": 0, "graphs": 0, "execs": 0}


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


def inverse_sigmoid_nodes():
    return [helper.make_node("Clip", ["x", "zero", "one"], ["c"], name="clamp01"),
            helper.make_node("Clip", ["c", "eps", ""], ["num"], name="clamp_num"),
            helper.make_node("Sub", ["one", "c"], ["omc"], name="one_minus"),
            helper.make_node("Clip", ["omc", "eps", ""], ["den"], name="clamp_den"),
            helper.make_node("Div", ["num", "den"], ["q"], name="ratio"),
            helper.make_node("Log", ["q"], ["y"], name="log"),
            helper.make_node("MatMul", ["y", "w"], ["z"], name="proj")]


def test_fp32_layers_take_the_inverse_sigmoid_chain():
    model = helper.make_model(helper.make_graph(inverse_sigmoid_nodes(), "g", [], []))
    assert set(trt_build.fp32_nodes(model)) == {"clamp01", "clamp_num", "one_minus", "clamp_den", "ratio", "log"}


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
    out = tmp_path / "verify.json"
    assert main(["verify", "--models", str(pslg_small), "--backend", "onnxruntime", "--device", "cpu",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())["graphs"]
    assert set(report) == {"sam_encoder", "sam_decoder", "lqvg_text", "lqvg_grounding"}
    assert all(s["max_abs_diff"] == 0.0 for g in report.values() for s in g.values())
    assert report["sam_decoder"]["low_res_masks"]["mask_iou_min"] == 1.0


# ---------------------------------------------------------------- the parser's layers and their precision

def graph(nodes, inputs, outputs, initializers=()):
    return helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, list(initializers)),
                             opset_imports=[helper.make_opsetid("", 17)])


def build_fp16(trt, tmp_path, model):
    """Build ``model`` in fp16 with its fp32 nodes constrained; returns ``(built, plan dict)``."""
    path = tmp_path / "g.onnx"
    onnx.save(model, str(path))
    profile = {i.name: ShapeRange((1, 8), (1, 8), (1, 8)) for i in model.graph.input}
    built = trt_build.build_serialized_network(trt, path, model, profile, "fp16", trt_build.fp32_nodes(model), 1 << 20)
    return built, json.loads(built.plan[len(fake_tensorrt.PLAN_MAGIC):])


def vec(name):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 8])


@pytest.fixture
def fakes(monkeypatch):
    return fake_tensorrt.install(monkeypatch)


def test_softmax_layer_itself_runs_in_fp32_not_only_the_shuffle_after_it(fakes, tmp_path):
    trt, _ = fakes
    model = graph([helper.make_node("MatMul", ["x", "w"], ["h"], name="proj"),
                   helper.make_node("Softmax", ["h"], ["p"], name="attn/Softmax", axis=-1),
                   helper.make_node("MatMul", ["p", "w"], ["y"], name="out")],
                  [vec("x")], [vec("y")], [helper.make_tensor("w", TensorProto.FLOAT, [8, 8], np.eye(8).ravel())])
    built, plan = build_fp16(trt, tmp_path, model)
    runs = {name: layer["runs"] for layer in plan["layers"] for name in layer["name"].split(" + ")}
    assert runs["attn/Softmax"] == runs["ONNXTRT_ShapeShuffle"] == "FP32"
    assert runs["proj"] == runs["out"] == "FP16"
    assert built.fp32_layers == {"attn/Softmax": ["attn/Softmax", "ONNXTRT_ShapeShuffle"]}


def test_clip_with_tensor_bounds_keeps_both_elementwise_layers_in_fp32(fakes, tmp_path):
    trt, _ = fakes
    scalar = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [])  # noqa: E731
    model = graph([helper.make_node("Log", ["x"], ["lx"], name="pre"),
                   helper.make_node("Clip", ["lx", "lo", "hi"], ["c"], name="clamp"),
                   helper.make_node("Log", ["c"], ["y"], name="log")],
                  [vec("x"), scalar("lo"), scalar("hi")], [vec("y")])
    built, plan = build_fp16(trt, tmp_path, model)
    clip_layers = built.fp32_layers["clamp"]
    assert len(clip_layers) == 4 and all(n.startswith(("(Unnamed Layer*", "ONNXTRT_ShapeShuffle")) for n in clip_layers)
    assert {layer["runs"] for layer in plan["layers"] if set(layer["name"].split(" + ")) & set(clip_layers)} == {"FP32"}


def test_layer_normalization_and_its_broadcast_scale_stay_fp32(fakes, tmp_path):
    trt, _ = fakes
    w = helper.make_tensor("gamma", TensorProto.FLOAT, [8], np.ones(8))
    b = helper.make_tensor("beta", TensorProto.FLOAT, [8], np.zeros(8))
    model = graph([helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["y"], name="norm", axis=-1)],
                  [vec("x")], [vec("y")], [w, b])
    built, plan = build_fp16(trt, tmp_path, model)
    assert set(built.fp32_layers["norm"]) == {"norm", "ONNXTRT_ShapeShuffle", "ONNXTRT_ShapeShuffle_0"}
    assert all(layer["runs"] == "FP32" for layer in plan["layers"] if layer["type"] != "CONSTANT")


def test_fp32_check_reads_fused_and_foreign_layers():
    fmt = lambda p: [{"Format/Datatype": f"Row major linear {p}"}]  # noqa: E731
    info = json.dumps({"Layers": [
        {"Name": "a + b", "LayerType": "PointWise", "Outputs": fmt("FP32")},
        {"Name": "c + mm", "LayerType": "PointWise", "Outputs": fmt("FP16 format")},
        {"Name": "Reformatting CopyNode for Input Tensor 0 to d", "LayerType": "Reformat", "Outputs": fmt("FP16")},
        {"Name": "d", "LayerType": "Softmax", "Outputs": fmt("FP16 format")},
        {"Name": "{ForeignNode[x...y]}", "LayerType": "Myelin", "Outputs": fmt("FP16")}]})
    report = trt_build.fp32_check(info, ["a", "b", "c", "d", "e", "x"])
    assert report == {"constrained_layers": 6, "fp32": 2, "fused": 2, "not_visible": 1,
                      "violations": [("d", ["fp16"])]}
    with pytest.raises(ExportError, match="ProfilingVerbosity.DETAILED"):
        trt_build.fp32_check(json.dumps({"Layers": ["a + b"]}), ["a"])


def test_layers_the_builder_does_not_keep_in_fp32_fail_the_build(fakes, tmp_path, monkeypatch):
    trt, _ = fakes
    model = graph([helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=-1)], [vec("x")], [vec("y")])
    monkeypatch.setattr(fake_tensorrt, "_runs_in", lambda mod, layer, flags: "FP16")  # TensorRT ignoring them
    built, _ = build_fp16(trt, tmp_path, model)
    engine = modelset_engine(tmp_path, "fp16")
    with pytest.raises(ExportError, match="did not keep 1 constrained layers in fp32.*sm"):
        trt_build.inspect_fp32(trt, built.plan, engine, built.fp32_layers)


def modelset_engine(tmp_path, precision):
    from pslg.runtime.specs import EngineSpec
    return EngineSpec("g", tmp_path / f"g.{precision}.engine", precision, "10.3.0", "Orin", "8.7", {}, "abc")


# ---------------------------------------------------------------- pslg build and verify end to end on the fakes

@pytest.fixture
def sam_set(sam_tiny, tmp_path):
    return shutil.copytree(sam_tiny[0], tmp_path / "set")


def test_build_records_engines_that_verify_exactly(fakes, sam_set, tmp_path, capsys):
    trt, cudart = fakes
    assert main(["build", "--models", str(sam_set), "--precision", "fp16"]) == 0
    err = capsys.readouterr().err
    assert "Building engine (2 steps)" in err and "fp32 layers confirmed" in err
    models = modelset.open(sam_set)
    for graph in ("sam_encoder", "sam_decoder"):
        engine, build = models.engine(graph), models._builds[graph]
        assert engine.precision == "fp16" and engine.tensorrt_version == "10.3.0" and engine.compute_capability == "8.7"
        check = build["fp32_check"]
        assert check["constrained_layers"] >= len(engine.fp32_layers) > 0 and check["fp32"] > 0
        assert check["fp32"] + check["fused"] + check["not_visible"] == check["constrained_layers"]
    assert (sam_set / modelset.timing_cache_file("8.7", "10.3.0")).is_file()
    assert [models._builds[g]["timing_cache"] for g in ("sam_encoder", "sam_decoder")] == ["fresh", "reused"]
    out = tmp_path / "verify.json"
    assert main(["verify", "--models", str(sam_set), "--backend", "tensorrt", "--device", "cuda:0",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())["graphs"]
    assert all(s["max_abs_diff"] == 0.0 for g in report.values() for s in g.values())  # the fake runs the fp32 graph
    assert cudart.alive == FREED


def test_timing_cache_from_another_device_is_replaced(monkeypatch, sam_set, caplog):
    trt, _ = fake_tensorrt.install(monkeypatch, device_tag="sm89")  # the cache a PC wrote
    assert main(["build", "--models", str(sam_set), "--graphs", "sam_decoder", "--precision", "fp32",
                 "--timing-cache", str(sam_set / "pc.cache")]) == 0
    trt, _ = fake_tensorrt.install(monkeypatch, device_tag="sm87")  # copied to the Jetson
    with caplog.at_level(logging.WARNING, logger="pslg"):
        assert main(["build", "--models", str(sam_set), "--graphs", "sam_decoder", "--precision", "fp32",
                     "--timing-cache", str(sam_set / "pc.cache")]) == 0
    assert "made on another GPU or TensorRT version" in caplog.text
    assert modelset.open(sam_set)._builds["sam_decoder"]["timing_cache"] == "replaced (made on another device)"


def test_dla_core_is_checked_and_recorded(fakes, sam_set):
    assert main(["build", "--models", str(sam_set), "--graphs", "sam_decoder", "--precision", "fp16",
                 "--dla-core", "1"]) == 0
    assert modelset.open(sam_set).engine("sam_decoder").dla_core == 1
    assert main(["build", "--models", str(sam_set), "--graphs", "sam_decoder", "--dla-core", "2"]) \
        == ParameterError.code


@pytest.mark.parametrize("version, message", [("8.6.1", "JetPack 6.0"), ("11.0.0", "TensorRT 11 removed")])
def test_build_refuses_unsupported_tensorrt(monkeypatch, sam_set, capsys, version, message):
    fake_tensorrt.install(monkeypatch, version=version)
    assert main(["build", "--models", str(sam_set)]) == BackendUnavailable.code
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------- INT8 calibration

def calibration_folder(tmp_path, data_dir, n=3):
    folder = tmp_path / "calib"
    folder.mkdir()
    for i in range(n):
        shutil.copy(data_dir / "marina.png", folder / f"{i}.png")
    return folder


def int8(sam_set, folder):
    return main(["build", "--models", str(sam_set), "--graphs", "sam_encoder", "--precision", "int8",
                 "--calibration-images", str(folder)])


def test_int8_calibration_uses_every_image_frees_its_buffer_and_keys_its_cache(fakes, sam_set, tmp_path, data_dir):
    trt, cudart = fakes
    folder = calibration_folder(tmp_path, data_dir)
    assert int8(sam_set, folder) == 0
    models = modelset.open(sam_set)
    assert models._builds["sam_encoder"]["calibration"] == {"images": 3, "batches": 3, "cache": "computed"}
    cache = sam_set / modelset.calibration_cache_file("sam_encoder", models.graph("sam_encoder").sha256)
    assert cache.read_bytes() == b"FAKE-CALIBRATION 3" and cudart.alive["device"] == 0
    assert int8(sam_set, folder) == 0
    assert modelset.open(sam_set)._builds["sam_encoder"]["calibration"]["cache"] == "reused"


def test_int8_calibration_that_stops_early_fails_the_build(fakes, sam_set, tmp_path, data_dir, monkeypatch, capsys):
    _, cudart = fakes
    real = trt_build.calibration_batches

    def failing(images, meta):
        batches = real(images, meta)
        yield next(batches)
        raise ImageError("image 2 could not be preprocessed")
    monkeypatch.setattr(trt_build, "calibration_batches", failing)
    assert int8(sam_set, calibration_folder(tmp_path, data_dir)) == ExportError.code
    assert "INT8 calibration failed after 1 of 3 images: image 2 could not be preprocessed" in capsys.readouterr().err
    assert modelset.open(sam_set).engine("sam_encoder") is None and cudart.alive["device"] == 0


def test_int8_images_are_validated_before_any_build(fakes, sam_set, tmp_path, data_dir, capsys):
    folder = calibration_folder(tmp_path, data_dir)
    (folder / "broken.png").write_bytes(b"not a png")
    assert int8(sam_set, folder) == ImageError.code
    assert "broken.png" in capsys.readouterr().err
    assert not list(sam_set.glob("*.engine"))


# ---------------------------------------------------------------- the API the build uses, across TensorRT releases

#: what the build uses that TensorRT 10.12+ deprecates (the weakly typed API) and TensorRT 11 removed
WEAK_TYPING = {"BuilderFlag.FP16", "BuilderFlag.OBEY_PRECISION_CONSTRAINTS", "ILayer.precision=",
               "ILayer.set_output_type"}
INT8_CALIBRATION = {"BuilderFlag.INT8", "IBuilderConfig.int8_calibrator", "IInt8EntropyCalibrator2"}


def test_deprecated_names_the_build_uses_are_the_known_ones(monkeypatch, sam_set, tmp_path, data_dir):
    """Built against the newest 10.x list: every deprecated name used is a known step of the move to strong typing."""
    trt, _ = fake_tensorrt.install(monkeypatch, "tensorrt-10.16.txt")
    assert main(["build", "--models", str(sam_set), "--graphs", "sam_decoder", "--precision", "fp16"]) == 0
    assert int8(sam_set, calibration_folder(tmp_path, data_dir, n=1)) == 0
    assert set(trt._api.deprecated_used()) == WEAK_TYPING | INT8_CALIBRATION
    removed = ApiList(LISTS / "tensorrt-11.0.txt")
    still_there = {q for q in WEAK_TYPING | INT8_CALIBRATION
                   if (removed.member(*q.rstrip("=").split(".")) if "." in q else q in removed.classes)}
    assert still_there == set(), "TensorRT 11 dropped them: the [tensorrt] extra must stay below 11"


@pytest.mark.slow
def test_one_shot_check_builds_verifies_and_inspects_each_precision(fakes, sam_tiny, tmp_path, capsys):
    from pslg.benchmarks import tensorrt_check
    out = tmp_path / "rows.json"
    assert tensorrt_check.run(["--models", str(sam_tiny[0]), "--work", str(tmp_path / "work"), "--json", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("graph") and len(table) == 1 + 2 * 2
    rows = {(r["graph"], r["precision"]): r for r in json.loads(out.read_text())}
    assert set(rows) == {(g, p) for g in ("sam_encoder", "sam_decoder") for p in ("fp32", "fp16")}
    fp32, fp16 = rows["sam_encoder", "fp32"], rows["sam_encoder", "fp16"]
    assert fp32["layers fp32/fp16/int8/other"].split("/")[1] == "0" and fp32["kept fp32: seen/fused/hidden"] == "-"
    assert int(fp16["layers fp32/fp16/int8/other"].split("/")[1]) > 0
    seen, _, total = fp16["kept fp32: seen/fused/hidden"].split(" ")
    assert int(seen.split("/")[0]) > 0 and sum(map(int, seen.split("/"))) == int(total)
    assert rows["sam_decoder", "fp16"]["mask IoU"] == 1.0
