"""Every concrete error code is raised by a real call (not constructed by hand), with its stable code."""
import json
import shutil

import numpy as np
import pytest

from pslg.runtime import backends, errors, extras, files, modelset
from pslg.runtime.backends.onnxruntime import select_providers
from pslg.runtime.backends.tensorrt import BufferPlan, DeviceInfo, check_compatible, check_profile
from pslg.runtime.image import to_rgb8
from pslg.runtime.pipeline import Pipeline
from pslg.runtime.prompts import check_box, check_point
from pslg.runtime.specs import EngineSpec, GraphSpec, ShapeRange, TensorSpec
from tests.runner_options import CPU

BASES = {errors.PslgError, errors.InputError, errors.ModelSetError, errors.BackendError, errors.StateError,
         errors.ExportError}


def _corrupt_set(sam_tiny, tmp_path, change):
    path = shutil.copytree(sam_tiny[0], tmp_path / "set")
    change(path)
    return modelset.open(path)


def _manifest_change(path, fn):
    m = json.loads((path / "manifest.json").read_text())
    fn(m)
    (path / "manifest.json").write_text(json.dumps(m))


def _closed(sam_tiny):
    p = Pipeline.open(sam_tiny[0], CPU, warmup=False)
    p.close()
    p.set_image(np.zeros((8, 8, 3), np.uint8))


def _no_image(sam_tiny):
    with Pipeline.open(sam_tiny[0], CPU, warmup=False) as p:
        p.segment(box=(0, 0, 4, 4))


def _stale_handle(sam_tiny):
    with Pipeline.open(sam_tiny[0], CPU, warmup=False) as p:
        old = p.set_image(np.zeros((8, 8, 3), np.uint8))
        p.set_image(np.ones((8, 8, 3), np.uint8))
        p.segment(box=(0, 0, 4, 4), mode="box", image=old)


def _jobs_file(tmp_path):
    from pslg.runtime.batch.jobs import read_jobs
    (tmp_path / "jobs.jsonl").write_text('{"id": "a", "image": "x.png"}\n')
    read_jobs(tmp_path / "jobs.jsonl")


def _jobs_failed(sam_tiny, tmp_path):
    import argparse

    from pslg.runtime.commands import batch
    (tmp_path / "jobs.jsonl").write_text('{"id": "a", "image": "missing.png", "box": [1, 2, 3, 4]}\n')
    parser = argparse.ArgumentParser()
    batch.add_arguments(parser)
    batch.run(parser.parse_args(["--models", str(sam_tiny[0]), "--jobs", str(tmp_path / "jobs.jsonl"),
                                 "--out", str(tmp_path / "out"), "--device", "cpu"]))


def _text_on_sam_only(sam_tiny):
    with Pipeline.open(sam_tiny[0], CPU, warmup=False) as p:
        p.set_image(np.zeros((8, 8, 3), np.uint8))
        p.locate("a boat")


def _empty_phrase(pslg_small):
    from pslg.runtime.grounding import Grounder
    with Grounder(modelset.open(pslg_small), CPU) as g:
        g.locate(np.zeros((8, 8, 3), np.uint8), "   ")


def _parity(sam_tiny):
    from pslg.export.onnx import check_parity
    path = sam_tiny[0] / "sam_encoder.onnx"
    feeds = {"image": np.zeros((1, 3, 1024, 1024), np.float32)}
    check_parity("sam_encoder", path, feeds, {"image_embeddings": np.ones((1, 256, 64, 64))},
                 {"image_embeddings": 1e-3})


def _checkpoint(tmp_path):
    from pslg.export.sam import load_sam
    load_sam("vit_b", checkpoint=tmp_path / "missing.pth")


def _tokenizer(tmp_path):
    from pslg.export.lqvg.tokenizer import load_tokenizer
    load_tokenizer(tmp_path / "no-such-folder")


def _output_is_a_file(tmp_path):
    (tmp_path / "taken").write_text("a file")
    files.output_dir(tmp_path / "taken")


def _dataset(tmp_path):
    from pslg.benchmarks.rrsisd import load_split
    load_split(tmp_path, "test")


