"""Max-flow / min-cut on an implicit 4- or 8-connected image grid (Numba).

Boykov-Kolmogorov ("An experimental comparison of min-cut/max-flow
algorithms", PAMI 2004): two search trees grown from the terminals,
augmentation along the path where they meet, adoption of orphans; with the
tree reuse of Kohli-Torr dynamic graph cuts when only terminal capacities
change between solves (GrabCut's iterations). Before the search, nodes whose
terminal capacities outweigh all their arcs are fixed to their side and
folded into their neighbours (GrabCut's sure pixels: lambda = 9 gamma beats
the 6.83 gamma of a pixel's n-links), so only the undecided band is searched.

The grid is never built as a graph: node ``p`` of the (h + 2) x (w + 2)
zero-capacity padded grid reaches its neighbour in direction ``k`` at
``p + offsets[k]``, so no bounds test runs in the inner loops. Residual
capacities live in one (nodes, K) array (a node's arcs share a cache line),
terminal capacities in BK's signed form ``tr = residual(s->p) - residual(p->t)``.
"""
import numpy as np
from numba import njit

from ..errors import ParameterError

#: (dy, dx) of each arc direction; the reverse of ``k`` is ``(k + K/2) % K``.
DIRECTIONS = {
    4: ((0, 1), (1, 0), (0, -1), (-1, 0)),
    8: ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1)),
}

_NONE = -1        # parent of a free node
_TERMINAL = 100   # parent of a node linked straight to its tree's terminal
_ORPHAN = 101     # parent of a node waiting for adoption
_INF_D = 1 << 40
_FORWARD = np.array(DIRECTIONS[8][:4], np.int64)  # E, SE, S, SW: one arc of each 8-neighbour pair


