"""Argument checks of CFPG, MBO and the kernels: one table of (function, argument, bad value, error).

Every bad value is refused at the entry with the project's error, whose
message names the argument (the fuzz that found these reached ``int()``,
Numba's typing, numpy or OpenCV's allocator instead).
"""
import numpy as np
import pytest

from pslg.runtime import mbo
from pslg.runtime.cfpg import foreground_point
from pslg.runtime.errors import BoxError, ImageError, ParameterError, PointError
from pslg.runtime.kernels import max_threads, set_threads, threads
from pslg.runtime.kernels.kmeans import kmeans
from pslg.runtime.kernels.maxflow import GridMaxflow

RNG = np.random.default_rng(0)
IMAGE = RNG.integers(0, 256, (40, 40, 3), dtype=np.uint8)
BOX = (5.0, 5.0, 30.0, 30.0)
MASK = np.zeros((40, 40), bool)
MASK[10:25, 10:25] = True
READ_ONLY = np.zeros((40, 40), bool)
READ_ONLY.flags.writeable = False
TRIMAP = mbo.trimap_from_mask(MASK, 3)
GRID = np.ones((8, 4, 4))


def _grid(**kw):
    graph = GridMaxflow(4, 4)
    graph.set_edges(GRID)
    graph.solve(np.ones((4, 4)), np.zeros((4, 4)))
    return graph


CALLS = {
    "foreground_point": lambda kw: foreground_point(kw.pop("image", IMAGE), kw.pop("box", BOX), **kw),
    "refine": lambda kw: mbo.refine(kw.pop("image", IMAGE), kw.pop("mask", MASK), kw.pop("box", BOX), **kw),
    "refine classical": lambda kw: mbo.refine(IMAGE, None, BOX, **kw),
    "grabcut": lambda kw: mbo.grabcut(kw.pop("window", IMAGE), kw.pop("trimap", TRIMAP.copy()), **kw),
    "kmeans": lambda kw: kmeans(kw.pop("x", IMAGE.reshape(-1, 3)), kw.pop("k", 2), **kw),
    "GridMaxflow": lambda kw: GridMaxflow(kw.pop("height", 4), kw.pop("width", 4), **kw),
    "GridMaxflow.set_edges": lambda kw: GridMaxflow(4, 4).set_edges(kw["weights"]),
    "GridMaxflow.solve": lambda kw: _grid().solve(kw.pop("source", np.ones((4, 4))), kw.pop("sink", np.zeros((4, 4))),
                                                  **kw),
    "GridMaxflow.source_side": lambda kw: _grid().source_side(**kw),
    "set_threads": lambda kw: set_threads(kw["threads"]),
}