def _plan(sam_tiny):
    spec = GraphSpec("g", sam_tiny[0] / "x", (TensorSpec("x", "float32", ("n",)),),
                     (TensorSpec("y", "float32", ("m",)),))
    BufferPlan.for_feeds(spec, {"x": np.zeros(3, np.float32)})


SCENARIOS = {
    errors.ImageError: lambda **k: to_rgb8(np.zeros((4, 4, 3), np.float32)),
    errors.BoxError: lambda **k: check_box((10, 10, 5, 5), (20, 20)),
    errors.TextError: lambda pslg_small, **k: _empty_phrase(pslg_small),
    errors.PointError: lambda **k: check_point((50, 1), (20, 20)),
    errors.ParameterError: lambda **k: select_providers("tpu"),
    errors.PathError: lambda tmp_path, **k: _output_is_a_file(tmp_path),
    errors.ModelSetNotFound: lambda tmp_path, **k: modelset.open(tmp_path / "none"),
    errors.ManifestError: lambda sam_tiny, tmp_path, **k: _corrupt_set(
        sam_tiny, tmp_path, lambda p: _manifest_change(p, lambda m: m.update(schema_version=0))),
    errors.ModelFileError: lambda sam_tiny, tmp_path, **k: _corrupt_set(
        sam_tiny, tmp_path, lambda p: (p / "sam_decoder.onnx").write_bytes(b"truncated")),
    errors.GraphSignatureError: lambda sam_tiny, tmp_path, **k: backends.open_runner(_corrupt_set(
        sam_tiny, tmp_path, lambda p: _manifest_change(
            p, lambda m: m["graphs"]["sam_encoder"]["outputs"][0].update(name="x"))).graph("sam_encoder"), CPU),
    errors.ComponentMissing: lambda sam_tiny, **k: _text_on_sam_only(sam_tiny),
    errors.BackendUnavailable: lambda **k: select_providers("cuda", available=["CPUExecutionProvider"]),
    errors.EngineIncompatible: lambda tmp_path, **k: check_compatible(
        EngineSpec("g", tmp_path / "g.engine", "fp16", "10.0.0", "a", "8.7", {}, "x"), DeviceInfo("10.0.0", "b", "9.0"),
        "x"),
    errors.BackendRuntimeError: lambda sam_tiny, **k: _plan(sam_tiny),
    errors.ProfileError: lambda **k: check_profile({"x": np.zeros((9,))}, {"x": ShapeRange((1,), (1,), (8,))}),
    errors.ClosedError: lambda sam_tiny, **k: _closed(sam_tiny),
    errors.NoImageError: lambda sam_tiny, **k: _no_image(sam_tiny),
    errors.StaleImageError: lambda sam_tiny, **k: _stale_handle(sam_tiny),
    errors.CheckpointError: lambda tmp_path, **k: _checkpoint(tmp_path),
    errors.ParityError: lambda sam_tiny, **k: _parity(sam_tiny),
    errors.TokenizerError: lambda tmp_path, **k: _tokenizer(tmp_path),
    errors.MissingDependency: lambda **k: extras.require("pslg_no_such_package", "geo", "a test"),
    errors.DatasetError: lambda tmp_path, **k: _dataset(tmp_path),
    errors.JobsFileError: lambda tmp_path, **k: _jobs_file(tmp_path),
    errors.JobsFailed: lambda sam_tiny, tmp_path, **k: _jobs_failed(sam_tiny, tmp_path),
}


def test_every_concrete_error_has_a_scenario():
    assert set(SCENARIOS) == set(errors.all_errors()) - BASES


@pytest.mark.parametrize("error", list(SCENARIOS), ids=lambda e: f"{e.code}-{e.__name__}")
def test_error_is_raised_with_its_code(error, request, tmp_path):
    kwargs = {"tmp_path": tmp_path}
    for name in ("sam_tiny", "pslg_small"):
        if name in SCENARIOS[error].__code__.co_varnames:
            kwargs[name] = request.getfixturevalue(name)
    with pytest.raises(error) as info:
        SCENARIOS[error](**kwargs)
    assert info.value.code == error.code and type(info.value) is error
    assert str(info.value).startswith(f"{error.__name__} [{error.code}]")
