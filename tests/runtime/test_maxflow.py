"""Grid max-flow against PyMaxflow on random grids; GrabCut's n-link weights against numpy."""
import numpy as np
import pytest

from pslg.runtime.errors import ParameterError
from pslg.benchmarks.kernels import pymaxflow_cut
from pslg.runtime.kernels.maxflow import DIRECTIONS, GridMaxflow, contrast_weights

maxflow = pytest.importorskip("maxflow")


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
    expected, _ = pymaxflow_cut(weights, source, sink)
    tol = 1e-6 * max(1.0, abs(expected))
    assert abs(flow - expected) <= tol
    assert abs(cut_energy(weights, source, sink, graph.source_side()) - expected) <= tol


@pytest.mark.parametrize("reduce", [True, False])
def test_random_grids_match_pymaxflow(reduce):
    rng = np.random.default_rng(2024)
    for case in range(120):
        weights, source, sink = random_graph(rng, case)
        graph = GridMaxflow(*source.shape, connectivity=len(weights), reduce=reduce)
        graph.set_edges(weights)
        assert_min_cut(graph, weights, source, sink, graph.solve(source, sink))


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
            fixed_before = graph._fixed.copy()
            flow = graph.solve(source, sink, reuse=True)
            warm += np.array_equal(fixed_before, graph._fixed)   # same fixed nodes: the warm start ran
            assert_min_cut(graph, weights, source, sink, flow)
    assert warm == 160 if not reduce else warm > 40


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


def test_bad_parameters():
    with pytest.raises(ParameterError):
        GridMaxflow(4, 4, connectivity=6)
    with pytest.raises(ParameterError):
        GridMaxflow(0, 4)
    graph = GridMaxflow(4, 4)
    with pytest.raises(ParameterError):
        graph.set_edges(np.zeros((4, 4, 4)))
    with pytest.raises(ParameterError):
        graph.solve(np.zeros((3, 4)), np.zeros((4, 4)))
    for bad in (np.nan, np.inf):
        with pytest.raises(ParameterError):
            graph.solve(np.full((4, 4), bad), np.zeros((4, 4)))
    for bad in (-1.0, np.nan, np.inf):
        with pytest.raises(ParameterError):
            graph.set_edges(np.full((8, 4, 4), bad))
