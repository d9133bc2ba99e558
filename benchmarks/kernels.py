"""Kernel benchmark: MBO, max-flow and k-means against OpenCV, PyMaxflow and scikit-learn.

    python -m pslg.benchmarks.kernels --json OUT [--repeats 5] [--quick] [--data DIR]

Everything runs in one process on this machine's CPU, on the shipped images
and boxes (marina boats picked by eye, tree crowns from the VOC files). Each
figure is the median of ``repeats`` timed runs after one warm-up, the sides
of a comparison interleaved run by run. A ratio is the other side's
median over ours (> 1: ours is faster), combined over cases as a geometric
mean; the first-call figure is first call / steady state (> 1: slower).
scikit-learn and PyMaxflow are dev dependencies, imported only where used.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

from pslg.runtime import mbo
from pslg.runtime.geometry import pixel_window
from pslg.runtime.image import load_image
from pslg.runtime.kernels import gmm, warmup
from pslg.runtime.kernels.kmeans import kmeans
from pslg.runtime.kernels.maxflow import DIRECTIONS, GridMaxflow, contrast_weights

DEFAULT_DATA = Path(__file__).resolve().parents[1] / "data"

# Single boats in data/marina.png, boxes drawn tight by eye on the image
# (x1, y1, x2, y2, exclusive end): the lone sailing yacht by the pier, the
# two moored in the next berths, and three motor yachts of the lower pier.
MARINA_BOATS = (
    (1237, 756, 1346, 808),
    (1407, 752, 1481, 798),
    (1395, 782, 1476, 828),
    (751, 726, 812, 866),
    (714, 759, 769, 871),
    (663, 751, 721, 881),
)
ITERATIONS = 5
GOALS = {"mbo_window_vs_grabcut": 2.0, "mbo_vs_grabcut_whole_image": 10.0, "maxflow_vs_pymaxflow": 1.0,
         "kmeans_vs_opencv": 1.0, "kmeans_vs_sklearn": 5.0}


def voc_boxes(path, min_side=20):
    """Boxes (x1, y1, x2, y2) of a Pascal VOC file whose shorter side is at least ``min_side``."""
    boxes = []
    for obj in ET.parse(path).getroot().iter("object"):
        bb = obj.find("bndbox")
        box = tuple(float(bb.find(t).text) for t in ("xmin", "ymin", "xmax", "ymax"))
        if min(box[2] - box[0], box[3] - box[1]) >= min_side:
            boxes.append(box)
    return boxes


def load_cases(data_dir=DEFAULT_DATA, per_image=None):
    """[(name, image, box)]: the marina boats, then the tree crowns of both forest images."""
    data_dir = Path(data_dir)
    cases = []
    marina = load_image(data_dir / "marina.png")
    cases += [("marina", marina, tuple(float(v) for v in b)) for b in MARINA_BOATS[:per_image]]
    for name in ("osbs_029", "soap_061"):
        image = load_image(data_dir / f"{name}.png")
        cases += [(name, image, b) for b in voc_boxes(data_dir / f"{name}.xml")[:per_image]]
    return cases


def ellipse_prior(shape, box, fill=0.9):
    """A SAM-like prior: the ellipse inscribed in ``box`` with ``fill`` x its half-axes, (H, W) uint8."""
    prior = np.zeros(shape[:2], np.uint8)
    centre = (int(round((box[0] + box[2]) / 2)), int(round((box[1] + box[3]) / 2)))
    axes = (max(1, int(fill * (box[2] - box[0]) / 2)), max(1, int(fill * (box[3] - box[1]) / 2)))
    cv2.ellipse(prior, centre, axes, 0, 0, 360, 1, -1)
    return prior


def window_problem(image, box, prior=None):
    """(window image, trimap, window) as ``mbo.refine`` builds them for ``prior`` (default: ellipse)."""
    prior = ellipse_prior(image.shape, box) if prior is None else prior
    x0, y0, x1, y1 = window = mbo.window_for(box, image.shape)
    trimap = mbo.trimap_from_mask(prior[y0:y1, x0:x1], mbo.band_width(box))
    return np.ascontiguousarray(image[y0:y1, x0:x1]), trimap, window


def opencv_grabcut(image, trimap=None, rect=None, iterations=ITERATIONS, seed=0):
    """cv2.grabCut from a trimap (GC_INIT_WITH_MASK) or, given ``rect``, from a rectangle; its RNG seeded.

    Returns the resulting trimap (OpenCV codes).
    """
    trimap = np.zeros(image.shape[:2], np.uint8) if trimap is None else trimap.copy()
    cv2.setRNGSeed(seed)
    cv2.grabCut(image, trimap, rect, np.zeros((1, 65)), np.zeros((1, 65)), iterations,
                cv2.GC_INIT_WITH_MASK if rect is None else cv2.GC_INIT_WITH_RECT)
    return trimap


def _medians(repeats, *fns):
    """Median milliseconds of each callable over ``repeats`` interleaved runs, after one warm-up each."""
    times = [[] for _ in fns]
    for fn in fns:
        fn()
    for _ in range(repeats):
        for fn, acc in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            acc.append((time.perf_counter() - t0) * 1e3)
    return [float(np.median(t)) for t in times]


def _geomean(values):
    return float(math.exp(np.mean(np.log(values)))) if values else float("nan")


def _iou(a, b):
    return float((a & b).sum() / max(1, (a | b).sum()))


def _case_row(name, box, ours_ms, theirs_ms, **extra):
    return {"image": name, "box": list(box), "ours_ms": ours_ms, "theirs_ms": theirs_ms,
            "ratio": theirs_ms / ours_ms, **extra}


def bench_mbo_window(cases, repeats):
    """``mbo.grabcut`` vs ``cv2.grabCut`` on the same window, trimap and iteration count.

    Also ours with every max-flow solved afresh (``reuse_flow=False``), to
    show what the warm start between iterations buys.
    """
    rows = []
    for name, image, box in cases:
        window, trimap, _ = window_problem(image, box)
        ours_ms, cv_ms, fresh_ms = _medians(
            repeats, lambda: mbo.grabcut(window, trimap.copy(), ITERATIONS, tol=0.0),
            lambda: opencv_grabcut(window, trimap),
            lambda: mbo.grabcut(window, trimap.copy(), ITERATIONS, tol=0.0, reuse_flow=False))
        ours = trimap.copy()
        mbo.grabcut(window, ours, ITERATIONS, tol=0.0)
        iou = _iou((ours & 1) > 0, (opencv_grabcut(window, trimap) & 1) > 0)
        rows.append(_case_row(name, box, ours_ms, cv_ms, window_px=int(trimap.size), iou=iou,
                              fresh_flow_ms=fresh_ms, ratio_reuse=fresh_ms / ours_ms))
    return {"iterations": ITERATIONS, "cases": rows, "ratio": _geomean([r["ratio"] for r in rows]),
            "ratio_reuse": _geomean([r["ratio_reuse"] for r in rows])}


def bench_mbo_whole_image(cases, repeats):
    """``mbo.refine`` (box window) vs ``cv2.grabCut`` on the whole image with the same trimap rules."""
    rows = []
    for name, image, box in cases:
        prior = ellipse_prior(image.shape, box)
        trimap = mbo.trimap_from_mask(prior, mbo.band_width(box))
        ours_ms, cv_ms = _medians(repeats, lambda: mbo.refine(image, prior, box, iterations=ITERATIONS, tol=0.0),
                                  lambda: opencv_grabcut(image, trimap))
        rows.append(_case_row(name, box, ours_ms, cv_ms, image_px=int(prior.size)))
    return {"iterations": ITERATIONS, "cases": rows, "ratio": _geomean([r["ratio"] for r in rows])}


def grabcut_graph(image, box):
    """GrabCut's first-iteration graph on a box window: n-link weights (8, h, w), source and sink (h, w)."""
    window, trimap, _ = window_problem(image, box)
    h, w = trimap.shape
    planes = gmm.to_planes(window.reshape(-1, 3))
    fg = (trimap.reshape(-1) & 1).astype(bool)
    comp = np.zeros(h * w, np.int8)
    for cls in (0, 1):
        comp[fg == cls] = kmeans(window.reshape(-1, 3)[fg == cls], 5, max_iter=10)[1]
    mix = gmm.empty_mixtures(2, 5)
    gmm.fit(planes, fg.view(np.int8), comp, mix)
    nll, best = np.empty((h * w, 2)), np.zeros((h * w, 2), np.int8)
    gmm.evaluate(planes, mix, np.full(h * w, -1, np.int8), nll, best)
    lam = 9 * 50.0
    tm = trimap.reshape(-1)
    source = np.where(tm >= 2, nll[:, 0], np.where(tm == 1, lam, 0.0)).reshape(h, w)
    sink = np.where(tm >= 2, nll[:, 1], np.where(tm == 0, lam, 0.0)).reshape(h, w)
    weights = np.empty((8, h, w))
    contrast_weights(window, 50.0, weights)
    return weights, source, sink


