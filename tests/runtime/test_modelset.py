"""A model set is complete or refused, with a named error."""
import json
import shutil

import pytest

from pslg.runtime import modelset
from pslg.runtime.errors import GraphSignatureError, ManifestError, ModelFileError, ModelSetNotFound


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
        models.open_runner("sam_decoder", device="cpu")


def test_manifest_that_does_not_match_its_graph(copy):
    edit_manifest(copy, lambda m: m["graphs"]["sam_decoder"]["inputs"][1].update(name="coords"))
    with pytest.raises(GraphSignatureError, match="point_coords"):
        modelset.open(copy).open_runner("sam_decoder", device="cpu")
    edit_manifest(copy, lambda m: m["graphs"]["sam_decoder"]["inputs"][1].update(name="point_coords", dtype="float16"))
    with pytest.raises(GraphSignatureError, match="float16"):
        modelset.open(copy).open_runner("sam_decoder", device="cpu")
