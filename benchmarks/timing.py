"""Timing helpers shared by the benchmarks: medians after warm-up, percentiles, tables."""
import time

import numpy as np


def measure(fn, runs, warmup=1):
    """Milliseconds of ``runs`` calls of ``fn()`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def interleaved(fns, runs, warmup=1):
    """``({name: [ms, ...]}, {name: last output})`` of ``fns`` ({name: callable}) over ``runs`` rounds that call
    every function once, after ``warmup`` such rounds untimed: load on a shared machine hits all of them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times, outputs = {name: [] for name in fns}, {}
    for _ in range(runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            outputs[name] = fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return times, outputs


def summary(times):
    """p50/p90/p99/mean/min of a list of milliseconds."""
    a = np.asarray(times, np.float64)
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean()), "min": float(a.min()), "n": int(a.size)}


def table(rows, headers):
    """A plain-text table: ``rows`` are lists of cells, numbers formatted to 1 decimal."""
    cells = [[f"{c:.1f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    return "\n".join(out)