def pymaxflow_cut(weights, source, sink):
    """PyMaxflow on the same grid graph (built arc direction by arc direction); (flow, source-side mask)."""
    import maxflow
    graph = maxflow.Graph[float]()
    ids = graph.add_grid_nodes(source.shape)
    for k, (dy, dx) in enumerate(DIRECTIONS[len(weights)]):
        structure = np.zeros((3, 3))
        structure[1 + dy, 1 + dx] = 1
        graph.add_grid_edges(ids, weights=weights[k], structure=structure, symmetric=False)
    graph.add_grid_tedges(ids, source, sink)
    flow = graph.maxflow()
    return flow, ~graph.get_grid_segments(ids)


def our_cut(weights, source, sink, reduce=True):
    """Our max-flow on a grid graph, graph set-up included; (flow, source-side mask)."""
    graph = GridMaxflow(*source.shape, connectivity=len(weights), reduce=reduce)
    graph.set_edges(weights)
    flow = graph.solve(source, sink)
    return flow, graph.source_side()


def bench_maxflow(cases, repeats):
    """Our max-flow vs PyMaxflow on GrabCut's graphs of the box windows, graph build included.

    ``ratio`` is the solver as shipped; ``ratio_search_only`` has the
    reduction of dominated nodes switched off (plain Boykov-Kolmogorov).
    """
    rows = []
    for name, image, box in cases:
        graph = grabcut_graph(image, box)
        ours_ms, pm_ms, raw_ms = _medians(repeats, lambda: our_cut(*graph), lambda: pymaxflow_cut(*graph),
                                          lambda: our_cut(*graph, reduce=False))
        ours_flow, pm_flow = our_cut(*graph)[0], pymaxflow_cut(*graph)[0]
        rows.append(_case_row(name, box, ours_ms, pm_ms, nodes=int(graph[1].size), search_only_ms=raw_ms,
                              ratio_search_only=pm_ms / raw_ms,
                              flow_rel_diff=abs(ours_flow - pm_flow) / max(1.0, abs(pm_flow))))
    return {"cases": rows, "ratio": _geomean([r["ratio"] for r in rows]),
            "ratio_search_only": _geomean([r["ratio_search_only"] for r in rows])}


