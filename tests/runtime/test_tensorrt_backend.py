"""TensorRT backend: rules tested as plain logic, the runner on strict fakes of TensorRT 10.3 and cuda-python 12.9
(tests/fake_tensorrt.py, tests/fake_cuda.py); the real engine path is skipped without TensorRT and a GPU."""
import dataclasses
import importlib.metadata
import importlib.util
import logging
import sys
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from packaging.requirements import Requirement

from pslg.export import tensorrt as trt_build
from pslg.runtime import RunnerOptions, backends, modelset
from pslg.runtime.backends import tensorrt as trt_backend
from pslg.runtime.backends.tensorrt import (BufferPlan, DeviceInfo, TensorRTRunner, check_compatible,
                                            check_profile, check_tensorrt_version, compatibility_problems)
from pslg.runtime.errors import (BackendRuntimeError, BackendUnavailable, EngineIncompatible, GraphSignatureError,
                                 ProfileError)
from pslg.runtime.pipeline import Pipeline
from pslg.runtime.specs import EngineSpec, GraphSpec, ShapeRange, TensorSpec
from tests import fake_tensorrt
from tests.fake_cuda import FakeCudart

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
ENTRY = EngineSpec("sam_decoder", Path("/models/aerial/sam_decoder.fp16.engine"), "fp16", "10.3.0", "Orin", "8.7",
                   {}, "abc")
HERE = DeviceInfo("10.3.0", "Orin", "8.7")
EMBEDDED = {"version_compatible": True, "lean_runtime_embedded": True}
EXCLUDED = {"version_compatible": True, "lean_runtime_embedded": False}


def test_same_device_is_compatible():
    assert compatibility_problems(ENTRY, HERE, "abc") == []


@pytest.mark.parametrize("entry_change, device, sha, expected", [
    ({}, DeviceInfo("10.4.0", "Orin", "8.7"), "abc", "built with TensorRT 10.3.0, this is TensorRT 10.4.0"),
    ({}, DeviceInfo("10.3.0", "RTX 4090", "8.9"), "abc", "compute capability 8.7"),
    ({}, HERE, "other", "ONNX graph changed"),
    (EMBEDDED, DeviceInfo("10.2.0", "Orin", "8.7"), "abc", ">= 10.3.0"),
    (EMBEDDED, DeviceInfo("11.0.0", "Orin", "8.7"), "abc", "TensorRT 10.x runtime"),
    # without its lean runtime an engine runs only through the builder's lean library: same version only
    (EXCLUDED, DeviceInfo("10.7.1", "Orin", "8.7"), "abc", "exclude-lean-runtime"),
])
def test_incompatible_engines_are_refused_with_a_rebuild_hint(entry_change, device, sha, expected):
    entry = dataclasses.replace(ENTRY, **entry_change)
    assert any(expected in p for p in compatibility_problems(entry, device, sha))
    with pytest.raises(EngineIncompatible, match="pslg build --models /models/aerial --graphs sam_decoder"):
        check_compatible(entry, device, sha)


def test_version_compatible_engine_with_its_lean_runtime_runs_on_a_newer_minor():
    assert compatibility_problems(dataclasses.replace(ENTRY, **EMBEDDED), DeviceInfo("10.7.1", "Orin", "8.7"),
                                  "abc") == []


@pytest.mark.parametrize("version, message", [
    ("8.6.2", "JetPack 6.0"), ("10.2.0.19", "before 10.3"), ("11.0.0", "TensorRT 11 removed"), ("11.4.0.106", "< 11")])
def test_unsupported_tensorrt_is_refused_by_name(version, message):
    with pytest.raises(BackendUnavailable, match=message):
        check_tensorrt_version(version)


@pytest.mark.parametrize("version", ["10.3.0", "10.3.0.30", "10.16.1.11"])
def test_supported_tensorrt_versions(version):
    check_tensorrt_version(version)


def test_import_checks_the_installed_version(monkeypatch):
    fake_tensorrt.install(monkeypatch, version="8.6.1")
    with pytest.raises(BackendUnavailable, match="JetPack 6.0"):
        trt_backend.import_tensorrt()


