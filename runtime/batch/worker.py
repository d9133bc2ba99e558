"""A batch worker: one pipeline, opened and warmed once, running tasks (jobs of one image) and writing outputs.

Every job ends in one record: ``{"id", "status": "ok" | "error", "error":
{"code", "name", "message"}, "outputs": [...], "timings_ms": {...}, ...}``.
A job that fails is recorded and the next one runs; only the worker's own
death stops a task, and then its engine re-runs it (jobs whose outputs are
complete are not redone).
"""
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..backends import RunnerOptions
from ..errors import INTERNAL_ERROR, PathError, PslgError
from ..geo import open_source
from ..geo.segment import Segmenter
from ..outputs import write_query
from . import store


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker of a batch opens and how it runs a job (picklable: Ray sends it to each worker)."""

    models: str
    out: str
    runner: RunnerOptions = field(default_factory=RunnerOptions)
    mode: str = "full"
    overlay: bool = False
    kernel_threads: Optional[int] = None
    warmup: bool = True


def _error(e):
    if isinstance(e, OSError):
        e = PathError.from_os_error(e)
    if isinstance(e, PslgError):
        return {"code": e.code, "name": type(e).__name__, "message": e.message}
    return {"code": INTERNAL_ERROR, "name": "InternalError", "message": f"{type(e).__name__}: {e}"}


class Worker:
    """Holds one :class:`~pslg.runtime.pipeline.Pipeline` and the last image it read."""

    def __init__(self, config: WorkerConfig):
        from ..pipeline import Pipeline
        self.config = config
        self.out = Path(config.out)
        self.pipeline = Pipeline.open(config.models, config.runner, warmup=config.warmup,
                                      kernel_threads=config.kernel_threads)
        self.summary = self.pipeline.models.summary()
        self._path = self._source = self._segmenter = None
        self.where = f"{socket.gethostname()}:{os.getpid()}"

    def ready(self):
        """Where this worker runs (the engine waits for every worker's answer before it times anything)."""
        return self.where

    def run(self, task):
        """Run the jobs of one task (one image) in order; one record per job."""
        return [self._run_job(job) for job in task]

    def _segmenter_for(self, path):
        """A Segmenter of the job's image or raster, kept while consecutive jobs name the same file."""
        if path != self._path:
            if self._source is not None:
                self._source.close()
            self._path = self._source = self._segmenter = None
            self._source = open_source(path)
            self._segmenter, self._path = Segmenter(self.pipeline, self._source), path
        return self._segmenter

    def _run_job(self, job):
        record = {"id": job.id, "image": str(job.image), "mode": job.mode or self.config.mode, "worker": self.where}
        if store.complete(self.out, job.id):  # written by a run that stopped before recording it
            folder = store.job_folder(self.out, job.id)
            done = json.loads((folder / store.COMPLETE).read_text())
            return dict(record, status="ok", outputs=[f"{job.id}/{p.name}" for p in sorted(folder.iterdir())],
                        timings_ms=done.get("timings_ms", {}), resumed=True)
        t0 = time.perf_counter()
        try:
            result = self._segmenter_for(job.image).segment(text=job.text, box=job.box, point=job.point,
                                                            crs=job.box_crs, mode=record["mode"])
            outputs = self._write(job, result)
        except Exception as e:  # one bad job never stops the rest: it is recorded with its error
            return dict(record, status="error", error=_error(e), ms=(time.perf_counter() - t0) * 1e3)
        return dict(record, status="ok", outputs=outputs, timings_ms=result.result.timings_ms,
                    ms=(time.perf_counter() - t0) * 1e3)

    def _write(self, job, result):
        """The job's outputs into a temporary folder, renamed to ``OUT/<id>/`` whole.

        The temporary name is the job's alone (one worker runs a job at a time), so a rerun after a worker died
        mid-write removes what that worker left.
        """
        final = store.job_folder(self.out, job.id)
        tmp = self.out / f".tmp-{job.id}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            write_query(tmp, result, self.summary, overlay_png=self.config.overlay)
            outputs = sorted(p.name for p in tmp.iterdir())
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return [f"{job.id}/{name}" for name in outputs]

    def close(self):
        if self._source is not None:
            self._source.close()
        self.pipeline.close()
