"""Grid max-flow against PyMaxflow on random grids; GrabCut's n-link weights against numpy."""
import numpy as np
import pytest

from pslg.runtime.kernels.grabcut import contrast_weights
from pslg.runtime.kernels.maxflow import DIRECTIONS, GridMaxflow
from tests.kernel_cases import pymaxflow

pytest.importorskip("maxflow")


def cut_energy(weights, source, sink, side):
    """Capacity of the cut that leaves ``side`` with the source, counted arc by arc."""
    energy = np.where(side, sink, source).sum()
    h, w = side.shape
    for k, (dy, dx) in enumerate(DIRECTIONS[len(weights)]):
        ys, xs = np.mgrid[0:h, 0:w]
        ok = (ys + dy >= 0) & (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)
        y2, x2 = np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)
        energy += (weights[k] * (ok & side & ~side[y2, x2])).sum()
    return energy


def random_graph(rng, case):
    """Varied shapes, weight scales and terminal patterns, including all-source and all-sink grids."""
    connectivity = 4 if case % 2 else 8
    h, w = (1, 1) if case == 0 else rng.integers(1, 48, 2)
    weights = rng.random((connectivity, h, w)) * rng.choice([0.01, 1.0, 50.0])
    weights[rng.random(weights.shape) < 0.2] = 0.0
    scale = rng.choice([0.1, 5.0, 500.0])
    source, sink = rng.random((h, w)) * scale, rng.random((h, w)) * scale
    pattern = case % 5
    if pattern == 1:                       # all source
        sink[:] = 0
    elif pattern == 2:                     # all sink
        source[:] = 0
    elif pattern == 3:                     # sparse seeds, as in interactive segmentation
        source[rng.random((h, w)) < 0.9] = 0
        sink[rng.random((h, w)) < 0.9] = 0
    elif pattern == 4:                     # hard constraints that the reduction fixes
        hard = rng.random((h, w)) < 0.3
        source[hard], sink[hard] = 1e4, 0
    if case % 7 == 3:                      # negative unaries (log-likelihoods of peaked densities)
        source -= scale / 2
    return weights, source, sink


def assert_min_cut(graph, weights, source, sink, flow):
    """The same flow as PyMaxflow and a cut of that capacity; returns the nodes whose side differs from its cut
    (both put the nodes that cannot reach the sink on the source side, so only ties can differ)."""
    expected, theirs = pymaxflow(weights, source, sink, DIRECTIONS[len(weights)])
    tol = 1e-6 * max(1.0, abs(expected))
    assert abs(flow - expected) <= tol
    ours = graph.source_side()
    assert abs(cut_energy(weights, source, sink, ours) - expected) <= tol
    return np.count_nonzero(ours != theirs)


@pytest.mark.parametrize("reduce", [True, False])
def test_random_grids_match_pymaxflow(reduce):
    rng = np.random.default_rng(2024)
    differing = nodes = 0
    for case in range(120):
        weights, source, sink = random_graph(rng, case)
        graph = GridMaxflow(*source.shape, connectivity=len(weights), reduce=reduce)
        graph.set_edges(weights)
        differing += assert_min_cut(graph, weights, source, sink, graph.solve(source, sink))
        nodes += source.size
    assert differing <= 0.001 * nodes          # ties only: these grids have 20 % zero-capacity arcs


@pytest.mark.parametrize("reduce", [True, False])
def test_reuse_after_terminal_changes_matches_fresh_solves(reduce):
    rng = np.random.default_rng(7)
    warm = 0
    for case in range(40):
        weights, source, sink = random_graph(rng, case)
        graph = GridMaxflow(*source.shape, connectivity=len(weights), reduce=reduce)
        graph.set_edges(weights)
        graph.solve(source, sink)
        for _ in range(4):
            source = source * rng.uniform(0.5, 1.5, source.shape)
            sink = np.where(rng.random(sink.shape) < 0.3, sink + rng.random(sink.shape) * 3, sink)
            fixed_before = graph._graph.fixed.copy()
            flow = graph.solve(source, sink, reuse=True)
            warm += np.array_equal(fixed_before, graph._graph.fixed)   # same fixed nodes: the warm start ran
            assert_min_cut(graph, weights, source, sink, flow)
    assert warm == 160 if not reduce else warm > 40


@pytest.mark.parametrize("shape", [(190, 180), (300, 250)], ids=["2 parts", "4 parts"])
def test_graphs_cut_into_node_ranges_give_the_cut_of_one_range(shape):
    """Large grids are solved in node ranges first (serially, or at once on two threads): the same cut, bit
    for bit, as in one range and as PyMaxflow's, cold and warm started."""
    from pslg.runtime.kernels import maxflow, set_threads, threads
    rng = np.random.default_rng(11)
    h, w = shape
    weights = rng.random((8, h, w)) * 50.0
    blobs = np.cumsum(np.cumsum(rng.standard_normal((h, w)), 0), 1)       # large same-side regions
    source = np.maximum(blobs, 0) + rng.random((h, w)) * 5
    sink = np.maximum(-blobs, 0) + rng.random((h, w)) * 5
    parts = maxflow.parts_for(h * w)
    assert parts == {(190, 180): 2, (300, 250): 4}[shape]
    graphs = {}
    before = threads()
    try:
        set_threads(2)
        for key in ((1, False), (parts, False), (parts, True)):
            graph = GridMaxflow(h, w, reduce=False)
            graph.set_edges(weights)
            flows = [maxflow.solve(graph._graph, source.reshape(-1), sink.reshape(-1), False, False, *key)]
            sides = [graph.source_side().copy()]
            flows.append(maxflow.solve(graph._graph, (source * 1.3).reshape(-1), sink.reshape(-1), True, False,
                                       *key))
            sides.append(graph.source_side().copy())
            graphs[key] = flows, sides
    finally:
        set_threads(before)
    (one_flows, one_sides), *others = graphs.values()
    for flows, sides in others:
        for a, b in zip(sides, one_sides):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(flows, one_flows, rtol=1e-12)
    expected, theirs = pymaxflow(weights, source, sink, DIRECTIONS[8])
    assert abs(one_flows[0] - expected) <= 1e-6 * expected and np.count_nonzero(one_sides[0] != theirs) == 0
    assert 0.1 < one_sides[0].mean() < 0.9


