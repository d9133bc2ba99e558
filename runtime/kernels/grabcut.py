"""GrabCut on the undecided band of a trimap (Numba), the steps ``mbo.grabcut`` runs.

Trimap codes are OpenCV's: 0 sure background, 1 sure foreground, 2 / 3
probable background / foreground, plus 4 (``NODATA``): no data, background
that no colour model learns from (a raster's nodata). Only probable pixels are free: with
lambda = 9 gamma above any pixel's summed n-links (6.83 gamma), OpenCV's
graph fixes every sure pixel to its side, so a graph of the band alone has
the same minimum cut. ``layout`` indexes a window once:

* nodes: the probable pixels in raster order. Arcs join 8-neighbours that
  are both probable; the arc to a sure neighbour becomes terminal capacity
  (a sure-foreground neighbour is paid for when the node goes to the sink,
  a sure-background one when it stays with the source).
* rows: the pixels the colour mixtures learn from, grouped as the nodes
  (row ``i`` is node ``i``), then the sure background, then the sure
  foreground, each group in raster order: every probable pixel and, of
  each sure class, all its pixels when it has at most ``sample`` of them,
  else a deterministic hashed subset of about ``sample`` weighted to stand
  for the whole class. Probable rows follow their node's label; sure rows
  keep their class.

``beta = 1 / (2 mean ||z_p - z_q||^2)`` is taken over the window's
8-neighbour pairs that start on every ``row_step``-th row (1: all, as
OpenCV). The buffers live in ``Band`` (``band_buffers``), which the caller
keeps between calls.
"""
from collections import namedtuple

import numpy as np
from numba import njit, prange

from .gmm import evaluate, evaluate_parallel, fit
from .kmeans import kmeans_planes
from .maxflow import DIRECTIONS, solve, source_side
from .parallel import variants

#: trimap code of a pixel without data: sure background, in no colour model
NODATA = 4
_DY = np.array([d[0] for d in DIRECTIONS[8]], np.int64)
_DX = np.array([d[1] for d in DIRECTIONS[8]], np.int64)
_HASH = np.uint64(2654435761)    # Knuth's multiplicative hash: spreads consecutive pixels over [0, 2^32)
_MASK32 = np.uint64(0xFFFFFFFF)
_FULL = 1 << 32

Band = namedtuple("Band", "index nodes rows role weight planes cls comp best nll fg side source sink s_const "
                          "t_const")


def band_buffers(pixels, nodes, rows):
    """A ``Band`` for windows of ``pixels`` pixels with ``nodes`` band nodes and ``rows`` training rows."""
    return Band(index=np.empty(pixels, np.int32), nodes=np.empty(nodes, np.int64), rows=np.empty(rows, np.int64),
                role=np.empty(rows, np.int8), weight=np.empty(rows), planes=np.empty(3 * rows), cls=np.empty(rows, np.int8),
                comp=np.empty(rows, np.int8), best=np.zeros((rows, 2), np.int8), nll=np.empty((rows, 2)),
                fg=np.empty(nodes, np.bool_), side=np.empty(nodes, np.bool_), source=np.empty(nodes),
                sink=np.empty(nodes), s_const=np.empty(nodes), t_const=np.empty(nodes))


def band_view(band, pixels, nodes, rows):
    """The leading parts of ``band``'s buffers for one window (no copy); planes as a C-contiguous (3, rows)."""
    sizes = {"index": pixels, "nodes": nodes, "fg": nodes, "side": nodes, "source": nodes, "sink": nodes,
             "s_const": nodes, "t_const": nodes}
    return Band(*(a[:3 * rows].reshape(3, rows) if name == "planes" else a[:sizes.get(name, rows)]
                  for name, a in zip(Band._fields, band)))


@njit(cache=True)
def _threshold(count, sample):
    return _FULL if count <= sample else int(sample / count * _FULL)


