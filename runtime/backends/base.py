"""The interface every inference backend implements.

A runner owns one graph on one device. Callers hand it named numpy arrays and
get named numpy arrays back; nothing framework-specific crosses the boundary.
Returned arrays may be the runner's own reused buffers: they stay valid until
the next ``run`` on the same runner (copy what you keep).
"""
from ..errors import ClosedError, ParameterError


class Runner:
    """Base class: input checks, lifecycle. Subclasses implement ``_run`` and ``_describe``."""

    backend = "?"

    def __init__(self, spec):
        self.spec = spec
        self.closed = False

    def describe(self):
        """``(inputs, outputs)`` as TensorSpec lists, read from the loaded graph itself."""
        return self._describe()

    def run(self, feeds):
        """Run the graph on a dict of named numpy arrays; returns a dict of outputs."""
        if self.closed:
            raise ClosedError(f"{self.backend} runner for {self.spec.name} is closed")
        missing = [t.name for t in self.spec.inputs if t.name not in feeds]
        extra = sorted(set(feeds) - {t.name for t in self.spec.inputs})
        if missing or extra:
            raise ParameterError(f"{self.spec.name}: missing inputs {missing}, unknown inputs {extra}")
        for t in self.spec.inputs:
            t.check(feeds[t.name])
        return self._run(feeds)

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