def test_reduction_fixes_dominant_nodes_only():
    weights = np.full((8, 6, 6), 1.0)
    source, sink = np.zeros((6, 6)), np.zeros((6, 6))
    source[0, 0] = 100.0     # outweighs its 3 arcs: fixed to the source side
    sink[5, 5] = 2.0         # does not outweigh its 3 in-arcs: stays free
    graph = GridMaxflow(6, 6)
    graph.set_edges(weights)
    flow = graph.solve(source, sink)
    assert graph.fixed == 1
    assert graph.source_side()[0, 0]
    assert_min_cut(graph, weights, source, sink, flow)


def test_contrast_weights_match_numpy():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    weights = np.empty((8, 9, 11))
    beta = contrast_weights(image, 50.0, weights)
    z = image.astype(np.float64)
    diffs = [((z[:, 1:] - z[:, :-1]) ** 2).sum(-1), ((z[1:, 1:] - z[:-1, :-1]) ** 2).sum(-1),
             ((z[1:] - z[:-1]) ** 2).sum(-1), ((z[1:, :-1] - z[:-1, 1:]) ** 2).sum(-1)]
    assert beta == pytest.approx(1 / (2 * sum(d.sum() for d in diffs) / sum(d.size for d in diffs)))
    h, w = 9, 11
    for k, (dy, dx) in enumerate(DIRECTIONS[8]):
        gamma = 50.0 if dy == 0 or dx == 0 else 50.0 / np.sqrt(2)
        for y in range(h):
            for x in range(w):
                if 0 <= y + dy < h and 0 <= x + dx < w:
                    d = ((z[y, x] - z[y + dy, x + dx]) ** 2).sum()
                    assert weights[k, y, x] == pytest.approx(gamma * np.exp(-beta * d), rel=1e-12)
                else:
                    assert weights[k, y, x] == 0
    uniform = np.full((5, 5, 3), 9, np.uint8)
    assert contrast_weights(uniform, 50.0, np.empty((8, 5, 5))) == 0.0


def test_grabcut_band_cut_matches_the_whole_grid():
    """GrabCut's graph cut on its probable band alone (sure pixels folded in) equals the whole-grid cut."""
    from pslg.runtime import mbo
    from pslg.runtime.kernels import gmm, grabcut
    from pslg.runtime.kernels.maxflow import graph_view, new_graph, source_side
    from tests.kernel_cases import ellipse_prior, real_cases, window_problem
    _, image, box = real_cases()[0]
    window, trimap = window_problem(image, box, ellipse_prior(image.shape, box))
    h, w = trimap.shape
    codes = trimap.reshape(-1)
    nodes, kept_bg, kept_fg = grabcut.layout_size(codes, 1 << 30)
    band = grabcut.band_view(grabcut.band_buffers(h * w, nodes, nodes + kept_bg + kept_fg), h * w, nodes,
                             nodes + kept_bg + kept_fg)
    graph = graph_view(new_graph(nodes, 8), nodes)
    grabcut.layout(window.reshape(-1, 3), codes, 1 << 30, band)
    beta = grabcut.beta(window, 1, False)
    grabcut.band_links(window, trimap, band, beta, 50.0, graph, False)
    mix = gmm.empty_mixtures(2, 5)
    grabcut.init_mixtures(band, mix, 0, False)
    grabcut.refit(band, mix, False)
    grabcut.terminals(band)
    grabcut.cut(band, graph, False, 1, False)
    # the whole grid: probable pixels get the likelihoods, sure ones lambda = 9 gamma
    nll = np.zeros((h * w, 2))
    nll[band.nodes] = band.nll[:nodes]
    source = np.where(codes >= 2, nll[:, 0], np.where(codes == mbo.GC_FGD, 450.0, 0.0)).reshape(h, w)
    sink = np.where(codes >= 2, nll[:, 1], np.where(codes == mbo.GC_BGD, 450.0, 0.0)).reshape(h, w)
    weights = np.empty((8, h, w))
    assert contrast_weights(window, 50.0, weights) == beta
    whole = GridMaxflow(h, w, reduce=False)
    whole.set_edges(weights)
    whole.solve(source, sink)
    side = np.empty(nodes, bool)
    source_side(graph, side)
    np.testing.assert_array_equal(whole.source_side().reshape(-1)[band.nodes], side)
    assert 0 < side.sum() < nodes