@njit(cache=True)
def _kept(i, threshold):
    return ((np.uint64(i) * _HASH) & _MASK32) < np.uint64(threshold)


@njit(cache=True)
def layout_size(trimap, sample):
    """(band nodes, sure-background rows, sure-foreground rows) of a flat trimap, at most about ``sample``
    rows per sure class."""
    counts = np.zeros(2, np.int64)
    nodes = 0
    for i in range(trimap.shape[0]):
        if trimap[i] == 2 or trimap[i] == 3:
            nodes += 1
        elif trimap[i] < 2:
            counts[trimap[i]] += 1
    thresholds = (_threshold(counts[0], sample), _threshold(counts[1], sample))
    kept = np.zeros(2, np.int64)
    for i in range(trimap.shape[0]):
        t = trimap[i]
        if t < 2 and _kept(i, thresholds[t]):
            kept[t] += 1
    return nodes, kept[0], kept[1]


@njit(cache=True)
def layout(pixels, trimap, sample, b):
    """Fill ``b``'s index, nodes, rows, roles, weights and colour planes for a window.

    ``pixels (n, 3)`` uint8 and ``trimap (n,)`` flat; ``b`` sized by ``layout_size``.
    """
    counts = np.zeros(2, np.int64)
    n_nodes = 0
    for i in range(trimap.shape[0]):
        if trimap[i] < 2:
            counts[trimap[i]] += 1
        elif trimap[i] < NODATA:
            n_nodes += 1
    thresholds = (_threshold(counts[0], sample), _threshold(counts[1], sample))
    kept = np.zeros(2, np.int64)
    node = 0
    starts = (n_nodes, b.rows.shape[0])      # sure foreground rows fill the end backwards, then are reversed
    for i in range(trimap.shape[0]):
        t = trimap[i]
        b.index[i] = -1
        if t == NODATA:
            continue
        if t >= 2:
            b.index[i] = node
            b.nodes[node] = i
            b.fg[node] = t == 3
            row = node
            b.role[row] = -1
            node += 1
        elif _kept(i, thresholds[t]):
            row = starts[0] + kept[0] if t == 0 else starts[1] - 1 - kept[1]
            b.role[row] = t
            kept[t] += 1
        else:
            continue
        b.rows[row] = i
        for c in range(3):
            b.planes[c, row] = pixels[i, c]
    first, last = b.rows.shape[0] - kept[1], b.rows.shape[0] - 1
    while first < last:
        b.rows[first], b.rows[last] = b.rows[last], b.rows[first]
        for c in range(3):
            b.planes[c, first], b.planes[c, last] = b.planes[c, last], b.planes[c, first]
        first += 1
        last -= 1
    for r in range(b.rows.shape[0]):
        t = b.role[r]
        b.weight[r] = 1.0 if t < 0 else counts[t] / kept[t]


def _beta_rows(image, row_step, sums, pairs):
    """Per sampled row: summed squared colour differences of the pairs starting there, and their count."""
    h, w, _ = image.shape
    for r in prange(sums.shape[0]):
        y = r * row_step
        total = 0
        count = 0
        for k in range(4):                        # E, SE, S, SW: one arc of each 8-neighbour pair
            dy, dx = _DY[k], _DX[k]
            if y + dy >= h:
                continue
            for x in range(max(0, -dx), min(w, w - dx)):
                total += _sqdiff(image, y, x, y + dy, x + dx)
                count += 1
        sums[r] = total
        pairs[r] = count


_beta_rows_serial, _beta_rows_parallel = variants(_beta_rows)


@njit(cache=True)
def _sqdiff(image, y, x, yy, xx):
    """Squared colour distance of two pixels, an exact integer (so sums of them do not depend on order)."""
    s = 0
    for c in range(3):
        d = np.int64(image[y, x, c]) - np.int64(image[yy, xx, c])
        s += d * d
    return s