def test_tensorrt_extra_pins_what_the_code_supports():
    """The installed metadata of [tensorrt]: TensorRT 10.3..10.x for CUDA 12, cuda-python 12.x (13.x needs r580)."""
    reqs = [Requirement(r) for r in importlib.metadata.requires("pslg-sam")]
    extra = {r.name: r.specifier for r in reqs if r.marker and r.marker.evaluate({"extra": "tensorrt"})}
    assert set(extra) == {"tensorrt-cu12", "cuda-python"}
    lo = ".".join(map(str, trt_backend.TENSORRT_MIN))
    assert {v for v in ("10.2.0", lo + ".0", "10.16.1.11", "11.0.0.114", "11.4.0.106") if v in extra["tensorrt-cu12"]} \
        == {lo + ".0", "10.16.1.11"}
    assert {v for v in ("12.6.0", "12.9.4", "13.0.0", "13.4.4") if v in extra["cuda-python"]} == {"12.6.0", "12.9.4"}


PROFILE = {"point_coords": ShapeRange((1, 1, 2), (1, 3, 2), (16, 8, 2))}


def test_profile_check_rejects_before_tensorrt():
    check_profile({"point_coords": np.zeros((2, 3, 2), np.float32)}, PROFILE)
    with pytest.raises(ProfileError, match="point_coords.*outside"):
        check_profile({"point_coords": np.zeros((17, 3, 2), np.float32)}, PROFILE)
    with pytest.raises(ProfileError):
        check_profile({"point_coords": np.zeros((2, 9, 2), np.float32)}, PROFILE)


def test_buffer_plan_sizes_follow_the_prompt_count(sam_tiny):
    spec = modelset.open(sam_tiny[0]).graph("sam_decoder")
    feeds = {"image_embeddings": np.zeros((1, 256, 64, 64), np.float32),
             "point_coords": np.zeros((3, 3, 2), np.float32), "point_labels": np.zeros((3, 3), np.float32),
             "mask_input": np.zeros((3, 1, 256, 256), np.float32), "has_mask_input": np.zeros(1, np.float32)}
    plan = BufferPlan.for_feeds(spec, feeds)
    assert plan.shapes["low_res_masks"] == (3, 4, 256, 256)
    assert plan.nbytes("low_res_masks") == 3 * 4 * 256 * 256 * 4
    assert plan.nbytes("iou_predictions") == 3 * 4 * 4
    assert plan.total_bytes == sum(plan.nbytes(n) for n in plan.shapes)
    other = BufferPlan.for_feeds(spec, dict(feeds, point_coords=np.zeros((3, 2, 2), np.float32),
                                            point_labels=np.zeros((3, 2), np.float32)))
    assert other.key != plan.key


@pytest.mark.skipif(HAS_TRT, reason="checks the message shown when TensorRT is missing")
def test_without_tensorrt_the_backend_names_the_install(sam_tiny):
    with pytest.raises(BackendUnavailable, match="JetPack"):
        Pipeline.open(sam_tiny[0], RunnerOptions(backend="tensorrt"))


def test_auto_without_engines_uses_onnxruntime(sam_tiny):
    with Pipeline.open(sam_tiny[0], RunnerOptions("auto", "cpu")) as p:
        assert set(p.backends.values()) == {"onnxruntime"}


# ---------------------------------------------------------------- the runner on the fakes