def bench_kmeans(cases, repeats, k):
    """Our k-means++ + Lloyd vs cv2.kmeans (KMEANS_PP_CENTERS) and scikit-learn on box crops, 10 iterations.

    cv2 runs on one thread here, like our kernel (on small crops that is its
    faster setting, and it keeps other processes' load out of the ratio);
    scikit-learn keeps its OpenMP default, which cannot be changed at run time.
    """
    from sklearn.cluster import KMeans
    criteria = (cv2.TERM_CRITERIA_MAX_ITER, 10, 0.0)
    sk = KMeans(n_clusters=k, init="k-means++", n_init=1, max_iter=10, tol=0.0, random_state=0)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    rows = []
    try:
        for name, image, box in cases:
            x0, y0, x1, y1 = pixel_window(box, image.shape[1], image.shape[0])
            pixels = np.ascontiguousarray(image[y0:y1, x0:x1]).reshape(-1, 3)
            ours_ms, cv_ms, sk_ms = _medians(
                repeats, lambda: kmeans(pixels, k, seed=0, max_iter=10),
                lambda: cv2.kmeans(pixels.astype(np.float32), k, None, criteria, 1, cv2.KMEANS_PP_CENTERS),
                lambda: sk.fit(pixels.astype(np.float64)))
            rows.append({"image": name, "box": list(box), "pixels": int(len(pixels)), "ours_ms": ours_ms,
                         "opencv_ms": cv_ms, "sklearn_ms": sk_ms,
                         "ratio_opencv": cv_ms / ours_ms, "ratio_sklearn": sk_ms / ours_ms})
    finally:
        cv2.setNumThreads(threads)
    return {"k": k, "opencv_threads": 1, "cases": rows, "ratio_opencv": _geomean([r["ratio_opencv"] for r in rows]),
            "ratio_sklearn": _geomean([r["ratio_sklearn"] for r in rows])}


_FIRST_CALL = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from pslg.runtime import cfpg, mbo
from pslg.runtime.kernels import warmup
t1 = time.perf_counter()
image = np.load(sys.argv[1]); box = tuple(json.loads(sys.argv[2])); pre = sys.argv[3] == "warmup"
warm_s = warmup() if pre else 0.0
def call():
    t = time.perf_counter()
    point = cfpg.foreground_point(image, box).point
    mbo.refine(image, None, box, point=point)
    return (time.perf_counter() - t) * 1e3
