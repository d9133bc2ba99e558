"""TensorRT backend logic, tested without TensorRT; the real engine path is skipped without it."""
import ctypes
import dataclasses
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from pslg.runtime import RunnerOptions, modelset
from pslg.runtime.backends import tensorrt as trt_backend
from pslg.runtime.backends.tensorrt import (BufferPlan, DeviceInfo, TensorRTRunner, check_compatible,
                                            check_profile, compatibility_problems)
from pslg.runtime.errors import BackendUnavailable, EngineIncompatible, ProfileError
from pslg.runtime.pipeline import Pipeline
from pslg.runtime.specs import EngineSpec, GraphSpec, ShapeRange, TensorSpec

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
ENTRY = EngineSpec("sam_decoder", Path("/models/aerial/sam_decoder.fp16.engine"), "fp16", "10.3.0", "Orin", "8.7",
                   {}, "abc")
HERE = DeviceInfo("10.3.0", "Orin", "8.7")


def test_same_device_is_compatible():
    assert compatibility_problems(ENTRY, HERE, "abc") == []


@pytest.mark.parametrize("entry_change, device, sha, expected", [
    ({}, DeviceInfo("10.4.0", "Orin", "8.7"), "abc", "built with TensorRT 10.3.0, this is TensorRT 10.4.0"),
    ({}, DeviceInfo("10.3.0", "RTX 4090", "8.9"), "abc", "compute capability 8.7"),
    ({}, HERE, "other", "ONNX graph changed"),
    ({"version_compatible": True}, DeviceInfo("10.2.0", "Orin", "8.7"), "abc", ">= 10.3.0"),
    ({"version_compatible": True}, DeviceInfo("11.0.0", "Orin", "8.7"), "abc", "TensorRT 10.x runtime"),
])
def test_incompatible_engines_are_refused_with_a_rebuild_hint(entry_change, device, sha, expected):
    entry = dataclasses.replace(ENTRY, **entry_change)
    assert any(expected in p for p in compatibility_problems(entry, device, sha))
    with pytest.raises(EngineIncompatible, match="pslg build --models /models/aerial --graphs sam_decoder"):
        check_compatible(entry, device, sha)


def test_version_compatible_engine_runs_on_a_newer_minor():
    entry = dataclasses.replace(ENTRY, version_compatible=True)
    assert compatibility_problems(entry, DeviceInfo("10.7.1", "Orin", "8.7"), "abc") == []


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


class FakeCudart:
    """Host memory standing in for device memory; counts allocations."""

    class cudaMemcpyKind:
        cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost = 1, 2

    def __init__(self):
        self.blocks, self.mallocs = {}, 0

    def cudaStreamCreate(self):
        return 0, 7

    def cudaStreamDestroy(self, stream):
        return (0,)

    def cudaMalloc(self, n):
        self.mallocs += 1
        block = np.zeros(n, np.uint8)
        self.blocks[block.ctypes.data] = block
        return 0, block.ctypes.data

    cudaMallocHost = cudaMalloc

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):
        ctypes.memmove(dst, src, n)
        return (0,)

    def cudaStreamSynchronize(self, stream):
        return (0,)

    def cudaFree(self, ptr):
        self.blocks.pop(ptr, None)
        return (0,)

    cudaFreeHost = cudaFree


class FakeContext:
    """Executes 'y = 2 * x' between the addresses it was given."""

    def __init__(self):
        self.shapes, self.addresses, self.runs = {}, {}, 0

    def set_input_shape(self, name, shape):
        self.shapes[name] = shape
        return True

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr

    def execute_async_v3(self, stream):
        self.runs += 1
        n = int(np.prod(self.shapes["x"]))
        x = np.ctypeslib.as_array((ctypes.c_float * n).from_address(self.addresses["x"]))
        y = np.ctypeslib.as_array((ctypes.c_float * n).from_address(self.addresses["y"]))
        y[:] = 2 * x
        return True


def test_runner_allocates_once_per_shape_and_checks_profile(monkeypatch, tmp_path):
    spec = GraphSpec("double", tmp_path / "g.onnx", (TensorSpec("x", "float32", ("n", 4)),),
                     (TensorSpec("y", "float32", ("n", 4)),))
    cudart, context = FakeCudart(), FakeContext()
    monkeypatch.setattr(trt_backend, "import_tensorrt", lambda: types.SimpleNamespace())
    monkeypatch.setattr(trt_backend, "import_cudart", lambda: cudart)
    monkeypatch.setattr(trt_backend, "_trt_deserialize_cuda_engine", lambda trt, engine: object())
    monkeypatch.setattr(trt_backend, "_trt_create_execution_context", lambda engine: context)
    engine = EngineSpec("double", tmp_path / "g.engine", "fp32", "10.3.0", "Orin", "8.7",
                        {"x": ShapeRange((1, 4), (2, 4), (8, 4))}, "abc")
    runner = TensorRTRunner(spec, engine)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_array_equal(runner.run({"x": x})["y"], 2 * x)
    first = cudart.mallocs
    np.testing.assert_array_equal(runner.run({"x": x + 1})["y"], 2 * (x + 1))
    assert cudart.mallocs == first == 4  # device + pinned host, for x and y, once
    runner.run({"x": np.ones((3, 4), np.float32)})
    assert cudart.mallocs == 8  # a new shape gets its own buffers
    with pytest.raises(ProfileError):
        runner.run({"x": np.ones((9, 4), np.float32)})
    assert context.runs == 3
    runner.close()
    assert not cudart.blocks


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
    for ptr in (dev_a, dev_b):
        cudart.cudaFree(ptr)
    for arr in (host, back):
        cudart.cudaFreeHost(arr.ctypes.data)
