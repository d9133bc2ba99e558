"""``pslg batch``: the jobs file, one bad job failing alone, resuming, and a Ray cluster of 2 CPUs (with a kill)."""
import json
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from pslg.runtime.batch import jobs as jobfile
from pslg.runtime.batch.batch import run_batch
from pslg.runtime.batch.store import RESULTS, ResultsFile
from pslg.runtime.batch.worker import WorkerConfig
from pslg.runtime.cli import main
from pslg.runtime.errors import BoxError, ImageError, JobsFailed, JobsFileError, MissingDependency
from tests.geo_support import OSBS_ORIGIN, UTM17
from tests.kernel_cases import boxes
from tests.runner_options import CPU


def crowns(data_dir, name, count):
    return [list(b) for b in boxes(name)][:count]


def write_jobs(path, data_dir, per_image=6, mode="classical", bad=True):
    jobs = [{"id": f"{name}-{i}", "image": str(data_dir / f"{name}.png"), "box": box, "mode": mode}
            for name in ("osbs_029", "soap_061") for i, box in enumerate(crowns(data_dir, name, per_image))]
    if bad:
        jobs += [{"id": "no-image", "image": "missing.png", "box": [1, 1, 9, 9]},
                 {"id": "box-outside", "image": str(data_dir / "osbs_029.png"), "box": [500, 500, 600, 600]}]
    path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    return jobs


def records(out):
    return [json.loads(line) for line in (out / RESULTS).read_text().splitlines()]


def mask_of(folder):
    return cv2.imread(str(folder / "mask.png"), cv2.IMREAD_UNCHANGED) > 0