@njit(cache=True)
def beta(image, row_step, parallel):
    """GrabCut's beta of an (h, w, 3) image over the pairs starting on every ``row_step``-th row (0 if uniform)."""
    n_rows = (image.shape[0] + row_step - 1) // row_step
    sums = np.empty(n_rows, np.int64)
    pairs = np.empty(n_rows, np.int64)
    if parallel:
        _beta_rows_parallel(image, row_step, sums, pairs)
    else:
        _beta_rows_serial(image, row_step, sums, pairs)
    total = sums.sum()
    return 1.0 / (2.0 * total / pairs.sum()) if total > 0 else 0.0


def _band_links(image, trimap, index, nodes, beta, gamma, nbr, caps, s_const, t_const):
    """n-links of the band ``nodes`` (``nbr``/``caps`` of a FlowGraph) and the folded arcs to sure pixels.

    Arrays only: in a ``prange`` body Numba loses writes made through a tuple's arrays.
    """
    h, w, _ = image.shape
    n_nodes = nodes.shape[0]
    diagonal = gamma / np.sqrt(2.0)
    for node in prange(n_nodes):
        p = nodes[node]
        y = p // w
        x = p - y * w
        to_fg = 0.0
        to_bg = 0.0
        for k in range(8):
            yy, xx = y + _DY[k], x + _DX[k]
            nbr[node, k] = n_nodes
            caps[node, k] = 0.0
            if yy < 0 or yy >= h or xx < 0 or xx >= w:
                continue
            g = gamma if _DY[k] == 0 or _DX[k] == 0 else diagonal
            v = g * np.exp(-beta * _sqdiff(image, y, x, yy, xx))
            j = index[yy * w + xx]
            if j >= 0:
                nbr[node, k] = j
                caps[node, k] = v
            elif trimap[yy, xx] == 1:
                to_fg += v
            else:
                to_bg += v
        s_const[node] = to_fg
        t_const[node] = to_bg
    for k in range(8):
        nbr[n_nodes, k] = n_nodes
        caps[n_nodes, k] = 0.0


_band_links_serial, _band_links_parallel = variants(_band_links)


@njit(cache=True)
def band_links(image, trimap, b, beta, gamma, g, parallel):
    """Set the arcs of FlowGraph ``g`` (sized to the band) from the window ``image (h, w, 3)`` and ``trimap (h, w)``."""
    if parallel:
        _band_links_parallel(image, trimap, b.index, b.nodes, beta, gamma, g.nbr, g.caps, b.s_const, b.t_const)
    else:
        _band_links_serial(image, trimap, b.index, b.nodes, beta, gamma, g.nbr, g.caps, b.s_const, b.t_const)
    g.check[:] = -1


@njit(cache=True)
def _classes(b):
    """Current class of every row: its node's label, or its sure class."""
    n_nodes = b.nodes.shape[0]
    for r in range(b.rows.shape[0]):
        b.cls[r] = (1 if b.fg[r] else 0) if r < n_nodes else b.role[r]


@njit(cache=True)
def _members(b, c):
    """Rows of class ``c`` in raster order (the band's and the sure ones', merged by pixel)."""
    n_nodes = b.nodes.shape[0]
    out = np.empty(b.rows.shape[0], np.int64)
    count = 0
    i = 0
    j = n_nodes
    while j < b.rows.shape[0] and b.role[j] != c:
        j += 1
    while True:
        while i < n_nodes and b.cls[i] != c:
            i += 1
        sure = j < b.rows.shape[0] and b.role[j] == c
        if i >= n_nodes and not sure:
            break
        if sure and (i >= n_nodes or b.rows[j] < b.rows[i]):
            out[count] = j
            j += 1
        else:
            out[count] = i
            i += 1
        count += 1
    return out[:count]


@njit(cache=True)
def _evaluate(b, mix, only, parallel):
    if parallel:
        evaluate_parallel(b.planes, mix, only, b.nll, b.best)
    else:
        evaluate(b.planes, mix, only, b.nll, b.best)


