"""A quick run of the kernel benchmark (boats, crowns, 200 px boxes): its JSON, and the agreements it reports."""
import json
import subprocess
import sys

import pytest

pytest.importorskip("maxflow")
pytest.importorskip("sklearn")

SECTIONS = {"machine", "repeats", "mbo_full", "classical", "cfpg", "maxflow", "kmeans_k2", "kmeans_k5", "first_call",
            "goals", "table"}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "kernels.json"
    proc = subprocess.run([sys.executable, "-m", "pslg.benchmarks.kernels", "--quick", "--sizes", "200",
                           "--repeats", "1", "--json", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text()), proc.stdout


@pytest.mark.slow
def test_sections_sizes_and_table(result):
    data, stdout = result
    assert set(data) == SECTIONS
    for section in ("mbo_full", "classical", "cfpg"):
        assert set(data[section]["sizes"]) == {"small", "200"}
        for size in data[section]["sizes"].values():
            timed = [v for v in size.values() if isinstance(v, dict)]
            assert timed and all(0 < t["p50_ms"] <= t["p99_ms"] for t in timed)
    assert {r["image"] for r in data["mbo_full"]["cases"] if r["size"] == "small"} >= {"marina", "osbs_029"}
    rows = [line for line in data["table"].splitlines() if line.startswith("| small") or line.startswith("| 200")]
    assert len(rows) == 2 and data["table"] in stdout
    assert set(data["goals"]) == {"full_vs_grabcut", "full_iou", "classical_share", "classical_iou",
                                  "classical_700_vs_grabcut_rect", "cfpg_700_vs_kmeans"}


@pytest.mark.slow
def test_full_mode_agrees_with_opencv_and_across_thread_counts(result):
    cases = result[0]["mbo_full"]["cases"]
    assert all(r["iou"] >= 0.95 for r in cases), [(r["box"], r["iou"]) for r in cases if r["iou"] < 0.95]
    assert sorted(r["iou"] for r in cases)[len(cases) // 2] >= 0.98
    assert all(r["same_mask_1_and_n_threads"] for r in cases)
    assert all(r["band_px"] < r["window_px"] for r in cases)


@pytest.mark.slow
def test_classical_mode_finds_the_boxed_objects(result):
    small = [r for r in result[0]["classical"]["cases"] if r["size"] == "small"]
    assert all(r["share"] >= 0.1 for r in small)
    assert all(r["iou"] >= 0.9 for r in small if r["iou"] is not None)
    assert any(r["rect_share"] < 0.1 for r in small)           # what the core start is for


@pytest.mark.slow
def test_maxflow_equals_pymaxflow_and_kmeans_runs(result):
    data = result[0]
    assert all(r["flow_rel_diff"] <= 1e-9 and r["cut_px_differing"] == 0 for r in data["maxflow"]["cases"])
    assert data["kmeans_k2"]["k"] == 2 and data["kmeans_k5"]["k"] == 5
    assert all(r["pixels"] > 0 for r in data["kmeans_k2"]["cases"])
    first = data["first_call"]
    assert first["warmup_s"] > 0 and first["first_after_warmup_ms"] > 0
