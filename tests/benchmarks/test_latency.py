"""``pslg bench``: the per-stage table and its JSON, one backend and two compared in one run."""
import json

from pslg.runtime.cli import main


def test_bench_prints_table_and_writes_json(pslg_small, data_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--models", str(pslg_small), "--image", str(data_dir / "osbs_029.png"), "--text", "tree",
                 "--runs", "2", "--warmup", "1", "--device", "cpu", "--compare-backend", "onnxruntime",
                 "--compare-device", "cpu", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert len(report["runs"]) == 2 and report["total_p50_ratio"] > 0
    run = next(iter(report["runs"].values()))
    assert set(run["stages"]) == {"letterbox", "tokenise", "text_encoder", "grounding", "sam_encoder", "sam_decoder", "cfpg",
                                  "mbo", "total"}
    assert all(s["n"] == 2 and s["p50"] <= s["p90"] <= s["p99"] for s in run["stages"].values())
    assert run["cold_start"]["first_query_ms"] > 0 and run["peak_rss_mb"] > 0
    table = capsys.readouterr().out
    assert "text_encoder" in table and "cold start" in table and "p99" in table
