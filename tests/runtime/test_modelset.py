"""A model set is complete or refused, with a named error."""
import json
import shutil

import pytest

from pslg.runtime import backends, modelset
from pslg.runtime.errors import GraphSignatureError, ManifestError, ModelFileError, ModelSetNotFound, ParameterError
from pslg.runtime.specs import EngineSpec, ShapeRange
from tests.runner_options import CPU


@pytest.fixture
def copy(sam_tiny, tmp_path):
    return shutil.copytree(sam_tiny[0], tmp_path / "set")


def edit_manifest(path, change):
    manifest = json.loads((path / "manifest.json").read_text())
    change(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_complete_set_opens(copy):
    models = modelset.open(copy)
    assert models.has("sam") and not models.has("lqvg")
    assert [t.name for t in models.graph("sam_encoder").inputs] == ["image"]


def test_missing_folder_and_manifest(tmp_path):
    with pytest.raises(ModelSetNotFound, match="does not exist"):
        modelset.open(tmp_path / "nope")
    with pytest.raises(ModelSetNotFound, match="no manifest.json"):
        modelset.open(tmp_path)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(schema_version=99), "schema_version 99"),
    (lambda m: m.update(format="other"), "not a pslg model-set"),
    (lambda m: m.pop("graphs"), "no 'graphs'"),
])
def test_bad_manifest(copy, change, message):
    edit_manifest(copy, change)
    with pytest.raises(ManifestError, match=message):
        modelset.open(copy)


def test_unreadable_manifest(copy):
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not readable JSON"):
        modelset.open(copy)


def test_missing_and_truncated_graph(copy):
    data = (copy / "sam_decoder.onnx").read_bytes()
    (copy / "sam_decoder.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="sam_decoder.onnx does not match its recorded sha256"):
        modelset.open(copy)
    (copy / "sam_decoder.onnx").unlink()
    with pytest.raises(ModelFileError, match="sam_decoder.onnx is missing"):
        modelset.open(copy)


def test_truncated_graph_without_hashing_is_refused_by_the_backend(copy):
    data = (copy / "sam_decoder.onnx").read_bytes()
    (copy / "sam_decoder.onnx").write_bytes(data[: len(data) // 2])
    models = modelset.open(copy, verify=False)
    with pytest.raises(ModelFileError, match="cannot load"):
        backends.open_runner(models.graph("sam_decoder"), CPU)


def test_manifest_that_does_not_match_its_graph(copy):
    edit_manifest(copy, lambda m: m["graphs"]["sam_decoder"]["inputs"][1].update(name="coords"))
    with pytest.raises(GraphSignatureError, match="point_coords"):
        backends.open_runner(modelset.open(copy).graph("sam_decoder"), CPU)
    edit_manifest(copy, lambda m: m["graphs"]["sam_decoder"]["inputs"][1].update(name="point_coords", dtype="float16"))
    with pytest.raises(GraphSignatureError, match="float16"):
        backends.open_runner(modelset.open(copy).graph("sam_decoder"), CPU)


@pytest.mark.parametrize("change, message", [
    (lambda m: m["components"]["sam"].pop("pixel_mean"), "no 'pixel_mean' field"),
    (lambda m: m["components"]["sam"].update(image_size="1024"), "'image_size' is '1024'"),
    (lambda m: m["components"]["sam"].update(pixel_std=[1, 2]), "three numbers"),
    (lambda m: m["components"]["sam"]["provenance"].pop("weights"), "no 'weights' field"),
    (lambda m: m["components"].update(mystery={}), "unknown component 'mystery'"),
])
def test_incomplete_components_are_refused_at_open(copy, change, message):
    edit_manifest(copy, change)
    with pytest.raises(ManifestError, match=message):
        modelset.open(copy)


def test_a_folder_path_is_required():
    for bad in (None, 3, b"engines", ""):
        with pytest.raises(ParameterError, match="folder path"):
            modelset.open(bad)


def test_replacing_a_component_drops_the_engines_built_from_its_graphs(copy):
    models = modelset.open(copy)
    spec = models.graph("sam_decoder")
    engine_path = copy / modelset.engine_file("sam_decoder", "fp16")
    engine_path.write_bytes(b"plan")
    engine = EngineSpec("sam_decoder", engine_path, "fp16", "10.3.0", "Orin", "8.7",
                        {"point_coords": ShapeRange((1, 1, 2), (1, 3, 2), (16, 8, 2))}, spec.sha256)
    models = modelset.record_engine(copy, engine, build={"build_seconds": 1.0})
    assert models.engine("sam_decoder") == engine
    assert models.summary()["engines"]["sam_decoder"]["build_seconds"] == 1.0
    models = modelset.write_component(copy, "sam", models.sam, graphs={
        g: (models.graph(g).inputs, models.graph(g).outputs) for g in ("sam_encoder", "sam_decoder")})
    assert models.engine("sam_decoder") is None and models.has("sam")
    assert modelset.open(copy).engine("sam_decoder") is None


def add_cpu_variant(path, graph="sam_decoder"):
    """Give ``graph`` a CPU variant (a copy of the graph), recorded as the exporter records one."""
    models = modelset.open(path)
    shutil.copy(path / modelset.graph_file(graph), path / modelset.cpu_graph_file(graph))
    return modelset.write_component(path, "sam", models.sam, cpu_graphs=[graph], graphs={
        g: (models.graph(g).inputs, models.graph(g).outputs) for g in ("sam_encoder", "sam_decoder")})


def test_onnx_runtime_runs_a_cpu_variant_on_the_cpu_only(copy):
    spec = add_cpu_variant(copy).graph("sam_decoder")
    assert spec.cpu_path == copy / "sam_decoder.cpu.onnx" and spec.portable().cpu_path is None
    assert modelset.open(copy).graph("sam_encoder").cpu_path is None
    with backends.open_runner(spec, CPU) as runner:
        assert runner.path == spec.cpu_path
    with backends.open_runner(spec.portable(), CPU) as runner:
        assert runner.path == spec.path
    from pslg.runtime.backends.onnxruntime import graph_path
    assert graph_path(spec, ["CPUExecutionProvider"]) == spec.cpu_path
    assert graph_path(spec, [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]) == spec.path


def test_a_broken_cpu_variant_is_refused_by_name(copy):
    add_cpu_variant(copy)
    variant = copy / "sam_decoder.cpu.onnx"
    variant.write_bytes(variant.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="sam_decoder.cpu.onnx does not match its recorded sha256"):
        modelset.open(copy)
    variant.unlink()
    with pytest.raises(ModelFileError, match="graphs.sam_decoder.cpu file sam_decoder.cpu.onnx is missing"):
        modelset.open(copy)
    edit_manifest(copy, lambda m: m["graphs"]["sam_decoder"].update(cpu="sam_decoder.cpu.onnx"))
    with pytest.raises(ManifestError, match="'cpu' of the graph entry of sam_decoder must be a table"):
        modelset.open(copy)
