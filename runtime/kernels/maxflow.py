"""Max-flow / min-cut on graphs of bounded degree: image grids and the bands MBO cuts (Numba).

Goldberg-Tarjan push-relabel, first phase only (a maximum preflow gives the
minimum cut): FIFO selection of active nodes, exact distance labels from a
backward breadth-first search (global relabelling) at the start and after
every ``n / 4`` relabels. On GrabCut's graphs, where n-links outweigh
t-links, it was four to six times faster than this module's former
Boykov-Kolmogorov kernel on the bands of 700 px boxes (and about 3x faster
than PyMaxflow's on whole-window grids, ``benchmarks.kernels``), and it
returns the same cut: the source side is the set of nodes that cannot reach
the sink in the residual graph, the largest minimum cut, which every exact
solver finds. A solve can start from the previous one's flow when only
terminal capacities changed (GrabCut's iterations). Optionally, nodes whose
terminal capacities outweigh all their arcs are fixed to their side first
and folded into their neighbours.

A graph of at least ``2 x PART_NODES`` nodes is first cut into node ranges
(``parts_for``: its size decides, not the thread count), each pushed to a
maximum preflow of its own subgraph, all at once on the parallel
compilation; the whole graph then starts from their flow, a valid preflow,
and ends at the same largest minimum cut. On a band (nodes in raster
order) the ranges are horizontal strips, so only the flow that crosses a
strip's edge is left for the whole graph. Measured with MBO on the bands
of 700 px boxes (``benchmarks.kernels``' three crops, two parts, the same
masks): 1.0-1.3x faster on two threads than in one range, 0-11 % slower
than one range on one thread; on 400 px bands two parts gained nothing.

A graph is a ``FlowGraph`` of arrays: node ``p`` (0 .. N-1) has ``K`` arc
slots, arc ``k`` leads to ``nbr[p, k]`` and its reverse is arc ``rev[k]`` of
that node. A missing arc leads to the sentinel node ``N``, which has no
capacity, so no bounds test runs in the inner loops. Residual capacities
live in one (N + 1, K) array (a node's arcs share a cache line); each
node's terminal capacities in one signed number ``tr``: excess when
positive, residual capacity to the sink when negative. ``GridMaxflow`` is
the 4- or 8-connected image grid; MBO builds its band graphs itself
(``kernels.grabcut``) and calls ``solve``.
"""
from collections import namedtuple

import numpy as np
from numba import njit, prange

from .. import checks
from .parallel import launch, variants

#: (dy, dx) of each arc direction; the reverse of ``k`` is ``(k + K/2) % K``.
DIRECTIONS = {
    4: ((0, 1), (1, 0), (0, -1), (-1, 0)),
    8: ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1)),
}
_RELABEL_PERIOD = 0.25  # global relabelling after this many relabels per node (measured on GrabCut bands: best of 0.1 .. 2)
#: Graphs are cut into node ranges of at least this many nodes (at most ``MAX_PARTS``) solved on their own first.
PART_NODES = 1 << 14
MAX_PARTS = 4

FlowGraph = namedtuple("FlowGraph", "nbr rev caps rcap out_sum in_sum tr fixed check source sink height current "
                                    "queue active order")


