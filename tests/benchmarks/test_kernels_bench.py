"""Smoke run of the kernel benchmark: one repeat, two boxes per image; checks the JSON it writes."""
import json
import math
import subprocess
import sys

import pytest

pytest.importorskip("maxflow")
pytest.importorskip("sklearn")

RATIOS = {"mbo_window_vs_grabcut", "mbo_reused_flow_vs_fresh", "mbo_vs_grabcut_whole_image", "maxflow_vs_pymaxflow",
          "maxflow_search_only_vs_pymaxflow", "kmeans_vs_opencv",
          "kmeans_vs_sklearn", "kmeans_k5_vs_opencv", "first_call_vs_steady", "first_call_after_warmup_vs_steady"}


@pytest.mark.slow
def test_quick_run_writes_every_ratio(tmp_path):
    out = tmp_path / "kernels.json"
    proc = subprocess.run([sys.executable, "-m", "pslg.benchmarks.kernels", "--quick", "--repeats", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert set(result["ratios"]) == RATIOS
    assert all(math.isfinite(v) and v > 0 for v in result["ratios"].values())
    assert set(result["goals"]) <= RATIOS
    for goal in result["goals"].values():
        assert goal["met"] == (goal["measured"] >= goal["goal"])
    for section in ("mbo_window", "mbo_whole_image", "maxflow"):
        rows = result[section]["cases"]
        assert rows and all(r["ours_ms"] > 0 and r["theirs_ms"] > 0 for r in rows)
    assert {r["image"] for r in result["mbo_window"]["cases"]} == {"marina", "osbs_029", "soap_061"}
    ious = [r["iou"] for r in result["mbo_window"]["cases"]]
    assert all(0 <= v <= 1 for v in ious) and sorted(ious)[len(ious) // 2] >= 0.98
    assert all(r["flow_rel_diff"] <= 1e-6 for r in result["maxflow"]["cases"])
    assert result["kmeans_k2"]["k"] == 2 and result["kmeans_k5"]["k"] == 5
    first = result["first_call"]
    assert first["first_ms"] > 0 and first["steady_ms"] > 0 and first["warmup_s"] > 0
    assert "missed" in proc.stdout or all(g["met"] for g in result["goals"].values())
