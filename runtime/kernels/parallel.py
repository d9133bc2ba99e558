"""How many threads the kernels use, and their parallel compilations.

``set_threads(n)`` sets it for the process (default: every core Numba
sees, ``NUMBA_NUM_THREADS``); ``threads()`` reads it. With one thread the
serial compilations run and Numba's thread pool is never started, so a
worker process that forks stays fork-safe; this is a first-class setting,
not a slow path.

A kernel that profits from threads has two compilations of one source
(``variants``): the serial one, and a ``parallel=True`` one whose ``prange``
loops write disjoint outputs and sum in a fixed order, so every thread
count gives the same bits. Launches go through ``launch()``: it applies the
count in the calling thread (Numba's count is per thread) and, on Numba's
``workqueue`` layer, which is not safe for launches from two threads at
once, holds a lock so they run one after the other. Numba picks ``tbb``,
then ``omp``, then ``workqueue``; on this project's Linux targets it picks
``omp`` (GNU OpenMP), which runs concurrent launches from several Python
threads side by side.
"""
import threading
import types

import numba
from numba import njit

from . import checks

_state = {"threads": numba.config.NUMBA_NUM_THREADS, "layer": None}
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
    """Numba's threading layer once a parallel kernel has run (``omp``, ``tbb``, ``workqueue``), else None."""
    return numba.threading_layer() if _state["layer"] is not None else None
