"""python -m pslg.benchmarks.batch: one run of local, Ray 1 and Ray N on the same jobs, start-up kept out."""
import json

from pslg.benchmarks.batch import main


def test_one_run_reports_every_configuration(ray_cluster, sam_tiny, tmp_path, capsys):
    assert main(["--models", str(sam_tiny[0]), "--workers", "2", "--jobs-per-image", "5",
                 "--json", str(tmp_path / "batch.json")]) == 0
    report = json.loads((tmp_path / "batch.json").read_text())
    assert report["jobs"] == 10 and list(report["runs"]) == ["local 1", "ray 1", "ray 2"]
    for run in report["runs"].values():
        assert run["done"] == 10 and run["failed"] == 0 and run["skipped"] == 0
        assert run["seconds"] > 0 and run["startup_seconds"] > 0
        assert abs(run["jobs_per_s"] - 10 / run["seconds"]) < 1e-6
    one, two = report["runs"]["ray 1"]["jobs_per_s"], report["runs"]["ray 2"]["jobs_per_s"]
    assert abs(report["ray_2_vs_ray_1"] - two / one) < 1e-9
    assert "Ray overhead vs local (1 worker)" in capsys.readouterr().out
    assert ray_cluster.is_initialized()          # the tests' cluster is left running for the others
