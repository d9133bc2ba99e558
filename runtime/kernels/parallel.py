"""How many threads the kernels use, and their parallel compilations.

``set_threads(n)`` sets it for the process (1 .. ``max_threads()``, the
cores Numba sees, ``NUMBA_NUM_THREADS``); ``threads()`` reads it. The
default is one: the serial compilations run and no parallel region ever
does, so OpenMP creates no worker team and a worker process that forks stays
fork-safe (Numba still loads its threading layer, with the code that holds
the parallel loops); this is a first-class setting, not a slow path. Measured on two shared cores, the
parallel kernels (mixture evaluation, n-links, beta) ran 1.1-1.7x faster
alone on two threads with spinning workers and no faster with passive ones
under that load; the max-flow of a band of at least 32,768 nodes (a 700 px
box) runs its node ranges at once (``maxflow.parts_for``), and MBO on such a
box ran 1.1-1.4x faster on two threads than on one (the project's kernel
benchmark, run with ``--threads N``, measures it on the target).

A kernel that profits from threads has two compilations of one source
(``variants``): the serial one, and a ``parallel=True`` one whose ``prange``
loops write disjoint outputs and sum in a fixed order, so every thread
count gives the same bits. Launches go through ``launch()``: it applies the
count in the calling thread (Numba's count is per thread) and, on Numba's
``workqueue`` layer, which is not safe for launches from two threads at
once, holds a lock so they run one after the other. Numba picks ``tbb``,
then ``omp``, then ``workqueue``; on this project's Linux targets it picks
``omp`` (GNU OpenMP), which runs concurrent launches from several Python
threads side by side. Importing this module sets ``OMP_WAIT_POLICY`` to
``PASSIVE`` unless the environment sets it (GNU OpenMP reads it when Numba
loads it, with the first compiled parallel code; other OpenMP users loaded
later in the process see it too): its workers would otherwise spin after
each short parallel step and take a core from the serial max-flow that
follows (measured: 2 threads 2x slower than 1 on a loaded 2-core machine,
the same as 1 with passive waiting).
"""
import os
import threading
import types

import numba
from numba import njit

from .. import checks

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_state = {"threads": 1, "layer": None}
_serial_launches = threading.Lock()   # held around launches until the layer is known to be thread-safe


def max_threads():
    """The most threads ``set_threads`` accepts (Numba's pool size, ``NUMBA_NUM_THREADS``)."""
    return numba.config.NUMBA_NUM_THREADS


def set_threads(n):
    """Use ``n`` threads (1 .. ``max_threads()``) in every kernel from now on, in every Python thread."""
    _state["threads"] = checks.count("threads", n, 1, max_threads())


def threads():
    """The thread count the kernels use."""
    return _state["threads"]


def variants(fn):
    """(serial, parallel) Numba compilations of ``fn``, each cached on disk under its own name."""
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_parallel", fn.__defaults__,
                              fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_parallel"
    twin.__module__, twin.__doc__ = fn.__module__, fn.__doc__
    return njit(cache=True)(fn), njit(cache=True, parallel=True)(twin)


class launch:
    """``with launch(work) as parallel:`` True when the kernel should take its parallel compilation.

    ``work``: elements the launch processes; below ``min_work`` threads cost
    more than they save and the serial compilation runs.
    """

    __slots__ = ("parallel", "_lock")

    def __init__(self, work, min_work=16384):
        self.parallel = _state["threads"] > 1 and work >= min_work
        self._lock = None

    def __enter__(self):
        if self.parallel:
            numba.set_num_threads(_state["threads"])
            if _state["layer"] != "threadsafe":
                self._lock = _serial_launches
                self._lock.acquire()
        return self.parallel

    def __exit__(self, *exc):
        if self._lock is not None and _state["layer"] is None:
            try:                               # the first parallel launch has chosen the layer
                _state["layer"] = "workqueue" if numba.threading_layer() == "workqueue" else "threadsafe"
            except ValueError:                 # nothing was launched after all
                pass
        if self._lock is not None:
            self._lock.release()
        return False


def layer():
    """Numba's threading layer once a parallel region has run here (``omp``, ``tbb``, ``workqueue``), else None."""
    return numba.threading_layer() if _state["layer"] is not None else None