def tiny_graph(path, twice_the_rows=False, output="y"):
    """``y = 2 * x`` over x: float32[n, 4]; ``twice_the_rows``: y = concat(2x, 2x), so y has 2n rows."""
    nodes = [helper.make_node("Mul", ["x", "two"], ["y2" if twice_the_rows else output], name="double")]
    if twice_the_rows:
        nodes.append(helper.make_node("Concat", ["y2", "y2"], [output], name="stack", axis=0))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT,
                                                             ["m" if twice_the_rows else "n", 4])],
                              [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return GraphSpec("tiny", path, (TensorSpec("x", "float32", ("n", 4)),), (TensorSpec("y", "float32", ("n", 4)),),
                     "abc")


def tiny_engine(trt, tmp_path, twice_the_rows=False, output="y", **engine_change):
    """A fake-built engine of :func:`tiny_graph` and its EngineSpec (profile n = 1..8)."""
    spec = tiny_graph(tmp_path / f"tiny_{output}.onnx", twice_the_rows, output)
    engine = EngineSpec("tiny", tmp_path / "tiny.fp32.engine", "fp32", trt.__version__, "NVIDIA Jetson AGX Orin",
                        "8.7", {"x": ShapeRange((1, 4), (2, 4), (8, 4))}, "abc", **engine_change)
    built = trt_build.build_serialized_network(
        trt, spec.path, onnx.load(str(spec.path)), engine.profile, "fp32", [], 1 << 20, None, engine.dla_core,
        engine.version_compatible, engine.version_compatible and not engine.lean_runtime_embedded)
    engine.path.write_bytes(built.plan)
    return spec, engine


@pytest.fixture
def fakes(monkeypatch):
    return fake_tensorrt.install(monkeypatch)


def test_runner_allocates_once_per_shape_and_frees_everything(fakes, tmp_path):
    trt, cudart = fakes
    spec, engine = tiny_engine(trt, tmp_path)
    runner = TensorRTRunner(spec, engine)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    first = runner.run({"x": x})["y"]
    np.testing.assert_array_equal(first, 2 * x)
    assert cudart.alive["device"] == cudart.alive["host"] == 2  # device + pinned host, for x and y, once
    np.testing.assert_array_equal(runner.run({"x": x + 1})["y"], 2 * (x + 1))
    np.testing.assert_array_equal(first, 2 * x)  # outputs are the caller's: the next run leaves them alone
    runner.run({"x": np.ones((3, 4), np.float32)})
    assert cudart.alive["device"] == 4  # a new shape gets its own buffers
    with pytest.raises(ProfileError):
        runner.run({"x": np.ones((9, 4), np.float32)})
    assert runner.context._runs == 3
    runner.close()
    assert cudart.alive == {"device": 0, "host": 0, "streams": 0, "graphs": 0, "execs": 0}
    np.testing.assert_array_equal(first, 2 * x)  # and outlive close()
    assert first.flags.owndata


def test_output_shape_from_the_engine_must_match_the_manifest(fakes, tmp_path):
    """The engine computes y with 2n rows where the manifest implies n: refused before TensorRT writes past y."""
    trt, cudart = fakes
    spec, engine = tiny_engine(trt, tmp_path, twice_the_rows=True)
    with TensorRTRunner(spec, engine) as runner:
        with pytest.raises(BackendRuntimeError, match=r"output 'y' as \[4, 4\], the manifest implies \[2, 4\]"):
            runner.run({"x": np.ones((2, 4), np.float32)})
        assert runner.context._runs == 0


def test_a_refused_tensor_address_is_an_error(fakes, tmp_path, monkeypatch):
    trt, _ = fakes
    spec, engine = tiny_engine(trt, tmp_path)
    monkeypatch.setattr(fake_tensorrt.Context, "set_tensor_address", lambda self, name, memory: False)
    with TensorRTRunner(spec, engine) as runner:
        with pytest.raises(BackendRuntimeError, match="refused the device address of tensor 'x'"):
            runner.run({"x": np.ones((2, 4), np.float32)})


def test_engine_built_for_a_dla_core_runs_on_that_core(fakes, tmp_path):
    trt, _ = fakes
    spec, engine = tiny_engine(trt, tmp_path, dla_core=1)
    with TensorRTRunner(spec, engine) as runner:
        assert runner.engine._dla_core == 1 and runner.runtime.DLA_core == 1
    with pytest.raises(EngineIncompatible, match="DLA core 2; this device has 2 DLA cores"):
        TensorRTRunner(spec, dataclasses.replace(engine, dla_core=2))


def test_version_compatible_engine_without_lean_runtime_loads_the_lean_library(fakes, tmp_path, monkeypatch):
    trt, _ = fakes
    spec, engine = tiny_engine(trt, tmp_path, **EXCLUDED)
    monkeypatch.setattr(trt_backend.ctypes.util, "find_library", lambda name: None)
    monkeypatch.delenv(trt_backend.LEAN_LIBRARY_ENV, raising=False)
    with pytest.raises(EngineIncompatible, match=trt_backend.LEAN_LIBRARY_ENV):
        TensorRTRunner(spec, engine)
    lean = tmp_path / "libnvinfer_lean.so.10.3.0"
    lean.write_bytes(b"")
    monkeypatch.setenv(trt_backend.LEAN_LIBRARY_ENV, str(lean))
    with TensorRTRunner(spec, engine) as runner:
        np.testing.assert_array_equal(runner.run({"x": np.ones((1, 4), np.float32)})["y"], 2)
    assert "Runtime.load_runtime" in trt._api.used


def test_version_compatible_engine_with_its_lean_runtime_may_run_host_code(fakes, tmp_path):
    trt, _ = fakes
    spec, engine = tiny_engine(trt, tmp_path, **EMBEDDED)
    with TensorRTRunner(spec, engine) as runner:
        assert runner.runtime.engine_host_code_allowed
    _, plain = tiny_engine(trt, tmp_path)
    with TensorRTRunner(spec, plain) as runner:
        assert not runner.runtime.engine_host_code_allowed


def test_cuda_graph_is_captured_thread_local_and_freed(fakes, tmp_path):
    trt, cudart = fakes
    spec, engine = tiny_engine(trt, tmp_path)
    runner = TensorRTRunner(spec, engine, cuda_graph=True)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    for k in range(3):
        np.testing.assert_array_equal(runner.run({"x": x + k})["y"], 2 * (x + k))
    assert cudart.capture_modes == ["cudaStreamCaptureModeThreadLocal"]
    assert cudart.alive["graphs"] == 0 and cudart.alive["execs"] == 1  # the graph is destroyed once instantiated
    runner.close()
    assert cudart.alive["execs"] == 0 and cudart.alive["streams"] == 0


@pytest.mark.parametrize("failing", ["begin", "end"])
def test_failed_capture_falls_back_to_plain_enqueue(monkeypatch, tmp_path, caplog, failing):
    trt, cudart = fake_tensorrt.install(monkeypatch, cuda=FakeCudart(fail_capture=failing))
    spec, engine = tiny_engine(trt, tmp_path)
    x = np.ones((2, 4), np.float32)
    with caplog.at_level(logging.WARNING, logger="pslg"), TensorRTRunner(spec, engine, cuda_graph=True) as runner:
        for _ in range(2):
            np.testing.assert_array_equal(runner.run({"x": x})["y"], 2 * x)
    assert "CUDA graph capture failed" in caplog.text and "cudaErrorStreamCapture" in caplog.text
    assert cudart.capture_modes == ["cudaStreamCaptureModeThreadLocal"]  # not retried for the same shapes
    assert cudart.alive == {"device": 0, "host": 0, "streams": 0, "graphs": 0, "execs": 0}


def test_cuda_python_13_on_a_cuda_12_driver_names_the_fix(monkeypatch):
    _, cudart = fake_tensorrt.install(monkeypatch, cuda=FakeCudart("cuda-bindings-13.5.0.txt",
                                                                   driver_error="cudaErrorInsufficientDriver"))
    with pytest.raises(BackendRuntimeError, match=r"error 35 \(cudaErrorInsufficientDriver\).*cuda-python>=12.6,<13"):
        trt_backend.device_info(cudart=cudart)


def test_fakes_refuse_names_tensorrt_10_3_lacks(fakes):
    trt, cudart = fakes
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    with pytest.raises(AttributeError, match="dla_core"):
        runtime.dla_core = 1
    with pytest.raises(AttributeError, match="can(not|'t) be set|readonly"):
        runtime.num_DLA_cores = 3
    with pytest.raises(AttributeError, match="execute_async_v2"):
        trt.IExecutionContext.execute_async_v2
    with pytest.raises(TypeError, match="ignore_mismatch"):
        trt.Builder(trt.Logger()).create_builder_config().set_timing_cache(None, ignore=True)
    with pytest.raises(AttributeError, match="cudaGraphInstantiateWithParams_v2"):
        cudart.cudaGraphInstantiateWithParams_v2
    with pytest.raises(TypeError, match="takes 2 positional"):
        cudart.cudaGraphInstantiate(None)


# ---------------------------------------------------------------- the auto fallback, failing the real ways

@pytest.fixture
def tiny_set(fakes, tmp_path):
    trt, _ = fakes
    spec, engine = tiny_engine(trt, tmp_path)
    return spec, engine


def test_auto_falls_back_when_the_plan_does_not_deserialize(tiny_set, caplog):
    spec, engine = tiny_set
    engine.path.write_bytes(b"not a plan")  # what TensorRT does: log the reason, return None
    with caplog.at_level(logging.WARNING, logger="pslg"):
        runner = backends.open_runner(spec, RunnerOptions("auto", "cuda:0"), engine)
    assert runner.backend == "onnxruntime"
    assert "TensorRT engine not used" in caplog.text and "could not deserialize" in caplog.text
    with pytest.raises(EngineIncompatible, match="could not deserialize"):
        backends.open_runner(spec, RunnerOptions("tensorrt", "cuda:0"), engine)


def test_auto_falls_back_when_tensorrt_has_no_usable_cuda(monkeypatch, tmp_path, caplog):
    trt, _ = fake_tensorrt.install(monkeypatch)
    spec, engine = tiny_engine(trt, tmp_path)
    trt._options["runtime_error"] = True  # trt.Runtime(...) raises TypeError, as pybind11 does on nullptr
    with caplog.at_level(logging.WARNING, logger="pslg"):
        assert backends.open_runner(spec, RunnerOptions("auto", "cuda:0"), engine).backend == "onnxruntime"
    assert "could not create a runtime" in caplog.text


def test_auto_falls_back_when_the_engine_signature_differs(fakes, tmp_path, caplog):
    """An engine built from another graph (its output is 'z') next to the set's graph (output 'y')."""
    _, engine = tiny_engine(fakes[0], tmp_path, output="z")
    spec = tiny_graph(tmp_path / "tiny.onnx")
    with pytest.raises(GraphSignatureError):
        backends.open_runner(spec, RunnerOptions("tensorrt", "cuda:0"), engine)
    with caplog.at_level(logging.WARNING, logger="pslg"):
        runner = backends.open_runner(spec, RunnerOptions("auto", "cuda:0"), engine)
    assert runner.backend == "onnxruntime" and "TensorRT engine not used" in caplog.text


# ---------------------------------------------------------------- real TensorRT and GPU (skipped without them)

@pytest.mark.tensorrt
@pytest.mark.skipif(not HAS_TRT, reason="tensorrt is not installed")
def test_built_engine_matches_onnxruntime(sam_tiny, tmp_path):
    import shutil

    from pslg.runtime.cli import main
    from pslg.runtime.commands.verify import synthetic_image, verify
    models = shutil.copytree(sam_tiny[0], tmp_path / "set")
    assert main(["build", "--models", str(models), "--precision", "fp16"]) == 0
    report = verify(modelset.open(models), RunnerOptions("tensorrt", "cuda:0"), synthetic_image(), "")
    assert report["sam_decoder"]["low_res_masks"]["mask_iou_min"] >= 0.99
    assert sys.modules.get("tensorrt") is not None


def _gpu_cudart():
    try:
        cudart = trt_backend.import_cudart()
        err, count = cudart.cudaGetDeviceCount()
    except Exception:
        return None
    return cudart if int(err) == 0 and count > 0 else None


@pytest.mark.tensorrt
@pytest.mark.skipif(_gpu_cudart() is None, reason="needs cuda-python and a CUDA GPU")
def test_cuda_wrappers_move_data_and_replay_a_graph():
    """The thin cuda-python wrappers the TensorRT runner uses, on a real GPU (no TensorRT needed)."""
    cudart = _gpu_cudart()
    info = trt_backend.device_info(types.SimpleNamespace(__version__="0.0.0"), cudart, 0)
    assert info.gpu_name and info.compute_capability.count(".") == 1
    stream = trt_backend._cuda_stream_create(cudart)
    host = trt_backend._cuda_malloc_host(cudart, 64 * 4, (64,), "float32")
    back = trt_backend._cuda_malloc_host(cudart, 64 * 4, (64,), "float32")
    dev_a, dev_b = trt_backend._cuda_malloc(cudart, 64 * 4), trt_backend._cuda_malloc(cudart, 64 * 4)
    host[:] = np.arange(64, dtype=np.float32)
    trt_backend._cuda_memcpy_async(cudart, dev_a, host, "h2d", stream)

    def device_copy():
        trt_backend._cuda_check(cudart.cudaMemcpyAsync(dev_b, dev_a, 64 * 4,
                                                       cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice, stream))

    graph = trt_backend._cuda_capture_graph(cudart, stream, device_copy)
    host[:] = 5.0
    trt_backend._cuda_memcpy_async(cudart, dev_a, host, "h2d", stream)
    trt_backend._cuda_graph_launch(cudart, graph, stream)
    trt_backend._cuda_memcpy_async(cudart, back, dev_b, "d2h", stream)
    trt_backend._cuda_stream_synchronize(cudart, stream)
    np.testing.assert_array_equal(back, np.full(64, 5.0, np.float32))
    trt_backend._cuda_check(cudart.cudaGraphExecDestroy(graph))
    for ptr in (dev_a, dev_b):
        trt_backend._cuda_check(cudart.cudaFree(ptr))
    for arr in (host, back):
        trt_backend._cuda_check(cudart.cudaFreeHost(arr.ctypes.data))
    trt_backend._cuda_check(cudart.cudaStreamDestroy(stream))


# ---------------------------------------------------------------- the name lists the fakes are built from

def test_extractor_reads_classes_members_enums_and_deprecations():
    from tests.fixtures.tensorrt import extract_api
    src = '''
    py::class_<IBase>(m, "Base");
    py::class_<IFoo, IBase, std::unique_ptr<IFoo, py::nodelete>>(m, "Foo", FooDoc::descr, py::module_local())
        .def(py::init<ILogger&>(), "logger"_a)
        .def("run", &IFoo::run, "stream_handle"_a, FooDoc::run) // a comment with "quotes"_a
        .def_property("core", &IFoo::getCore, utils::deprecateMember(&IFoo::setCore, "Deprecated in TensorRT 10.9."))
        .def_property_readonly("count", [](IFoo& self) { return self.count(); });
    py::enum_<Kind>(m, "Kind", KindDoc::descr).value("A", Kind::kA, KindDoc::A).value("B", Kind::kB, KindDoc::B);
    m.attr("a") = Kind::kA;
    '''
    docs = {"KindDoc::B": "\n    [DEPRECATED] Deprecated in TensorRT 10.12.\n", "FooDoc::descr": ":ivar count: [DEPRECATED] gone"}
    api = extract_api.Api()
    extract_api.parse_bindings(api, src, docs)
    assert api.lines() == ["class Base", "class Foo Base", "enum Kind", "member Foo.__init__ method logger",
                           "member Foo.core property", "member Foo.count readonly", "member Foo.run method stream_handle",
                           "value Kind.A", "value Kind.B", "attr a", "deprecated Foo.core= Deprecated in TensorRT 10.9.",
                           "deprecated Foo.count gone", "deprecated Kind.B Deprecated in TensorRT 10.12."]


@pytest.mark.parametrize("name, commit", [("tensorrt-10.3.0.txt", "c5b9de37f7ef9034e2efc621c664145c7c12436e"),
                                          ("tensorrt-10.16.txt", "52399f555c2f80cb690a4a558b604e1a5f227e7c"),
                                          ("tensorrt-11.0.txt", "771d8efdf7f9d7b1eeb0864eb05d4dd8a7755bb5")])
def test_committed_lists_name_their_source(name, commit):
    from tests.fake_api import LISTS, ApiList
    assert commit in (LISTS / name).read_text().splitlines()[0]
    api = ApiList(LISTS / name)
    assert api.member("ICudaEngine", "get_tensor_name") and "Runtime" in api.classes
