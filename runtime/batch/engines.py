"""Where a batch's workers run: in this process (``local``), or as Ray actors on one machine or a cluster (``ray``).

Both take tasks and yield each task's records as they finish. Ray actors
ask for ``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs (a fraction
shares one GPU); an actor that dies (killed, out of memory) is restarted and
its in-flight task re-run, so the death costs only that task's unfinished jobs.
"""
import logging

from .. import checks
from ..errors import BackendRuntimeError, ParameterError
from ..extras import require
from .worker import Worker

log = logging.getLogger(__name__)
RESTARTS = 3
#: tasks queued at each actor: the next one waits there while the driver handles the last answer
DEPTH = 2


def _task_failed(task, error):
    return [{"id": job.id, "image": str(job.image), "status": "error",
             "error": {"code": BackendRuntimeError.code, "name": "BackendRuntimeError", "message": error}}
            for job in task]


class LocalEngine:
    """One worker in this process: the same code as a Ray actor, without Ray."""

    name = "local"

    def __init__(self, config, workers=1):
        if checks.count("workers", workers, 1) != 1:
            raise ParameterError("the local engine runs one worker in this process; use --engine ray for more")
        self.workers = 1
        self.worker = Worker(config)

    def run(self, tasks):
        for task in tasks:
            yield self.worker.run(task)

    def close(self):
        self.worker.close()


class RayEngine:
    """``workers`` Ray actors, each a :class:`Worker`; tasks go to the actor with the fewest queued."""

    name = "ray"

    def __init__(self, config, workers=1, address=None, cpus_per_worker=1.0, gpus_per_worker=0.0):
        self.ray = ray = require("ray", "ray", "pslg batch --engine ray")
        self.workers = checks.count("workers", workers, 1)
        cpus = checks.real("cpus_per_worker", cpus_per_worker, 0.0, open_low=True)
        gpus = checks.real("gpus_per_worker", gpus_per_worker, 0.0)
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        actor = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=RESTARTS, max_task_retries=RESTARTS)(Worker)
        self.actors = [actor.remote(config) for _ in range(self.workers)]
        try:
            ray.get([a.ready.remote() for a in self.actors])
        except ray.exceptions.RayError as e:
            self.close()
            raise BackendRuntimeError(f"the Ray workers could not open {config.models}: {e}") from None

    def run(self, tasks):
        """Keep ``DEPTH`` tasks queued at each live actor, least loaded first, and yield records as tasks end."""
        ray = self.ray
        todo, running = list(reversed(tasks)), {}
        queued = dict.fromkeys(range(len(self.actors)), 0)   # live actors: tasks sent and not yet answered
        while todo or running:
            while todo and queued and min(queued.values()) < DEPTH:
                i = min(queued, key=queued.get)
                task = todo.pop()
                running[self.actors[i].run.remote(task)] = (i, task)
                queued[i] += 1
            if not running:
                yield from (_task_failed(t, "no worker is left (all died)") for t in reversed(todo))
                return
            done, _ = ray.wait(list(running), num_returns=1)
            i, task = running.pop(done[0])
            try:
                records = ray.get(done[0])
            except ray.exceptions.RayError as e:  # the actor died more often than it may restart
                log.warning("a worker failed %d times running a task of %s: %s", RESTARTS + 1, task[0].image, e)
                queued.pop(i, None)
                yield _task_failed(task, f"its worker failed {RESTARTS + 1} times: {type(e).__name__}")
                continue
            if i in queued:
                queued[i] -= 1
            yield records

    def close(self):
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        if self._started:
            self.ray.shutdown()


ENGINES = {"local": LocalEngine, "ray": RayEngine}
