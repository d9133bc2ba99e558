"""Numba kernels: k-means, colour Gaussian mixtures, grid max-flow.

Compiled code is cached on disk (``cache=True``: next to the sources, or
under ``NUMBA_CACHE_DIR`` / the user cache when that folder is read-only).
``warmup()`` compiles every kernel ahead of the first real call, or loads it
from that cache, with the argument types the runtime uses.
"""
import time

import numpy as np

from . import gmm, kmeans, maxflow


def warmup():
    """Compile or load every kernel on tiny inputs; return the seconds it took."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    pixels = image.reshape(16, 3)
    kmeans.kmeans(pixels, 2)
    kmeans.lloyd(pixels, kmeans.kmeans_pp(pixels, 2, 2, rng.random(3)), 2, 0.0)

    planes = gmm.to_planes(pixels)
    mix = gmm.empty_mixtures(2, 2)
    cls = (np.arange(16) % 2).astype(np.int8)
    gmm.fit(planes, cls, cls.copy(), mix)
    nll, best = np.empty((16, 2)), np.zeros((16, 2), np.int8)
    gmm.evaluate(planes, mix, np.full(16, -1, np.int8), nll, best)

    weights = np.empty((8, 4, 4))
    maxflow.contrast_weights(image, 50.0, weights)
    source, sink = np.zeros((4, 4)), np.zeros((4, 4))
    source[0, 0] = sink[3, 3] = 1e3
    graph = maxflow.GridMaxflow(4, 4, 8)
    graph.set_edges(weights)
    graph.solve(source + nll[:, 0].reshape(4, 4), sink + nll[:, 1].reshape(4, 4))
    graph.solve(source + 1.0, sink, reuse=True)
    graph.source_side()
    return time.perf_counter() - start