NOT_INTEGERS = [None, "3", np.nan, np.inf, 2.5, True]
TABLE = [
    ("foreground_point", "seed", NOT_INTEGERS[:5] + [True], ParameterError),
    ("foreground_point", "area_fraction", [-0.1, 1.5, np.nan, "0.05", True, None], ParameterError),
    ("foreground_point", "peak_fraction", [0, 1, np.nan, -1, "0.5"], ParameterError),
    ("foreground_point", "kmeans_iterations", [0, 1.5, "10", True, None, -3], ParameterError),
    ("foreground_point", "max_pixels", [0, -5, 2.5, True, np.inf], ParameterError),
    ("foreground_point", "image", [IMAGE.astype(np.float32), IMAGE.tolist(), np.zeros((0, 4, 3), np.uint8)],
     ImageError),
    ("foreground_point", "box", [(0, 0, np.nan, 4), (0, 0, 1), "box", (30, 30, 5, 5)], BoxError),
    ("refine", "iterations", [-1, 2.5, "5", True, None, 10 ** 6], ParameterError),
    ("refine", "gamma", [0, -1, np.nan, np.inf, "50", None], ParameterError),
    ("refine", "tol", [-1, np.nan, "0", None], ParameterError),
    ("refine", "band", [0, -3, np.nan, np.inf, "3", True], ParameterError),
    ("refine", "margin_fraction", [-0.1, np.nan, None, "0.1"], ParameterError),
    ("refine", "min_margin", [-1, np.inf, "16"], ParameterError),
    ("refine", "seed", NOT_INTEGERS[:5] + [True], ParameterError),
    ("refine", "max_band_nodes", [-5, 0, 2.5, True, "4096"], ParameterError),
    ("refine", "reuse_flow", ["yes", 1, None], ParameterError),
    ("refine", "out", [READ_ONLY, MASK.tolist(), np.zeros((4, 4), bool), np.zeros((40, 40), np.float32),
                       np.zeros((40, 80), bool)[:, ::2]], ParameterError),
    ("refine", "workspace", ["workspace", 3], ParameterError),
    ("refine", "classical_start", ["region", None, 1, "CORE"], ParameterError),
    ("refine", "mask", [MASK[:10], MASK.astype(np.float32), "mask"], ParameterError),
    ("refine", "point", [(np.nan, 1), (1, 2, 3), (100, 1)], PointError),
    ("refine classical", "seed_radius", [-1, np.nan, "3", True], ParameterError),
    ("refine classical", "point", [(35, 35), (np.inf, 3)], PointError),
    ("grabcut", "iterations", [-1, 2.5, "5", True], ParameterError),
    ("grabcut", "components", [0, 200, 2.5, True], ParameterError),
    ("grabcut", "sample", [0, -1, 1.5], ParameterError),
    ("grabcut", "seed", NOT_INTEGERS[:5], ParameterError),
    ("grabcut", "window", [IMAGE.astype(np.float32), IMAGE[:, :, :2].copy(), IMAGE.tolist()], ParameterError),
    ("grabcut", "trimap", [TRIMAP[:10].copy(), np.full((40, 40), 7, np.uint8), TRIMAP.astype(np.int32),
                           np.zeros((40, 40), np.uint8)[:, :].T[:, ::-1]], ParameterError),
    ("kmeans", "x", [np.zeros((0, 3)), np.zeros(5), [[1, 2, 3]], np.full((4, 3), np.nan), np.ones((4, 3), bool)],
     ParameterError),
    ("kmeans", "k", [0, 2.5, True, "2", None, -1], ParameterError),
    ("kmeans", "seed", NOT_INTEGERS, ParameterError),
    ("kmeans", "max_iter", [-1, 1.5, "10", True], ParameterError),
    ("kmeans", "tol", [-1, np.nan, "0"], ParameterError),
    ("GridMaxflow", "height", [0, -1, 2.5, True, "4"], ParameterError),
    ("GridMaxflow", "width", [0, 2.5, None], ParameterError),
    ("GridMaxflow", "connectivity", [6, 8.0, "8"], ParameterError),
    ("GridMaxflow", "reduce", ["no", None, 1], ParameterError),
    ("GridMaxflow.set_edges", "weights", [np.ones((4, 4, 4)), -GRID, GRID * np.nan, GRID * np.inf, GRID.tolist(),
                                          GRID > 0], ParameterError),
    ("GridMaxflow.solve", "source", [np.ones((3, 4)), np.full((4, 4), np.nan), np.full((4, 4), np.inf), [[1.0]]],
     ParameterError),
    ("GridMaxflow.solve", "reuse", ["yes", None], ParameterError),
    ("GridMaxflow.source_side", "out", [np.zeros((4, 4), bool)[::1, ::-1], np.zeros((3, 4), bool),
                                        np.zeros((4, 4), np.uint8), [[True]]], ParameterError),
    ("set_threads", "threads", [0, -1, max_threads() + 1, 1.5, True, "2", None], ParameterError),
]
ROWS = [(fn, arg, bad, error) for fn, arg, values, error in TABLE for bad in values]


@pytest.mark.parametrize("fn, arg, bad, error", ROWS,
                         ids=[f"{fn}-{arg}-{i}" for i, (fn, arg, _, _) in enumerate(ROWS)])
def test_bad_argument_is_refused_and_named(fn, arg, bad, error):
    before = threads()
    with pytest.raises(error) as caught:
        CALLS[fn]({arg: bad})
    assert threads() == before
    name = {"box": "box", "image": "image", "point": "point"}.get(arg, arg)
    assert name in str(caught.value) or error in (BoxError, ImageError, PointError), str(caught.value)


def test_the_valid_calls_of_the_table_run():
    """The table's calls without a bad value work, so each row tests its argument alone."""
    for fn, call in CALLS.items():
        if fn == "GridMaxflow.set_edges":
            call({"weights": GRID})
        elif fn == "set_threads":
            call({"threads": threads()})
        else:
            call({})
