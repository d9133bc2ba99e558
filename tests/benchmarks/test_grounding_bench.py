"""``python -m pslg.benchmarks.grounding``: ONNX Runtime vs PyTorch on the same weights and input, per graph."""
import json

import pytest

from pslg.benchmarks import grounding as bench
from pslg.runtime.errors import ParameterError
from tests.lqvg_support import DATA


@pytest.mark.slow
def test_benchmark_reports_both_engines_per_graph(tmp_path, capsys, lqvg_small):
    report_file = tmp_path / "report.json"
    code = bench.main(["--models", str(lqvg_small), "--image", str(DATA / "marina.png"),
                       "--text", "two ships docked near the bridge",
                       "--runs", "1", "--warmup", "0", "--json", str(report_file)])
    assert code == 0
    report = json.loads(report_file.read_text())
    assert report["image_size"] == 1024 and set(report["stages"]) == {"text", "grounding"}
    for name, stage in report["stages"].items():
        assert stage["onnxruntime_ms"] > 0 and stage["pytorch_ms"] > 0, name
        assert stage["pytorch_over_onnxruntime"] == pytest.approx(stage["pytorch_ms"] / stage["onnxruntime_ms"])
        assert stage["max_abs_diff"] < 1e-3, f"{name}: the PyTorch model is not the exported one"
    printed = capsys.readouterr().out
    assert "pytorch/onnxruntime" in printed and "grounding" in printed


def test_benchmark_refuses_bad_options(tmp_path, capsys):
    with pytest.raises(ParameterError, match="runs must be >= 1"):
        bench.benchmark(tmp_path, runs=0)
    assert bench.main(["--models", str(tmp_path / "absent")]) != 0
    assert "error: ModelSetNotFound" in capsys.readouterr().err