@njit(cache=True)
def _bk_maxflow(rcap, tr, off, rev, parent, sink, ts, dist, queue, inq, orphans, marked, clock, changed, reuse):
    """Run Boykov-Kolmogorov to completion on the residual state, in place.

    ``parent``: arc index towards the parent, _TERMINAL, _ORPHAN or _NONE;
    ``sink``: 1 in the sink tree; ``ts``/``dist``: BK's timestamp and
    distance marks; ``queue`` (active nodes, FIFO, flagged in ``inq``) and
    ``orphans`` (deque) are ring buffers of one slot per node; ``clock[0]``
    is BK's TIME. ``reuse``: keep the previous run's trees and repair them
    around ``changed`` (nodes whose ``tr`` moved since) instead of starting
    afresh. One function on purpose: Numba reference-counts every array
    passed to a helper, which cost more than the search itself.
    """
    n = tr.shape[0]
    n_arcs = off.shape[0]
    qh = qn = oh = on = 0
    if reuse:
        now = clock[0] + 1
        for i in changed:
            marked[i] = 1
        for i in changed:
            marked[i] = 0
            if inq[i] == 0:
                queue[(qh + qn) % n] = i
                qn += 1
                inq[i] = 1
            if tr[i] == 0:
                if parent[i] != _NONE and parent[i] != _ORPHAN:
                    parent[i] = _ORPHAN
                    orphans[(oh + on) % n] = i
                    on += 1
                continue
            to_sink = tr[i] < 0
            if parent[i] == _NONE or (sink[i] == 1) != to_sink:
                sink[i] = 1 if to_sink else 0
                for k in range(n_arcs):
                    j = i + off[k]
                    if marked[j]:
                        continue
                    a = parent[j]
                    if a >= 0 and a < n_arcs and j + off[a] == i:
                        parent[j] = _ORPHAN
                        orphans[(oh + on) % n] = j
                        on += 1
                    r = rcap[j, rev[k]] if to_sink else rcap[i, k]
                    if parent[j] != _NONE and (sink[j] == 1) != to_sink and r > 0 and inq[j] == 0:
                        queue[(qh + qn) % n] = j
                        qn += 1
                        inq[j] = 1
            parent[i] = _TERMINAL
            ts[i] = now
            dist[i] = 1
    else:
        now = 0
        for i in range(n):
            inq[i] = 0
            ts[i] = 0
            if tr[i] != 0:
                sink[i] = 1 if tr[i] < 0 else 0
                parent[i] = _TERMINAL
                dist[i] = 1
                queue[qn] = i
                qn += 1
                inq[i] = 1
            else:
                parent[i] = _NONE
    current = -1
    adopting = on > 0          # the reuse repair may have left orphans
    while True:
        if not adopting:
            # --- growth: take an active node, extend its tree until it meets the other tree
            i = current
            if i >= 0:
                inq[i] = 0
                if parent[i] == _NONE:
                    i = -1
            while i < 0 and qn > 0:
                i = queue[qh]
                qh = (qh + 1) % n
                qn -= 1
                inq[i] = 0
                if parent[i] == _NONE:
                    i = -1
            if i < 0:
                break
            in_sink = sink[i] == 1
            s_node = t_node = k_mid = -1
            for k in range(n_arcs):
                j = i + off[k]
                r = rcap[j, rev[k]] if in_sink else rcap[i, k]
                if r <= 0:
                    continue
                if parent[j] == _NONE:
                    sink[j] = sink[i]
                    parent[j] = rev[k]
                    ts[j] = ts[i]
                    dist[j] = dist[i] + 1
                    if inq[j] == 0:
                        queue[(qh + qn) % n] = j
                        qn += 1
                        inq[j] = 1
                elif (sink[j] == 1) != in_sink:
                    if in_sink:
                        s_node, t_node, k_mid = j, i, rev[k]
                    else:
                        s_node, t_node, k_mid = i, j, k
                    break
                elif ts[j] <= ts[i] and dist[j] > dist[i]:
                    parent[j] = rev[k]
                    ts[j] = ts[i]
                    dist[j] = dist[i] + 1
            now += 1
            if k_mid < 0:
                current = -1
                continue
            inq[i] = 1
            current = i

            # --- augmentation: bottleneck along source root .. s_node -> t_node .. sink root
            b = rcap[s_node, k_mid]
            v = s_node
            while parent[v] != _TERMINAL:
                d = parent[v]
                b = min(b, rcap[v + off[d], rev[d]])
                v += off[d]
            b = min(b, tr[v])
            v = t_node
            while parent[v] != _TERMINAL:
                d = parent[v]
                b = min(b, rcap[v, d])
                v += off[d]
            b = min(b, -tr[v])
            rcap[s_node, k_mid] -= b
            rcap[t_node, rev[k_mid]] += b
            for side in range(2):
                v = s_node if side == 0 else t_node
                p = v
                while True:
                    d = parent[v]
                    if d == _TERMINAL:
                        tr[v] += -b if side == 0 else b
                        saturated = tr[v] == 0
                    else:
                        p = v + off[d]
                        if side == 0:
                            rcap[v, d] += b
                            rcap[p, rev[d]] -= b
                            saturated = rcap[p, rev[d]] == 0
                        else:
                            rcap[p, rev[d]] += b
                            rcap[v, d] -= b
                            saturated = rcap[v, d] == 0
                    if saturated:           # orphan, to the front of the deque
                        parent[v] = _ORPHAN
                        oh = (oh - 1) % n
                        orphans[oh] = v
                        on += 1
                    if d == _TERMINAL:
                        break
                    v = p
            adopting = True

        # --- adoption: give every orphan a parent in its own tree, or free it
        while on > 0:
            o = orphans[oh]
            oh = (oh + 1) % n
            on -= 1
            o_sink = sink[o] == 1
            best_k = -1
            d_min = _INF_D
            for k in range(n_arcs):
                j = u = o + off[k]
                r = rcap[o, k] if o_sink else rcap[j, rev[k]]
                if r <= 0 or (sink[j] == 1) != o_sink or parent[j] == _NONE:
                    continue
                d = 0                     # distance from j to its terminal, _INF_D if it hangs from an orphan
                while True:
                    if ts[u] == now:
                        d += dist[u]
                        break
                    a = parent[u]
                    d += 1
                    if a == _TERMINAL:
                        ts[u] = now
                        dist[u] = 1
                        break
                    if a == _ORPHAN:
                        d = _INF_D
                        break
                    u += off[a]
                if d < _INF_D:
                    if d < d_min:
                        best_k = k
                        d_min = d
                    while ts[j] != now:   # mark the path for the next checks
                        ts[j] = now
                        dist[j] = d
                        d -= 1
                        j += off[parent[j]]
            if best_k >= 0:
                parent[o] = best_k
                ts[o] = now
                dist[o] = d_min + 1
                continue
            parent[o] = _NONE
            for k in range(n_arcs):
                j = o + off[k]
                a = parent[j]
                if (sink[j] == 1) != o_sink or a == _NONE:
                    continue
                r = rcap[o, k] if o_sink else rcap[j, rev[k]]
                if r > 0 and inq[j] == 0:
                    queue[(qh + qn) % n] = j
                    qn += 1
                    inq[j] = 1
                if a != _TERMINAL and a != _ORPHAN and j + off[a] == o:
                    parent[j] = _ORPHAN
                    orphans[(oh + on) % n] = j
                    on += 1
        adopting = False
    clock[0] = now