def new_graph(nodes, arcs):
    """A ``FlowGraph`` for ``nodes`` nodes of ``arcs`` arc slots, every arc leading to the sentinel."""
    n = nodes + 1
    return FlowGraph(
        nbr=np.full((n, arcs), nodes, np.int32), rev=(np.arange(arcs) + arcs // 2) % arcs,
        caps=np.zeros((n, arcs)), rcap=np.zeros((n, arcs)), out_sum=np.zeros(n), in_sum=np.zeros(n),
        tr=np.zeros(n), fixed=np.full(n, -1, np.int8), check=np.full(n, -1, np.int8),
        source=np.zeros(nodes), sink=np.zeros(nodes), height=np.zeros(n, np.int64),
        current=np.zeros(n, np.int64), queue=np.zeros(n, np.int64), active=np.zeros(n, np.uint8),
        order=np.zeros(n, np.int64))


def graph_view(graph, nodes):
    """The first ``nodes`` nodes of a larger ``FlowGraph`` (its buffers, no copy); node ``nodes`` is the sentinel."""
    n = nodes + 1
    return FlowGraph(*(a if name == "rev" else a[:nodes] if name in ("source", "sink") else a[:n]
                       for name, a in zip(FlowGraph._fields, graph)))


@njit(cache=True)
def _relabel_all(nbr, rev, rcap, tr, height, order, lo, hi):
    """Exact distance to the sink of nodes ``lo .. hi - 1`` over the arcs among them (``n``: it cannot reach
    it), by a backward BFS queued in ``order[lo:hi]``."""
    n = tr.shape[0]
    tail = lo
    for p in range(lo, hi):
        height[p] = n
        if tr[p] < 0:
            height[p] = 1
            order[tail] = p
            tail += 1
    head = lo
    while head < tail:
        q = order[head]
        head += 1
        for k in range(nbr.shape[1]):
            p = nbr[q, k]
            if lo <= p < hi and height[p] == n and rcap[p, rev[k]] > 0:
                height[p] = height[q] + 1
                order[tail] = p
                tail += 1


@njit(cache=True)
def _push_relabel(nbr, rev, rcap, tr, height, current, queue, active, order, lo, hi):
    """Push-relabel's first phase on nodes ``lo .. hi - 1`` and the arcs among them, to a maximum preflow
    of that subgraph, in place (its FIFO in ``queue[lo:hi]``); ``height == n``: source side."""
    n = tr.shape[0]
    size = hi - lo
    arcs = nbr.shape[1]
    _relabel_all(nbr, rev, rcap, tr, height, order, lo, hi)
    qh = qn = 0
    for p in range(lo, hi):
        current[p] = 0
        active[p] = 0
        if tr[p] > 0 and height[p] < n:
            queue[lo + qn] = p
            qn += 1
            active[p] = 1
    relabels = 0
    period = max(1, int(_RELABEL_PERIOD * size))
    while qn > 0:
        p = queue[lo + qh]
        qh = (qh + 1) % size
        qn -= 1
        active[p] = 0
        while tr[p] > 0 and height[p] < n:        # discharge p
            k = current[p]
            while k < arcs:
                q = nbr[p, k]
                r = rcap[p, k]
                if r > 0 and height[q] == height[p] - 1 and lo <= q < hi:
                    delta = min(tr[p], r)
                    rcap[p, k] -= delta
                    rcap[q, rev[k]] += delta
                    tr[p] -= delta
                    tr[q] += delta
                    if tr[q] > 0 and active[q] == 0:
                        queue[lo + (qh + qn) % size] = q
                        qn += 1
                        active[q] = 1
                    if tr[p] <= 0:
                        break
                k += 1
            current[p] = k
            if tr[p] <= 0:
                break
            low = n - 1                            # relabel
            for j in range(arcs):
                q = nbr[p, j]
                if rcap[p, j] > 0 and height[q] < low and lo <= q < hi:
                    low = height[q]
            height[p] = low + 1
            current[p] = 0
            relabels += 1
            if relabels % period == 0:
                _relabel_all(nbr, rev, rcap, tr, height, order, lo, hi)
    _relabel_all(nbr, rev, rcap, tr, height, order, lo, hi)


def _parts(nbr, rev, rcap, tr, height, current, queue, active, order, bounds):
    """Each node range ``bounds[i] .. bounds[i + 1] - 1`` to a maximum preflow of its own subgraph (disjoint
    nodes, so the ranges may run at once)."""
    for i in prange(bounds.shape[0] - 1):
        _push_relabel(nbr, rev, rcap, tr, height, current, queue, active, order, bounds[i], bounds[i + 1])


_parts_serial, _parts_parallel = variants(_parts)


def parts_for(nodes):
    """How many node ranges ``solve`` cuts a graph of ``nodes`` nodes into: one per ``PART_NODES``, at most
    ``MAX_PARTS`` (the graph's size decides, not the thread count, so every thread count gives the same bits)."""
    return int(min(MAX_PARTS, max(1, nodes // PART_NODES)))


@njit(cache=True)
def _maximum_preflow(g, parts, parallel):
    """A maximum preflow of ``g``: the node ranges' own first (``parts`` > 1), then the whole graph from theirs."""
    n = g.tr.shape[0]
    if parts > 1:
        bounds = np.empty(parts + 1, np.int64)
        for i in range(parts + 1):
            bounds[i] = (n - 1) * i // parts
        if parallel:
            _parts_parallel(g.nbr, g.rev, g.rcap, g.tr, g.height, g.current, g.queue, g.active, g.order, bounds)
        else:
            _parts_serial(g.nbr, g.rev, g.rcap, g.tr, g.height, g.current, g.queue, g.active, g.order, bounds)
    _push_relabel(g.nbr, g.rev, g.rcap, g.tr, g.height, g.current, g.queue, g.active, g.order, 0, n)


@njit(cache=True)
def arc_sums(g):
    """Per node: total capacity of its out-arcs and of its in-arcs (for the reduction)."""
    for p in range(g.caps.shape[0]):
        o = 0.0
        i = 0.0
        for k in range(g.nbr.shape[1]):
            o += g.caps[p, k]
            i += g.caps[g.nbr[p, k], g.rev[k]]
        g.out_sum[p] = o
        g.in_sum[p] = i


@njit(cache=True)
def _classify(g, source, sink):
    """Persistency: 1 where ``S - T >= sum of out-arcs`` (source side in a minimum cut), 0 where
    ``T - S >= sum of in-arcs`` (sink side), else -1 (free). Returns the count fixed."""
    count = 0
    for p in range(source.shape[0]):
        d = source[p] - sink[p]
        g.check[p] = 1 if d >= g.out_sum[p] else (0 if -d >= g.in_sum[p] else -1)
        count += g.check[p] >= 0
    return count


@njit(cache=True)
def _fold(g, source, sink):
    """Residual graph of the free nodes: arcs to fixed nodes become their terminal capacity."""
    fixed, caps, nbr, rev = g.fixed, g.caps, g.nbr, g.rev
    g.tr[:] = 0.0
    for p in range(source.shape[0]):
        s_cap, t_cap = source[p], sink[p]
        for k in range(nbr.shape[1]):
            j = nbr[p, k]
            if fixed[p] < 0 and fixed[j] < 0:
                g.rcap[p, k] = caps[p, k]
                continue
            g.rcap[p, k] = 0.0
            if fixed[p] < 0:
                if fixed[j] == 1:
                    s_cap += caps[j, rev[k]]
                else:
                    t_cap += caps[p, k]
        if fixed[p] < 0:
            g.tr[p] = s_cap - t_cap


@njit(cache=True)
def solve(g, source, sink, reuse, reduce, parts, parallel):
    """Minimum cut of ``g`` with terminal capacities ``source``/``sink`` (N,) >= 0; returns its value.

    ``reduce``: fix and fold the dominated nodes first (needs ``arc_sums``
    after the arcs were set); otherwise the nodes ``g.check`` fixes (1:
    source side, 0: sink side, -1: free) are folded, and the value is that
    of the best cut with them held. ``reuse``: start from the previous
    solve's flow; honoured only when the same nodes are fixed. ``parts``
    (``parts_for``): node ranges solved on their own first, at once when
    ``parallel``; the cut does not depend on either.
    """
    nodes = source.shape[0]
    if reduce:
        _classify(g, source, sink)
    same = True
    for p in range(nodes + 1):
        if g.check[p] != g.fixed[p]:
            same = False
            break
    if reuse and same:               # move the free nodes' terminal capacities to the new values
        for p in range(nodes):
            if g.fixed[p] < 0:
                g.tr[p] += (source[p] - g.source[p]) - (sink[p] - g.sink[p])
    else:
        g.fixed[:] = g.check
        _fold(g, source, sink)
    g.source[:] = source
    g.sink[:] = sink
    _maximum_preflow(g, parts, parallel)
    return _cut_value(g)


@njit(cache=True)
def _cut_value(g):
    """Capacity of the cut ``source_side`` gives, on the graph as set (fixed nodes included)."""
    n = g.source.shape[0]
    total = 0.0
    for p in range(n):
        if _on_source_side(g, p):
            total += g.sink[p]
            for k in range(g.nbr.shape[1]):
                q = g.nbr[p, k]
                if q < n and not _on_source_side(g, q):
                    total += g.caps[p, k]
        else:
            total += g.source[p]
    return total


@njit(cache=True)
def _on_source_side(g, p):
    return g.fixed[p] == 1 if g.fixed[p] >= 0 else g.height[p] == g.tr.shape[0]


@njit(cache=True)
def source_side(g, out):
    """``out[p]``: the minimum cut leaves node ``p`` with the source (it cannot reach the sink)."""
    for p in range(out.shape[0]):
        out[p] = _on_source_side(g, p)


@njit(cache=True)
def _grid_arcs(weights, dy, dx, nbr, caps):
    """Arcs of an h x w grid (node y * w + x) from per-direction capacities ``weights (K, h, w)``."""
    k_count, h, w = weights.shape
    for y in range(h):
        for x in range(w):
            p = y * w + x
            for k in range(k_count):
                yy, xx = y + dy[k], x + dx[k]
                if 0 <= yy < h and 0 <= xx < w:
                    nbr[p, k] = yy * w + xx
                    caps[p, k] = weights[k, y, x]


class GridMaxflow:
    """Min-cut of an h x w grid: terminal capacities per pixel, arc capacities per direction.

    ``set_edges(weights)`` with ``weights (K, h, w)``: ``weights[k, y, x]`` is
    the capacity of the arc from (y, x) to (y + dy_k, x + dx_k) (see
    ``DIRECTIONS``; arcs leaving the grid are ignored). ``solve(source,
    sink)`` returns the max-flow value, i.e. the minimum cut energy. Arc
    capacities must be finite and >= 0; terminal ones finite (a negative
    pair is lifted by a constant, as Boykov-Kolmogorov's ``add_tweights`` does).

    Before searching, nodes whose terminal capacities outweigh all their arcs
    (``S - T >= sum out`` or ``T - S >= sum in``) are fixed to their side,
    which some minimum cut always does, and folded into their neighbours
    (``reduce=False`` switches this off). ``reuse=True`` starts from the
    previous solve's flow and search trees when only terminal capacities
    changed and the same nodes are fixed; otherwise it solves afresh.
    """

    def __init__(self, height, width, connectivity=8, reduce=True):
        height = checks.count("height", height, 1)
        width = checks.count("width", width, 1)
        checks.choice("connectivity", connectivity, tuple(DIRECTIONS))
        self.reduce = checks.flag("reduce", reduce)
        checks.count("height x width", height * width, 1, checks.MAX_NODES)
        self.shape = (height, width)
        dirs = np.array(DIRECTIONS[connectivity], np.int64)
        self._dy, self._dx = dirs[:, 0].copy(), dirs[:, 1].copy()
        self._graph = new_graph(height * width, len(dirs))
        self._solved = False
        self.fixed = 0
        self.flow = 0.0

    def set_edges(self, weights):
        """Set the arc capacities (K, h, w); the next solve starts afresh."""
        weights = checks.capacities("weights", weights, (len(self._dy),) + self.shape)
        g = self._graph
        g.nbr[:] = self.shape[0] * self.shape[1]
        g.caps[:] = 0.0
        g.check[:] = -1
        _grid_arcs(weights, self._dy, self._dx, g.nbr, g.caps)
        arc_sums(g)
        self._solved = False

    def solve(self, source, sink, reuse=False):
        """Max-flow with terminal capacities ``source``/``sink`` (h, w); returns its value."""
        source = checks.capacities("source", source, self.shape, low=-np.inf)
        sink = checks.capacities("sink", sink, self.shape, low=-np.inf)
        reuse = checks.flag("reuse", reuse)
        shift = np.minimum(np.minimum(source, sink), 0.0)
        offset = shift.sum()
        if offset < 0:   # a cut pays S or T: lifting both by the same amount only moves the energy
            source, sink = source - shift, sink - shift
        nodes = source.size
        with launch(nodes) as parallel:
            flow = solve(self._graph, source.reshape(-1), sink.reshape(-1), reuse and self._solved, self.reduce,
                         parts_for(nodes), parallel)
        self.fixed = int(np.count_nonzero(self._graph.fixed >= 0))
        self._solved = True
        self.flow = offset + flow
        return self.flow

    def source_side(self, out=None):
        """Boolean (h, w): True where the minimum cut leaves the pixel with the source."""
        out = checks.out_array("out", out, self.shape, (np.bool_,))
        source_side(self._graph, out.reshape(-1))
        return out