@njit(cache=True)
def init_mixtures(b, mix, seed, parallel):
    """GrabCut's start: k-means (k-means++, 10 Lloyd steps) per class on its rows, one fit, components."""
    _classes(b)
    components = mix.weights.shape[1]
    for c in range(2):
        members = _members(b, c)
        if members.shape[0] == 0:
            continue
        xt = np.empty((3, members.shape[0]))
        for t in range(3):
            for i in range(members.shape[0]):
                xt[t, i] = b.planes[t, members[i]]
        labels = kmeans_planes(xt, min(components, members.shape[0]), seed, 10, 0.0)[1]
        for i in range(members.shape[0]):
            b.comp[members[i]] = labels[i]
    fit(b.planes, b.cls, b.comp, b.weight, mix)
    _evaluate(b, mix, b.cls, parallel)


@njit(cache=True)
def refit(b, mix, parallel):
    """One GrabCut learning step: components from the last evaluation, fit, then likelihoods of the band
    (both mixtures) and the best component of every sure row (its own mixture)."""
    _classes(b)
    for r in range(b.rows.shape[0]):
        b.comp[r] = b.best[r, b.cls[r]]
    fit(b.planes, b.cls, b.comp, b.weight, mix)
    _evaluate(b, mix, b.role, parallel)


@njit(cache=True)
def terminals(b):
    """Terminal capacities of the band nodes from the likelihoods; returns the energy offset of the lift."""
    offset = 0.0
    for node in range(b.nodes.shape[0]):
        s = b.s_const[node] + b.nll[node, 0]     # paid when the node goes to the background
        t = b.t_const[node] + b.nll[node, 1]
        low = min(s, t, 0.0)                  # a cut pays s or t: lift a negative pair
        b.source[node] = s - low
        b.sink[node] = t - low
        offset += low
    return offset


@njit(cache=True)
def cut(b, g, reuse, parts, parallel):
    """Max-flow of the whole band graph ``g`` (warm started with ``reuse``, in ``parts`` node ranges first,
    see ``maxflow.solve``); labels into ``b.side``."""
    energy = solve(g, b.source, b.sink, reuse, False, parts, parallel)
    source_side(g, b.side)
    return energy


@njit(cache=True)
def relabel(b):
    """Take the cut's labels (``b.side``) as the band's; returns how many changed."""
    changed = 0
    for node in range(b.nodes.shape[0]):
        if b.side[node] != b.fg[node]:
            changed += 1
            b.fg[node] = b.side[node]
    return changed


@njit(cache=True)
def write_labels(b, trimap):
    """The band's labels into the flat trimap as GC_PR_FGD (3) / GC_PR_BGD (2)."""
    for node in range(b.nodes.shape[0]):
        trimap[b.nodes[node]] = 3 if b.fg[node] else 2


@njit(cache=True)
def contrast_weights(image, gamma, out):
    """GrabCut's n-link capacities of a whole (h, w, 3) image into ``out (8, h, w)``; returns beta.

    ``w = gamma / |d| * exp(-beta ||z_p - z_q||^2)`` over the 8-neighbourhood
    (``DIRECTIONS[8]``; both arcs of a pair get the same capacity), beta over
    every pair. The grid form of ``band_links``, for ``GridMaxflow``.
    """
    h, w, _ = image.shape
    b = beta(image, 1, False)
    out[:] = 0.0
    for k in range(8):
        g = gamma if _DY[k] == 0 or _DX[k] == 0 else gamma / np.sqrt(2.0)
        for y in range(max(0, -_DY[k]), min(h, h - _DY[k])):
            for x in range(max(0, -_DX[k]), min(w, w - _DX[k])):
                out[k, y, x] = g * np.exp(-b * _sqdiff(image, y, x, y + _DY[k], x + _DX[k]))
    return b
