"""Choosing a backend: options, ONNX Runtime providers per device, and the ``auto`` fallback with its warning."""
import logging
from pathlib import Path

import pytest

from pslg.runtime import backends, modelset
from pslg.runtime.backends import RunnerOptions
from pslg.runtime.backends import onnxruntime as ort_backend
from pslg.runtime.errors import BackendUnavailable, ParameterError
from pslg.runtime.specs import EngineSpec

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


@pytest.mark.parametrize("device, available, expected", [
    ("cpu", [CUDA, CPU], [CPU]),
    ("auto", [CPU], [CPU]),
    ("auto", [CUDA, CPU], [(CUDA, {"device_id": 0}), CPU]),
    ("cuda", [CUDA, CPU], [(CUDA, {"device_id": 0}), CPU]),
    ("cuda:1", [CUDA, CPU], [(CUDA, {"device_id": 1}), CPU]),
    ("trt-ep:2", [TRT, CUDA, CPU], [(TRT, {"device_id": 2}), (CUDA, {"device_id": 2}), CPU]),
])
def test_providers_follow_the_device_and_its_index(device, available, expected):
    assert ort_backend.select_providers(device, available) == expected


def test_a_missing_provider_names_the_gpu_build():
    with pytest.raises(BackendUnavailable, match=r"pslg-sam\[gpu\]"):
        ort_backend.select_providers("trt-ep", [CUDA, CPU])


@pytest.mark.parametrize("kwargs, message", [
    ({"backend": "tflite"}, "backend must be one of"),
    ({"device": "tpu"}, "device must be"),
    ({"device": "cuda:x"}, "device must be"),
    ({"device": "cpu:1"}, "only cuda and trt-ep"),
    ({"threads": -1}, "threads must be"),
    ({"threads": 2.5}, "threads must be"),
    ({"threads": True}, "threads must be"),
    ({"cuda_graph": "yes"}, "cuda_graph must be"),
    ({"backend": "tensorrt", "device": "cpu"}, "runs on a GPU"),
])
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        RunnerOptions(**kwargs)


class FakeOrt:
    """Records the device each ONNX Runtime runner was asked for; refuses CUDA like a CPU-only wheel when told."""

    opened, cpu_only = [], False

    def __init__(self, spec, device, threads):
        if self.cpu_only and device.startswith("cuda"):
            raise BackendUnavailable(f"device {device!r} needs CUDAExecutionProvider")
        self.spec, self.device, self.backend = spec, device, "onnxruntime"
        FakeOrt.opened.append(device)

    def describe(self):
        return self.spec.inputs, self.spec.outputs

    def close(self):
        pass


@pytest.fixture
def decoder_with_engine(sam_tiny, monkeypatch):
    spec = modelset.open(sam_tiny[0]).graph("sam_decoder")
    engine = EngineSpec("sam_decoder", Path(sam_tiny[0]) / "sam_decoder.fp16.engine", "fp16", "10.3.0", "Orin", "8.7",
                        {}, spec.sha256)
    FakeOrt.opened, FakeOrt.cpu_only = [], False
    monkeypatch.setattr(ort_backend, "OrtRunner", FakeOrt)
    return spec, engine


@pytest.mark.parametrize("device, onnxruntime_has_cuda, opened", [
    ("cuda:1", True, "cuda:1"), ("auto", True, "auto"), ("cuda:1", False, "cpu")])
def test_auto_falls_back_on_the_same_gpu_and_says_why(decoder_with_engine, caplog, device, onnxruntime_has_cuda,
                                                        opened):
    spec, engine = decoder_with_engine
    FakeOrt.cpu_only = not onnxruntime_has_cuda
    with caplog.at_level(logging.WARNING, logger="pslg"):
        runner = backends.open_runner(spec, RunnerOptions("auto", device), engine)
    assert runner.backend == "onnxruntime" and FakeOrt.opened == [opened]
    assert "sam_decoder: TensorRT engine not used" in caplog.text and "TensorRT is not installed" in caplog.text
    assert ("running on the CPU" in caplog.text) == (not onnxruntime_has_cuda)


def test_tensorrt_asked_for_never_falls_back(decoder_with_engine):
    spec, engine = decoder_with_engine
    with pytest.raises(BackendUnavailable, match="TensorRT is not installed"):
        backends.open_runner(spec, RunnerOptions("tensorrt", "cuda:0"), engine)
    assert FakeOrt.opened == []


def test_cpu_device_never_tries_the_engine(decoder_with_engine, caplog):
    spec, engine = decoder_with_engine
    backends.open_runner(spec, RunnerOptions("auto", "cpu"), engine)
    assert FakeOrt.opened == ["cpu"] and "TensorRT" not in caplog.text