@pytest.mark.parametrize("lines, message", [
    (['{"id": 1, "image": "a.png", "box": [1, 2, 3, 4]}', '{"id": 1, "image": "b.png", "text": "x"}'],
     "line 2: id '1' is already the id of line 1"),
    (['{"image": "a.png", "box": [1, 2, 3, 4]}'], "line 1: 'id' must be"),
    (['{"id": "a/../b", "image": "a.png", "box": [1, 2, 3, 4]}'], "line 1: 'id' must be"),
    (['{"id": "a", "image": "a.png"}'], "exactly one of 'text' and 'box'"),
    (['{"id": "a", "image": "a.png", "box": [1, 2]}'], "'box' must be a list of 4"),
    (['{"id": "a", "image": "a.png", "text": "x", "colour": 1}'], "unknown keys ['colour']"),
    (['not json'], "line 1: not JSON"),
    ([""], "holds no job"),
])
def test_a_malformed_jobs_file_is_refused_naming_the_line(tmp_path, lines, message):
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(JobsFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        jobfile.read_jobs(path)


def test_tasks_group_by_image_and_keep_file_order(data_dir):
    jobs = [jobfile.Job(str(i), data_dir / f"{'ab'[i % 2]}.png", box=(0, 0, 1, 1)) for i in range(7)]
    tasks = jobfile.tasks(jobs, chunk=2)
    assert [[j.id for j in t] for t in tasks] == [["0", "2"], ["4", "6"], ["1", "3"], ["5"]]


def test_local_batch_fails_bad_jobs_alone_and_resumes(sam_tiny, data_dir, tmp_path, capsys):
    jobs = write_jobs(tmp_path / "jobs.jsonl", data_dir)
    out = tmp_path / "out"
    argv = ["batch", "--models", str(sam_tiny[0]), "--jobs", str(tmp_path / "jobs.jsonl"), "--out", str(out),
            "--device", "cpu"]
    assert main(argv) == JobsFailed.code
    first = {r["id"]: r for r in records(out)}
    assert set(first) == {j["id"] for j in jobs}
    assert first["no-image"]["error"]["code"] == ImageError.code
    assert first["box-outside"]["error"]["code"] == BoxError.code
    good = [j["id"] for j in jobs[:-2]]
    assert all(first[i]["status"] == "ok" and (out / i / "mask.png").is_file() for i in good)
    stamps = {i: (out / i / "mask.png").stat().st_mtime_ns for i in good}
    assert "2 failed" in capsys.readouterr().out
    assert main(argv) == JobsFailed.code                  # again: nothing is redone, failures are kept
    assert records(out) == list(first.values())
    assert {i: (out / i / "mask.png").stat().st_mtime_ns for i in good} == stamps
    assert f"0 done, 0 failed, {len(good)} skipped" in capsys.readouterr().out
    (tmp_path / "missing.png").write_bytes((data_dir / "soap_061.png").read_bytes())
    assert main(argv + ["--retry-failed"]) == JobsFailed.code   # one of the two failures is fixed now
    again = records(out)
    assert sorted(r["id"] for r in again) == sorted(first) and len(again) == len(first)
    assert {r["id"]: r["status"] for r in again}["no-image"] == "ok"


def test_a_crash_leaves_no_half_job_that_counts_as_done(sam_tiny, data_dir, tmp_path):
    write_jobs(tmp_path / "jobs.jsonl", data_dir, per_image=2, bad=False)
    out = tmp_path / "out"
    config = WorkerConfig(str(sam_tiny[0]), str(out), CPU, warmup=False)
    run_batch(tmp_path / "jobs.jsonl", config, progress=False)
    lines = (out / RESULTS).read_text().splitlines(keepends=True)
    # a run that died: osbs_029-1 was renamed into place but not recorded, soap_061-0's folder only half written
    # (still under its temporary name), and the last line was cut mid-write
    (out / RESULTS).write_text(lines[0] + lines[2][:25])
    (out / "soap_061-0").rename(out / ".tmp-soap_061-0-999")
    summary = run_batch(tmp_path / "jobs.jsonl", config, progress=False)
    done = {r["id"]: r for r in records(out)}
    assert sorted(done) == ["osbs_029-0", "osbs_029-1", "soap_061-0", "soap_061-1"]
    assert done["osbs_029-1"].get("resumed") and not done["soap_061-0"].get("resumed")
    assert summary.skipped == 1 and summary.done == 3 and (out / "soap_061-0" / "mask.png").is_file()
    with ResultsFile(out) as store:
        assert len(store.records) == 4


def test_a_georeferenced_job_writes_the_geo_outputs(sam_tiny, data_dir, tmp_path):
    pytest.importorskip("rasterio")
    x1, y1, x2, y2 = crowns(data_dir, "osbs_029", 1)[0]
    (x0, y0), px = OSBS_ORIGIN, 0.1
    utm = [x0 + px * x1, y0 - px * y2, x0 + px * x2, y0 - px * y1]
    (tmp_path / "jobs.jsonl").write_text(
        json.dumps({"id": "map", "image": str(data_dir / "osbs_029.tif"), "box": utm, "box_crs": UTM17,
                    "mode": "classical"}) + "\n"
        + json.dumps({"id": "pixels", "image": str(data_dir / "osbs_029.png"), "box": [x1, y1, x2, y2],
                      "mode": "classical"}) + "\n")
    out = tmp_path / "out"
    summary = run_batch(tmp_path / "jobs.jsonl", WorkerConfig(str(sam_tiny[0]), str(out), CPU, warmup=False),
                        progress=False)
    assert summary.done == 2
    written = {p.name for p in (out / "map").iterdir()}
    assert {"mask.tif", "mask.geojson", "mask.gpkg", "mask.png", "result.json"} <= written
    np.testing.assert_array_equal(mask_of(out / "map"), mask_of(out / "pixels"))


def test_without_ray_the_ray_engine_names_the_extra(sam_tiny, data_dir, tmp_path):
    write_jobs(tmp_path / "jobs.jsonl", data_dir, per_image=1, bad=False)
    code = ("import sys; sys.modules['ray'] = None\nfrom pslg.runtime.cli import main\n"
            f"sys.exit(main(['batch', '--models', {str(sam_tiny[0])!r}, '--jobs', {str(tmp_path / 'jobs.jsonl')!r},"
            f" '--out', {str(tmp_path / 'out')!r}, '--engine', 'ray']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == MissingDependency.code and "pslg-sam[ray]" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_ray_with_two_workers_gives_pslg_runs_masks(ray_cluster, sam_tiny, data_dir, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", data_dir, per_image=3, mode="full")
    out = tmp_path / "out"
    assert main(["batch", "--models", str(sam_tiny[0]), "--jobs", str(tmp_path / "jobs.jsonl"), "--out", str(out),
                 "--engine", "ray", "--workers", "2", "--chunk", "2", "--device", "cpu"]) == JobsFailed.code
    done = {r["id"]: r for r in records(out)}
    assert len(done) == len(jobs) and len({r["worker"] for r in done.values()}) == 2
    assert done["box-outside"]["error"]["code"] == BoxError.code
    for job in jobs[:-2:2]:
        single = tmp_path / "run" / job["id"]
        assert main(["run", job["image"], "--models", str(sam_tiny[0]), "--box", ",".join(map(str, job["box"])),
                     "--mode", "full", "--out", str(single), "--device", "cpu", "--no-warmup"]) == 0
        np.testing.assert_array_equal(mask_of(out / job["id"]), mask_of(single))


@pytest.mark.slow
def test_a_worker_killed_mid_batch_leaves_every_job_done_once(ray_cluster, sam_tiny, data_dir, tmp_path):
    psutil = pytest.importorskip("psutil")
    jobs = write_jobs(tmp_path / "jobs.jsonl", data_dir, per_image=10, mode="full", bad=False)
    out = tmp_path / "out"
    config = WorkerConfig(str(sam_tiny[0]), str(out), CPU)
    finished = {}
    thread = threading.Thread(target=lambda: finished.update(summary=run_batch(
        tmp_path / "jobs.jsonl", config, "ray", workers=2, chunk=5, progress=False)))
    thread.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not (out / RESULTS).is_file() or len(records(out)) < 2):
        time.sleep(0.05)
    victims = [p for p in psutil.process_iter(["cmdline"]) if "ray::Worker" in " ".join(p.info["cmdline"] or [])]
    assert victims, "no Ray worker process found"
    victims[0].kill()
    thread.join(timeout=600)
    assert not thread.is_alive() and finished["summary"].failed == 0
    ids = [r["id"] for r in records(out)]
    assert sorted(ids) == sorted(j["id"] for j in jobs) and len(ids) == len(set(ids))
    assert all((out / i / "mask.png").is_file() for i in ids) and not list(out.glob(".tmp-*"))