@njit(cache=True)
def _load_edges(weights, dy, dx, caps):
    k_count, h, w = weights.shape
    caps[:] = 0.0
    for k in range(k_count):
        for y in range(h):
            yy = y + dy[k]
            if yy < 0 or yy >= h:
                continue
            for x in range(w):
                xx = x + dx[k]
                if 0 <= xx < w:
                    caps[(y + 1) * (w + 2) + x + 1, k] = weights[k, y, x]


@njit(cache=True)
def _arc_sums(caps, off, rev, out_sum, in_sum):
    """Per node: total capacity of its out-arcs and of its in-arcs."""
    for p in range(caps.shape[0]):
        o = 0.0
        i = 0.0
        for k in range(off.shape[0]):
            o += caps[p, k]
            if 0 <= p + off[k] < caps.shape[0]:
                i += caps[p + off[k], rev[k]]
        out_sum[p] = o
        in_sum[p] = i


@njit(cache=True)
def _classify(out_sum, in_sum, source, sink, fixed):
    """Persistency: 1 where ``S - T >= sum of out-arcs`` (source side in a minimum cut), 0 where
    ``T - S >= sum of in-arcs`` (sink side), else -1 (free); padding nodes stay -1. Returns the count fixed."""
    h, w = source.shape
    count = 0
    for y in range(h):
        for x in range(w):
            p = (y + 1) * (w + 2) + x + 1
            d = source[y, x] - sink[y, x]
            fixed[p] = 1 if d >= out_sum[p] else (0 if -d >= in_sum[p] else -1)
            count += fixed[p] >= 0
    return count


@njit(cache=True)
def _fold(caps, off, rev, source, sink, fixed, rcap, tr, seff):
    """Residual graph of the free nodes: arcs to fixed nodes become their terminal capacity.

    Returns the terminal capacity the fixed nodes cut (on the side they lose).
    """
    h, w = source.shape
    constant = 0.0
    tr[:] = 0.0
    seff[:] = 0.0
    for y in range(h):
        for x in range(w):
            p = (y + 1) * (w + 2) + x + 1
            if fixed[p] == 1:
                constant += sink[y, x]
            elif fixed[p] == 0:
                constant += source[y, x]
            s_cap, t_cap = source[y, x], sink[y, x]
            for k in range(off.shape[0]):
                j = p + off[k]
                if fixed[p] < 0 and fixed[j] < 0:
                    rcap[p, k] = caps[p, k]
                    continue
                rcap[p, k] = 0.0
                if fixed[p] < 0:
                    if fixed[j] == 1:
                        s_cap += caps[j, rev[k]]
                    else:
                        t_cap += caps[p, k]
            if fixed[p] < 0:
                tr[p] = s_cap - t_cap
                seff[p] = s_cap
    return constant


