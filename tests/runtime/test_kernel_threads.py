"""Kernel threads: the count, the same bits at any count, concurrent callers; warm-up compiles what runs."""
import json
import subprocess
import sys

import numpy as np
import pytest

from pslg.runtime import kernels, mbo
from pslg.runtime.cfpg import foreground_point
from pslg.runtime.kernels import parallel
from tests.kernel_cases import big_case, ellipse_prior, in_threads, real_cases

several = pytest.mark.skipif(kernels.max_threads() < 2, reason="Numba sees one core")


@pytest.fixture
def restore_threads():
    before = kernels.threads()
    yield
    kernels.set_threads(before)


def test_count_defaults_to_one_and_is_settable(restore_threads):
    assert kernels.threads() == 1
    kernels.set_threads(1)
    assert kernels.threads() == 1
    with parallel.launch(10 ** 9) as on:
        assert not on                       # one thread: the serial compilations, no pool
    kernels.set_threads(kernels.max_threads())
    with parallel.launch(10) as on:
        assert not on                       # too little work to split
    with parallel.launch(10 ** 9) as on:
        assert on == (kernels.max_threads() > 1)


def _masks():
    image, box, prior = big_case(400)
    small, small_box, _ = big_case(200)
    return [mbo.refine(image, prior, box).mask, mbo.refine(small, None, small_box, point=(400.0, 400.0)).mask,
            foreground_point(image, box).regions]


@several
def test_one_and_many_threads_give_the_same_bits(restore_threads):
    kernels.set_threads(1)
    one = _masks()
    kernels.set_threads(kernels.max_threads())
    many = _masks()
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)


@several
def test_two_callers_at_once_with_parallel_kernels(restore_threads):
    """Two Python threads launch parallel kernels at the same time: no crash, the lone results."""
    kernels.set_threads(kernels.max_threads())
    image, box, prior = big_case(400)
    cases = [(image, prior, box)] + [(im, ellipse_prior(im.shape, b), b) for _, im, b in real_cases(crowns=2)[:5]]
    expected = [mbo.refine(im, p, b).mask for im, p, b in cases]
    got = {}

    def work(k):
        for i, (im, p, b) in enumerate(cases * 2):
            got[(k, i)] = mbo.refine(im, p, b).mask

    in_threads(work)
    assert len(got) == 4 * len(cases) and all(np.array_equal(mask, expected[i % len(cases)]) for (_, i), mask in got.items())
    assert parallel.layer() in ("omp", "tbb", "workqueue")


_AFTER_WARMUP = """
import json, sys
import numba
from pslg.runtime import kernels, mbo
from pslg.runtime.cfpg import foreground_point
from pslg.runtime.kernels import gmm, grabcut, kmeans, maxflow
from tests.kernel_cases import big_case
def signatures():
    return {f"{m.__name__}.{k}": len(v.signatures) for m in (gmm, grabcut, kmeans, maxflow)
            for k, v in vars(m).items() if isinstance(v, numba.core.registry.CPUDispatcher)}
from pslg.runtime.kernels import parallel
kernels.warmup()
before = signatures()
pools = []
for threads in sorted({1, kernels.max_threads()}):
    kernels.set_threads(threads)
    for size in (400, 700):
        image, box, prior = big_case(size)
        mbo.refine(image, prior, box)
        mbo.refine(image, None, box, point=foreground_point(image, box).point)
    image, box, prior = big_case(60)
    mbo.refine(image, prior, box)
    mbo.refine(image, None, box, point=foreground_point(image, box).point, classical_start="rect")
    pools.append(parallel.layer() is not None)
print(json.dumps({"new": {k: (before[k], n) for k, n in signatures().items() if n != before.get(k)}, "pools": pools}))
"""


@pytest.mark.slow
def test_warmup_compiles_every_kernel_the_runtime_calls():
    """After ``warmup()`` in a fresh process, full and classical MBO and CFPG at every size, on one thread
    and on all, add no compiled signature to any kernel; warm-up and one thread run no parallel region."""
    proc = subprocess.run([sys.executable, "-c", _AFTER_WARMUP], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["new"] == {}
    assert report["pools"] == ([False, True] if kernels.max_threads() > 1 else [False])
