"""Numba kernels: k-means, colour Gaussian mixtures, max-flow, GrabCut on a band.

Compiled code is cached on disk (``cache=True``: next to the sources, or
under ``NUMBA_CACHE_DIR`` / the user cache when that folder is read-only).
``warmup()`` compiles every kernel the runtime calls ahead of the first real
call, or loads it from that cache, with the argument types the runtime uses;
the parallel compilations come with the serial calls that hold them, so
warming up runs no parallel region. ``set_threads(n)`` / ``threads()``: the
thread count (default 1, see ``kernels.parallel``).
"""
import time

import numpy as np

from . import gmm, grabcut, kmeans
from .maxflow import graph_view, new_graph
from .parallel import max_threads, set_threads, threads

__all__ = ["max_threads", "set_threads", "threads", "warmup"]


def warmup():
    """Compile or load every kernel the runtime calls, on tiny inputs; return the seconds it took."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    pixels = image.reshape(36, 3)
    kmeans.kmeans(pixels, 2)
    trimap = np.full((6, 6), 2, np.uint8)
    trimap[0], trimap[-1], trimap[2:4, 2:4] = 0, 0, 1
    flat = trimap.reshape(-1)
    nodes, kept_bg, kept_fg = grabcut.layout_size(flat, 1 << 14)
    rows = nodes + kept_bg + kept_fg
    band = grabcut.band_view(grabcut.band_buffers(36, nodes, rows), 36, nodes, rows)
    graph = graph_view(new_graph(nodes, 8), nodes)
    grabcut.layout(pixels, flat, 1 << 14, band)
    mix = gmm.empty_mixtures(2, 5)
    beta = grabcut.beta(image, 1, False)
    grabcut.band_links(image, trimap, band, beta, 50.0, graph, False)
    grabcut.init_mixtures(band, mix, 0, False)
    grabcut.refit(band, mix, False)
    grabcut.terminals(band)
    grabcut.cut(band, graph, False, 2, False)
    grabcut.cut(band, graph, True, 1, False)
    grabcut.relabel(band)
    grabcut.write_labels(band, flat)
    return time.perf_counter() - start