@njit(cache=True)
def _retarget(fixed, tr, seff, source, sink, new_source, new_sink, changed):
    """Move the free nodes' terminal capacities to new values; list the nodes whose ``tr`` moved.

    Returns (number changed, new constant of the fixed nodes' terminal capacities).
    """
    h, w = source.shape
    n = 0
    constant = 0.0
    for y in range(h):
        for x in range(w):
            p = (y + 1) * (w + 2) + x + 1
            ds = new_source[y, x] - source[y, x]
            delta = ds - (new_sink[y, x] - sink[y, x])
            source[y, x] = new_source[y, x]
            sink[y, x] = new_sink[y, x]
            if fixed[p] == 1:
                constant += sink[y, x]
            elif fixed[p] == 0:
                constant += source[y, x]
            elif delta != 0:
                tr[p] += delta
                seff[p] += ds
                changed[n] = p
                n += 1
    return n, constant


@njit(cache=True)
def _fixed_arcs(caps, off, fixed):
    """Capacity of the arcs from source-fixed to sink-fixed nodes."""
    total = 0.0
    for p in range(fixed.shape[0]):
        if fixed[p] == 1:
            for k in range(off.shape[0]):
                if fixed[p + off[k]] == 0:
                    total += caps[p, k]
    return total


@njit(cache=True)
def _flow_value(seff, tr, fixed):
    """Flow of the free part: its source capacity minus what is left of it (tr > 0)."""
    f = 0.0
    for p in range(tr.shape[0]):
        if fixed[p] < 0:
            f += seff[p] - max(tr[p], 0.0)
    return f


def _check_capacities(values, what, low=0.0):
    values = np.ascontiguousarray(values, np.float64)
    if values.size and not (values.min() >= low and values.max() < np.inf):
        raise ParameterError(f"{what} capacities must be finite{' and >= 0' if low == 0 else ''}")
    return values