first = call()
steady = sorted(call() for _ in range(int(sys.argv[4])))
print(json.dumps({"import_s": t1 - t0, "warmup_s": warm_s, "first_ms": first, "steady_ms": steady[len(steady) // 2]}))
"""


def bench_first_call(image, box, repeats):
    """CFPG + classical MBO in a fresh process with a warm Numba cache: first call vs steady state."""
    warmup()  # fills the on-disk cache if it is cold
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "image.npy")
        np.save(path, image)
        out = {}
        for mode in ("cold", "warmup"):
            proc = subprocess.run([sys.executable, "-c", _FIRST_CALL, path, json.dumps(list(box)), mode,
                                   str(max(3, repeats))], capture_output=True, text=True)
            if proc.returncode:
                raise RuntimeError(f"first-call subprocess failed:\n{proc.stderr}")
            out[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    cold, warmed = out["cold"], out["warmup"]
    return {"box": list(box), "import_s": cold["import_s"], "first_ms": cold["first_ms"],
            "steady_ms": cold["steady_ms"], "ratio": cold["first_ms"] / cold["steady_ms"],
            "warmup_s": warmed["warmup_s"], "first_after_warmup_ms": warmed["first_ms"],
            "ratio_after_warmup": warmed["first_ms"] / warmed["steady_ms"]}


def run(data_dir=DEFAULT_DATA, repeats=5, quick=False):
    """Every comparison; returns the JSON-ready result."""
    warmup()
    cases = load_cases(data_dir, per_image=2 if quick else 4)
    whole = [cases[-1]] if quick else [cases[0], cases[-1]]   # one tree (400 x 400); + a boat (1920 x 1080)
    result = {
        "machine": {"python": sys.version.split()[0], "numpy": np.__version__, "opencv": cv2.__version__,
                    "opencv_threads": cv2.getNumThreads(), "cpus": os.cpu_count()},
        "repeats": repeats,
        "mbo_window": bench_mbo_window(cases, repeats),
        "mbo_whole_image": bench_mbo_whole_image(whole, repeats),
        "maxflow": bench_maxflow(cases, repeats),
        "kmeans_k2": bench_kmeans(cases, repeats, 2),
        "kmeans_k5": bench_kmeans(cases, repeats, 5),
        "first_call": bench_first_call(cases[0][1], cases[0][2], repeats),
    }
    ratios = {"mbo_window_vs_grabcut": result["mbo_window"]["ratio"],
              "mbo_reused_flow_vs_fresh": result["mbo_window"]["ratio_reuse"],
              "mbo_vs_grabcut_whole_image": result["mbo_whole_image"]["ratio"],
              "maxflow_vs_pymaxflow": result["maxflow"]["ratio"],
              "maxflow_search_only_vs_pymaxflow": result["maxflow"]["ratio_search_only"],
              "kmeans_vs_opencv": result["kmeans_k2"]["ratio_opencv"],
              "kmeans_vs_sklearn": result["kmeans_k2"]["ratio_sklearn"],
              "kmeans_k5_vs_opencv": result["kmeans_k5"]["ratio_opencv"],
              "first_call_vs_steady": result["first_call"]["ratio"],
              "first_call_after_warmup_vs_steady": result["first_call"]["ratio_after_warmup"]}
    result["ratios"] = ratios
    result["goals"] = {name: {"goal": goal, "measured": ratios[name], "met": ratios[name] >= goal}
                       for name, goal in GOALS.items()}
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pslg.benchmarks.kernels", description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median reported)")
    parser.add_argument("--quick", action="store_true", help="two boxes per image, whole-image run on a tree only")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder with the shipped images")
    args = parser.parse_args(argv)
    try:
        import maxflow  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as exc:
        parser.exit(2, f"{exc.name} is missing: the kernel benchmark compares against it "
                       f"(pip install PyMaxflow scikit-learn, or the [dev] extra)\n")
    result = run(args.data, args.repeats, args.quick)
    for name, goal in result["goals"].items():
        print(f"{name:32s} {goal['measured']:8.2f}x  (goal {goal['goal']:g}x{'' if goal['met'] else ', missed'})")
    print(f"{'first call / steady state':32s} {result['ratios']['first_call_vs_steady']:8.2f}   "
          f"(after warmup(): {result['ratios']['first_call_after_warmup_vs_steady']:.2f})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
