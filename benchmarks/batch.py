"""Batch throughput: the local engine vs Ray with one and with N workers, on the same jobs, in one run.

    python -m pslg.benchmarks.batch --models DIR [--workers 2] [--jobs-per-image 400] [--mode classical] [--json OUT]

The jobs are boxes of real objects (the tree crowns of the shipped forest
images, each image's boxes repeated to ``--jobs-per-image``). Each
configuration runs into a fresh output folder after its workers are open and
warm (pipeline start-up is not timed); throughput is jobs per second over the
whole batch. Ray runs on a local cluster this command starts (``--address``
to join one instead). ``--kernel-threads`` sets each worker's Numba threads.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

from pslg import data
from pslg.runtime import RunnerOptions
from pslg.runtime.batch.batch import run_batch
from pslg.runtime.batch.worker import WorkerConfig
from pslg.runtime.files import write_text

from .kernels import read_boxes
from .timing import table

IMAGES = ("osbs_029", "soap_061")


def write_jobs(path, jobs_per_image, mode):
    lines = []
    for name in IMAGES:
        boxes = read_boxes(data.path(f"{name}.xml"), min_side=16)
        for i in range(jobs_per_image):
            lines.append(json.dumps({"id": f"{name}-{i}", "image": str(data.path(f"{name}.png")),
                                     "box": boxes[i % len(boxes)], "mode": mode}))
    write_text(path, "\n".join(lines) + "\n")
    return len(lines)


def measure(models, jobs, work, configs, runner):
    """``{label: summary}`` for each (label, engine, workers, options) configuration, in order."""
    results = {}
    for label, engine, workers, options in configs:
        config = WorkerConfig(str(models), str(work / label.replace(" ", "-")), runner, kernel_threads=1)
        summary = run_batch(jobs, config, engine, workers, chunk=8, progress=False, **options)
        if summary.failed:
            raise SystemExit(f"{label}: {summary.failed} jobs failed: {summary.failures[0]['error']}")
        results[label] = summary.to_json()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pslg.benchmarks.batch", description=__doc__.splitlines()[0])
    parser.add_argument("--models", required=True, help="model-set folder (classical mode needs no SAM)")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers of the parallel configuration")
    parser.add_argument("--jobs-per-image", type=int, default=400)
    parser.add_argument("--mode", default="classical")
    parser.add_argument("--address", help="Ray cluster to join (default: start a local one with --workers CPUs)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    import ray
    started = not ray.is_initialized()   # a caller's Ray session is used as it is, and left running
    if started:
        ray.init(address=args.address, num_cpus=None if args.address else args.workers, include_dashboard=False,
                 log_to_driver=False, logging_level="WARNING")
    runner = RunnerOptions(device="cpu", threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        count = write_jobs(work / "jobs.jsonl", args.jobs_per_image, args.mode)
        configs = [("local 1", "local", 1, {}), ("ray 1", "ray", 1, {"address": args.address}),
                   (f"ray {args.workers}", "ray", args.workers, {"address": args.address})]
        results = measure(args.models, work / "jobs.jsonl", work, configs, runner)
    if started:
        ray.shutdown()
    local, one, many = (results[c[0]]["jobs_per_s"] for c in configs)
    report = {"jobs": count, "mode": args.mode, "workers": args.workers, "runs": results,
              "ray_overhead_vs_local": local / one - 1.0, f"ray_{args.workers}_vs_ray_1": many / one}
    print(f"{count} jobs, mode {args.mode}, each worker on 1 ONNX Runtime, 1 kernel and 1 OpenCV thread")
    print(table([[label, r["jobs_per_s"], r["seconds"], r["startup_seconds"]] for label, r in results.items()],
                ["engine, workers", "jobs/s", "seconds", "start-up s (not timed)"]))
    print(f"Ray overhead vs local (1 worker): {100 * report['ray_overhead_vs_local']:.1f} %; "
          f"ray {args.workers} workers / 1 worker: {report[f'ray_{args.workers}_vs_ray_1']:.2f}x")
    if args.json:
        write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