@njit(cache=True)
def _source_side(fixed, parent, sink, out):
    h, w = out.shape
    for y in range(h):
        for x in range(w):
            p = (y + 1) * (w + 2) + x + 1
            if fixed[p] >= 0:
                out[y, x] = fixed[p] == 1
            else:
                out[y, x] = parent[p] == _NONE or sink[p] == 0


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
        if connectivity not in DIRECTIONS:
            raise ParameterError(f"connectivity must be 4 or 8, got {connectivity}")
        if height < 1 or width < 1:
            raise ParameterError(f"grid must be at least 1 x 1, got {height} x {width}")
        self.shape = (int(height), int(width))
        self.reduce = reduce
        dirs = np.array(DIRECTIONS[connectivity], np.int64)
        k_count = len(dirs)
        self._dy, self._dx = dirs[:, 0].copy(), dirs[:, 1].copy()
        self._off = self._dy * (width + 2) + self._dx
        self._rev = (np.arange(k_count) + k_count // 2) % k_count
        n = (height + 2) * (width + 2)
        self._caps = np.zeros((n, k_count))
        self._rcap = np.zeros((n, k_count))
        self._tr = np.zeros(n)
        self._seff = np.zeros(n)
        self._out_sum = np.zeros(n)
        self._in_sum = np.zeros(n)
        self._fixed = np.full(n, -1, np.int8)
        self._check = np.full(n, -1, np.int8)
        self._source = np.zeros(self.shape)
        self._sink = np.zeros(self.shape)
        self._parent = np.full(n, _NONE, np.int8)
        self._in_sink = np.zeros(n, np.uint8)
        self._ts = np.zeros(n, np.int64)
        self._dist = np.zeros(n, np.int64)
        self._queue = np.zeros(n, np.int64)
        self._inq = np.zeros(n, np.uint8)
        self._orphans = np.zeros(n, np.int64)
        self._marked = np.zeros(n, np.uint8)
        self._changed = np.zeros(height * width, np.int64)
        self._clock = np.zeros(1, np.int64)
        self._arc_constant = 0.0
        self._solved = False
        self.fixed = 0
        self.flow = 0.0

    def set_edges(self, weights):
        """Set the arc capacities (K, h, w); the next solve starts afresh."""
        weights = _check_capacities(weights, "arc")
        if weights.shape != (len(self._off),) + self.shape:
            raise ParameterError(f"weights must have shape {(len(self._off),) + self.shape}, got {weights.shape}")
        _load_edges(weights, self._dy, self._dx, self._caps)
        _arc_sums(self._caps, self._off, self._rev, self._out_sum, self._in_sum)
        self._solved = False

    def solve(self, source, sink, reuse=False):
        """Max-flow with terminal capacities ``source``/``sink`` (h, w); returns its value."""
        source, sink = _check_capacities(source, "source", -np.inf), _check_capacities(sink, "sink", -np.inf)
        if source.shape != self.shape or sink.shape != self.shape:
            raise ParameterError(f"source and sink must have shape {self.shape}, got {source.shape}, {sink.shape}")
        shift = np.minimum(np.minimum(source, sink), 0.0)
        offset = shift.sum()
        if offset < 0:   # a cut pays S or T: lifting both by the same amount only moves the energy
            source, sink = source - shift, sink - shift
        if self.reduce:
            self.fixed = _classify(self._out_sum, self._in_sum, source, sink, self._check)
        reuse = reuse and self._solved and np.array_equal(self._check, self._fixed)
        if reuse:
            n, constant = _retarget(self._fixed, self._tr, self._seff, self._source, self._sink, source, sink,
                                    self._changed)
            constant += self._arc_constant
        else:
            self._fixed[:] = self._check
            self._source[:] = source
            self._sink[:] = sink
            self._arc_constant = _fixed_arcs(self._caps, self._off, self._fixed)
            constant = self._arc_constant + _fold(self._caps, self._off, self._rev, source, sink, self._fixed,
                                                  self._rcap, self._tr, self._seff)
            n = 0
        _bk_maxflow(self._rcap, self._tr, self._off, self._rev, self._parent, self._in_sink, self._ts, self._dist,
                   self._queue, self._inq, self._orphans, self._marked, self._clock, self._changed[:n], reuse)
        self._solved = True
        self.flow = offset + constant + _flow_value(self._seff, self._tr, self._fixed)
        return self.flow

    def source_side(self, out=None):
        """Boolean (h, w): True where the minimum cut leaves the pixel with the source."""
        if out is None:
            out = np.empty(self.shape, bool)
        _source_side(self._fixed, self._parent, self._in_sink, out)
        return out


@njit(cache=True)
def contrast_weights(image, gamma, out):
    """GrabCut's n-link capacities of an (h, w, 3) image into ``out (8, h, w)``; returns beta.

    ``w = gamma / |d| * exp(-beta ||z_p - z_q||^2)`` over the 8-neighbourhood
    (``DIRECTIONS[8]``, both arcs of a pair get the same capacity),
    ``beta = 1 / (2 mean ||z_p - z_q||^2)`` over its pairs (0 on a uniform image).
    """
    h, w, _ = image.shape
    out[:] = 0.0
    total = 0.0
    for k in range(4):
        dy, dx = _FORWARD[k, 0], _FORWARD[k, 1]
        for y in range(h - dy):
            for x in range(max(0, -dx), min(w, w - dx)):
                s = 0.0
                for c in range(3):
                    dd = float(image[y, x, c]) - float(image[y + dy, x + dx, c])
                    s += dd * dd
                out[k, y, x] = s
                total += s
    pairs = 4 * w * h - 3 * w - 3 * h + 2
    beta = 1.0 / (2.0 * total / pairs) if total > 1e-12 else 0.0
    for k in range(4):
        dy, dx = _FORWARD[k, 0], _FORWARD[k, 1]
        g = gamma if dx == 0 or dy == 0 else gamma / np.sqrt(2.0)
        for y in range(h - dy):
            for x in range(max(0, -dx), min(w, w - dx)):
                v = g * np.exp(-beta * out[k, y, x])
                out[k, y, x] = v
                out[k + 4, y + dy, x + dx] = v
    return beta
