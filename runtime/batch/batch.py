"""Run a jobs file: skip what earlier runs finished, run the rest on an engine, record each job once, summarise."""
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np
from tqdm import tqdm

from .. import modelset
from . import jobs as jobfile
from .engines import ENGINES
from .store import ResultsFile


@dataclass
class Summary:
    """What a run did: jobs done and failed in this run, skipped as finished before, stage p50s, and
    throughput: jobs per second from the first task sent to the last answer (``seconds``), the workers'
    start-up (opening and warming their pipelines) apart in ``startup_seconds``."""

    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    failed_before: int = 0
    seconds: float = 0.0
    startup_seconds: float = 0.0
    stage_p50_ms: Dict[str, float] = field(default_factory=dict)
    failures: List[dict] = field(default_factory=list)

    @property
    def jobs_per_s(self):
        return (self.done + self.failed) / self.seconds if self.seconds else 0.0

    def to_json(self):
        return {"total": self.total, "done": self.done, "failed": self.failed, "skipped": self.skipped,
                "failed_before": self.failed_before, "seconds": self.seconds,
                "startup_seconds": self.startup_seconds, "jobs_per_s": self.jobs_per_s,
                "stage_p50_ms": self.stage_p50_ms}

    def render(self):
        lines = [f"{self.done} done, {self.failed} failed, {self.skipped} skipped (finished before)"
                 + (f", {self.failed_before} failed before (not retried; --retry-failed runs them)"
                    if self.failed_before else "")
                 + f"; {self.jobs_per_s:.2f} jobs/s over {self.seconds:.1f} s (after {self.startup_seconds:.1f} s of "
                   "worker start-up)"]
        if self.stage_p50_ms:
            lines.append("per-stage p50 ms: " + ", ".join(f"{k} {v:.1f}" for k, v in self.stage_p50_ms.items()))
        lines += [f"  failed: {f['id']}: {f['error']['name']} [{f['error']['code']}]: {f['error']['message']}"
                  for f in self.failures[:10]]
        return "\n".join(lines)


def run_batch(jobs_path, config, engine="local", workers=1, chunk=16, retry_failed=False, progress=True,
              **engine_options) -> Summary:
    """Run every job of ``jobs_path`` not finished before; ``config`` is the workers' WorkerConfig."""
    jobs = jobfile.read_jobs(jobs_path)
    modelset.open(config.models, verify=False)  # a bad model set is one error here, not one per worker
    with ResultsFile(config.out, retry_failed) as results:
        pending = [j for j in jobs if j.id not in results.records]
        before = [results.records[j.id] for j in jobs if j.id in results.records]
        summary = Summary(len(jobs), skipped=sum(r["status"] == "ok" for r in before),
                          failed_before=sum(r["status"] != "ok" for r in before))
        if not pending:
            return summary
        stages = {}
        t0 = time.perf_counter()
        runner = ENGINES[engine](config, workers, **engine_options)
        t1 = time.perf_counter()
        summary.startup_seconds = t1 - t0
        try:
            with tqdm(total=len(pending), unit="job", desc=f"batch ({engine}, {runner.workers} workers)",
                      file=sys.stderr, disable=not progress) as bar:
                for records in runner.run(jobfile.tasks(pending, chunk)):
                    for record in records:
                        results.add(record)
                        if record["status"] == "ok":
                            summary.done += 1
                            for stage, ms in record.get("timings_ms", {}).items():
                                stages.setdefault(stage, []).append(ms)
                        else:
                            summary.failed += 1
                            summary.failures.append(record)
                    bar.update(len(records))
            summary.seconds = time.perf_counter() - t1
        finally:
            runner.close()
        summary.stage_p50_ms = {k: float(np.median(v)) for k, v in stages.items()}
        return summary
