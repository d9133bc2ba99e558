"""Kernel benchmark: CFPG and MBO at every object size against OpenCV; max-flow and k-means against PyMaxflow,
OpenCV and scikit-learn.

    python -m pslg.benchmarks.kernels --json OUT [--repeats 5] [--quick] [--sizes 200,400,700] [--data DIR]
                                      [--large-data DIR] [--threads N]

Everything runs in one process on this machine's CPU. Sizes: ``small`` is the
shipped real objects (marina boats of ``data/marina.xml``, tree crowns of
the VOC files; with ``--large-data``, its forest images' crowns too); ``200``,
``400`` and ``700`` are boxes of about that many pixels (aspect 0.8)
centred in 800 x 800 crops of the images in ``--large-data`` (default
``../shared/data`` next to the checkout, else ``data/``), with a SAM-like
prior: the box's inscribed ellipse at 0.9 with a wavy edge. Per case, each
side runs once to warm up, then ``repeats`` times interleaved; a case's
figure is its median, a size's p50 / p99 are over all its timed runs.
Ratios are the other side's median over ours (> 1: ours is faster). Full
mode is timed at one thread and at ``--threads`` (default every core), the
rest at one thread (the default); OpenCV runs with its default threads. OpenCV's GrabCut starts from random
k-means: the IoU against it is the closest of ``seeds`` of its seeded runs.
scikit-learn and PyMaxflow are dev dependencies, imported only where used.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

from pslg.runtime import cfpg, mbo
from pslg.runtime.geometry import pixel_window
from pslg.runtime.image import load_image
from pslg.runtime.kernels import gmm, max_threads, set_threads, threads, warmup
from pslg.runtime.kernels.grabcut import contrast_weights
from pslg.runtime.kernels.kmeans import kmeans
from pslg.runtime.kernels.maxflow import DIRECTIONS, GridMaxflow

from .timing import interleaved

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "data"
DEFAULT_LARGE = ROOT.parent / "shared" / "data"
SIZES = (200, 400, 700)
CROP = 800
#: Upper-left corners of the 800 x 800 crops (busy parts: boats and piers, forest with a road).
CROPS = (("marina.png", (560, 140)), ("yell_road.png", (300, 150)), ("yell_large.png", (700, 900)))
FORESTS = ("osbs_029", "soap_061", "yell_road", "yell_large")
ITERATIONS = 5
#: The issue's targets; ``met`` is this run's verdict on its own figures.
GOALS = {"full_vs_grabcut": 10.0, "full_iou": 0.98, "classical_share": 0.10, "classical_iou": 0.9,
         "classical_700_vs_grabcut_rect": 20.0, "cfpg_700_vs_kmeans": 0.25}


def read_boxes(path, min_side=20):
    """(x1, y1, x2, y2) of the objects of a Pascal VOC file whose shorter side is at least ``min_side``."""
    found = []
    for bb in ET.parse(path).getroot().iter("bndbox"):
        x1, y1, x2, y2 = (float(bb.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
        found += [(x1, y1, x2, y2)] if min(x2 - x1, y2 - y1) >= min_side else []
    return found


def small_cases(data_dir, large_dir, per_image):
    """[(image name, image, box, "small")]: the marina boats, then up to ``per_image`` crowns of each forest image."""
    marina = load_image(data_dir / "marina.png")
    cases = [("marina", marina, b, "small") for b in read_boxes(data_dir / "marina.xml")]
    for name in FORESTS:
        folder = next((d for d in (data_dir, large_dir) if (d / f"{name}.xml").is_file()), None)
        if folder is not None:
            image = load_image(folder / f"{name}.png")
            cases += [(name, image, b, "small") for b in read_boxes(folder / f"{name}.xml")[:per_image]]
    return cases


def large_cases(large_dir, data_dir, sizes, n_crops):
    """[(crop name, 800 x 800 image, box, size)]: one box of each size centred in each crop."""
    cases = []
    for name, (x, y) in CROPS[:n_crops]:
        path = next((d / name for d in (large_dir, data_dir) if (d / name).is_file()), None)
        if path is None:
            continue
        image = np.ascontiguousarray(load_image(path)[y:y + CROP, x:x + CROP])
        for size in sizes:
            c, w, h = CROP / 2, size, 0.8 * size
            cases.append((name.split(".")[0], image, (c - w / 2, c - h / 2, c + w / 2, c + h / 2), str(size)))
    return cases


def wavy_prior(shape, box, fill=0.9, amplitude=0.04, waves=7):
    """A SAM-like prior: the ellipse inscribed in ``box`` at ``fill`` with a sinusoidal edge, (H, W) uint8."""
    t = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    r = 1 + amplitude * np.sin(waves * t + 0.3)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    ax, ay = fill * (box[2] - box[0]) / 2, fill * (box[3] - box[1]) / 2
    edge = np.stack([cx + ax * r * np.cos(t), cy + ay * r * np.sin(t)], axis=1)
    prior = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(prior, [np.round(edge * 16).astype(np.int32)], 1, shift=4)
    return prior


def opencv_grabcut(window, trimap=None, rect=None, seed=0):
    """cv2.grabCut for ``ITERATIONS`` from a trimap or, given ``rect``, from a rectangle; its RNG seeded."""
    codes = np.zeros(window.shape[:2], np.uint8) if trimap is None else trimap.copy()
    cv2.setRNGSeed(seed)
    mode = cv2.GC_INIT_WITH_MASK if rect is None else cv2.GC_INIT_WITH_RECT
    cv2.grabCut(window, codes, rect, np.zeros((1, 65)), np.zeros((1, 65)), ITERATIONS, mode)
    return codes


def _timed(repeats, *fns):
    """Milliseconds of each callable over ``repeats`` interleaved runs, after one warm-up each."""
    return list(interleaved(dict(enumerate(fns)), repeats)[0].values())


def _iou(a, b):
    return float((a & b).sum() / max(1, (a | b).sum()))


def _summary(rows, samples, fields):
    """Per size: p50 / p99 of each timed side over all its runs, and the extremes of ``fields``."""
    out = {}
    for size in sorted({r["size"] for r in rows}, key=lambda s: (s != "small", s.zfill(4))):
        keep = [i for i, r in enumerate(rows) if r["size"] == size]
        entry = {"cases": len(keep)}
        for side, runs in samples.items():
            flat = np.concatenate([runs[i] for i in keep])
            entry[side] = {"p50_ms": float(np.percentile(flat, 50)), "p99_ms": float(np.percentile(flat, 99))}
        for name, pick in fields.items():
            values = [rows[i][name] for i in keep if rows[i][name] is not None and not math.isnan(rows[i][name])]
            entry[name] = pick(values) if values else None
        out[size] = entry
    return out


def bench_full(cases, repeats, seeds, n_threads):
    """``mbo.refine`` on a SAM-like prior, in place as the pipeline runs it, vs cv2.grabCut on the same window and
    trimap (5 iterations)."""
    rows, samples = [], {"ours_1": [], "ours_n": [], "opencv": []}
    workspace = mbo.Workspace()
    for name, image, box, size in cases:
        prior = wavy_prior(image.shape, box)
        x0, y0, x1, y1 = mbo.window_for(box, image.shape)
        trimap = mbo.trimap_from_mask(prior[y0:y1, x0:x1], mbo.band_width(box))
        window = np.ascontiguousarray(image[y0:y1, x0:x1])
        work = prior.astype(bool)                 # as the pipeline runs it: SAM's mask refined in place
        before = work[y0:y1, x0:x1].copy()

        def ours(t):
            set_threads(t)
            work[y0:y1, x0:x1] = before           # the prior back where the last run wrote (timed with it)
            return mbo.refine(image, work, box, out=work, workspace=workspace)

        one, many, cv = _timed(repeats, lambda: ours(1), lambda: ours(n_threads), lambda: opencv_grabcut(window, trimap))
        result = ours(n_threads)
        mask = result.mask[y0:y1, x0:x1].copy()
        ious = [_iou(mask, (opencv_grabcut(window, trimap, seed=s) & 1) > 0) for s in range(seeds)]
        set_threads(1)
        same = np.array_equal(ours(1).mask[y0:y1, x0:x1], mask)
        rows.append({"image": name, "box": list(box), "size": size, "window_px": int(trimap.size),
                     "band_px": result.band, "iterations": result.iterations, "ours_1_ms": float(np.median(one)),
                     "ours_n_ms": float(np.median(many)), "opencv_ms": float(np.median(cv)),
                     "ratio_1": float(np.median(cv) / np.median(one)), "ratio_n": float(np.median(cv) / np.median(many)),
                     "iou": max(ious), "iou_seed0": ious[0], "same_mask_1_and_n_threads": bool(same)})
        for side, runs in zip(samples, (one, many, cv)):
            samples[side].append(runs)
    summary = _summary(rows, samples, {"ratio_1": min, "ratio_n": min, "iou": min})
    return {"threads": n_threads, "seeds": seeds, "cases": rows, "sizes": summary}


def bench_classical(cases, repeats, seeds):
    """``mbo.refine`` in classical mode (box + CFPG point) vs cv2.grabCut from the rectangle on the same window.

    The IoU is against the closest of OpenCV's seeded runs that keep at
    least 10 % of the box (None where all of them collapse).
    """
    rows, samples = [], {"ours": [], "rect": [], "opencv": []}
    workspace = mbo.Workspace()
    for name, image, box, size in cases:
        point = cfpg.foreground_point(image, box).point
        x0, y0, x1, y1 = mbo.window_for(box, image.shape)
        window = np.ascontiguousarray(image[y0:y1, x0:x1])
        rect = (int(box[0]) - x0, int(box[1]) - y0, int(box[2] - box[0]), int(box[3] - box[1]))
        ours, plain, cv = _timed(
            repeats, lambda: mbo.refine(image, None, box, point=point, workspace=workspace),
            lambda: mbo.refine(image, None, box, point=point, classical_start="rect", workspace=workspace),
            lambda: opencv_grabcut(window, rect=rect))
        area = (box[2] - box[0]) * (box[3] - box[1])
        result = mbo.refine(image, None, box, point=point, workspace=workspace)
        mask = result.mask[y0:y1, x0:x1]
        rect_share = mbo.refine(image, None, box, point=point, classical_start="rect").mask.sum() / area
        theirs = [(opencv_grabcut(window, rect=rect, seed=s) & 1) > 0 for s in range(seeds)]
        found = [t for t in theirs if t.sum() >= 0.1 * area]
        rows.append({"image": name, "box": list(box), "size": size, "start": result.classical_start,
                     "ours_ms": float(np.median(ours)), "rect_ms": float(np.median(plain)),
                     "opencv_ms": float(np.median(cv)), "ratio": float(np.median(cv) / np.median(ours)),
                     "share": float(mask.sum() / area), "rect_share": float(rect_share),
                     "opencv_share": float(max(t.sum() for t in theirs) / area),
                     "iou": max((_iou(mask, t) for t in found), default=None)})
        for side, runs in zip(samples, (ours, plain, cv)):
            samples[side].append(runs)
    summary = _summary(rows, samples, {"ratio": min, "share": min, "rect_share": min, "iou": min})
    for entry, size in ((summary[s], s) for s in summary):
        entry["opencv_collapsed"] = sum(r["opencv_share"] < 0.1 for r in rows if r["size"] == size)
        entry["rect_start_collapsed"] = sum(r["rect_share"] < 0.1 for r in rows if r["size"] == size)
    return {"seeds": seeds, "cases": rows, "sizes": summary}


def bench_cfpg(cases, repeats):
    """``cfpg.foreground_point`` vs cv2.kmeans (k = 2, k-means++, one attempt, 10 iterations) on the box crop."""
    criteria = (cv2.TERM_CRITERIA_MAX_ITER, 10, 0.0)
    rows, samples = [], {"ours": [], "kmeans": []}
    for name, image, box, size in cases:
        x0, y0, x1, y1 = pixel_window(box, image.shape[1], image.shape[0])
        pixels = np.ascontiguousarray(image[y0:y1, x0:x1]).reshape(-1, 3).astype(np.float32)
        ours, theirs = _timed(repeats, lambda: cfpg.foreground_point(image, box),
                              lambda: cv2.kmeans(pixels, 2, None, criteria, 1, cv2.KMEANS_PP_CENTERS))
        result = cfpg.foreground_point(image, box)
        rows.append({"image": name, "box": list(box), "size": size, "ours_ms": float(np.median(ours)),
                     "kmeans_ms": float(np.median(theirs)), "ratio": float(np.median(ours) / np.median(theirs)),
                     "scale": result.scale, "fallback": result.fallback})
        samples["ours"].append(ours)
        samples["kmeans"].append(theirs)
    return {"opencv_threads": cv2.getNumThreads(), "cases": rows,
            "sizes": _summary(rows, samples, {"ratio": max})}


def grabcut_graph(image, box):
    """GrabCut's first-iteration graph on the box window (wavy prior), as the whole grid:
    n-link weights (8, h, w), source and sink (h, w)."""
    x0, y0, x1, y1 = mbo.window_for(box, image.shape)
    window = np.ascontiguousarray(image[y0:y1, x0:x1])
    prior = wavy_prior(image.shape, box)[y0:y1, x0:x1]
    codes = mbo.trimap_from_mask(prior, mbo.band_width(box)).reshape(-1)
    pixels = window.reshape(-1, 3)
    fg = (codes & 1).astype(np.int8)
    comp = np.zeros(len(codes), np.int8)
    for cls in (0, 1):
        comp[fg == cls] = kmeans(pixels[fg == cls], 5, max_iter=10)[1]
    mix = gmm.empty_mixtures(2, 5)
    planes = gmm.to_planes(pixels)
    gmm.fit(planes, fg, comp, np.ones(len(codes)), mix)
    nll, best = np.empty((len(codes), 2)), np.zeros((len(codes), 2), np.int8)
    gmm.evaluate(planes, mix, np.full(len(codes), -1, np.int8), nll, best)
    lam = 9 * 50.0
    source = np.where(codes >= 2, nll[:, 0], np.where(codes == 1, lam, 0.0)).reshape(prior.shape)
    sink = np.where(codes >= 2, nll[:, 1], np.where(codes == 0, lam, 0.0)).reshape(prior.shape)
    weights = np.empty((8,) + prior.shape)
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
    return graph.maxflow(), ~graph.get_grid_segments(ids)


def our_cut(weights, source, sink, reduce=True):
    """``GridMaxflow`` on a grid graph, graph set-up included; (flow, source-side mask)."""
    graph = GridMaxflow(*source.shape, connectivity=len(weights), reduce=reduce)
    graph.set_edges(weights)
    return graph.solve(source, sink), graph.source_side()


def bench_maxflow(cases, repeats):
    """Our max-flow vs PyMaxflow (Boykov-Kolmogorov) on GrabCut's whole-window graphs, set-up included."""
    rows = []
    for name, image, box, _ in cases:
        graph = grabcut_graph(image, box)
        ours, theirs = (float(np.median(t)) for t in _timed(repeats, lambda: our_cut(*graph),
                                                            lambda: pymaxflow_cut(*graph)))
        (flow, side), (pm_flow, pm_side) = our_cut(*graph), pymaxflow_cut(*graph)
        rows.append({"image": name, "box": list(box), "nodes": int(graph[1].size), "ours_ms": ours,
                     "pymaxflow_ms": theirs, "ratio": theirs / ours,
                     "flow_rel_diff": abs(flow - pm_flow) / max(1.0, abs(pm_flow)),
                     "cut_px_differing": int(np.count_nonzero(side != pm_side))})
    return {"cases": rows, "ratio": _geomean([r["ratio"] for r in rows])}


def bench_kmeans(cases, repeats, k):
    """Our k-means++ + Lloyd vs cv2.kmeans (KMEANS_PP_CENTERS, one thread) and scikit-learn on box crops."""
    from sklearn.cluster import KMeans
    criteria = (cv2.TERM_CRITERIA_MAX_ITER, 10, 0.0)
    sk = KMeans(n_clusters=k, init="k-means++", n_init=1, max_iter=10, tol=0.0, random_state=0)
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    rows = []
    try:
        for name, image, box, _ in cases:
            x0, y0, x1, y1 = pixel_window(box, image.shape[1], image.shape[0])
            pixels = np.ascontiguousarray(image[y0:y1, x0:x1]).reshape(-1, 3)
            ours, theirs, skl = (float(np.median(t)) for t in _timed(
                repeats, lambda: kmeans(pixels, k, seed=0, max_iter=10),
                lambda: cv2.kmeans(pixels.astype(np.float32), k, None, criteria, 1, cv2.KMEANS_PP_CENTERS),
                lambda: sk.fit(pixels.astype(np.float64))))
            rows.append({"image": name, "box": list(box), "pixels": int(len(pixels)), "ours_ms": ours,
                         "opencv_ms": theirs, "sklearn_ms": skl, "ratio_opencv": theirs / ours,
                         "ratio_sklearn": skl / ours})
    finally:
        cv2.setNumThreads(before)
    return {"k": k, "opencv_threads": 1, "cases": rows, "ratio_opencv": _geomean([r["ratio_opencv"] for r in rows]),
            "ratio_sklearn": _geomean([r["ratio_sklearn"] for r in rows])}


def _geomean(values):
    return float(math.exp(np.mean(np.log(values)))) if values else float("nan")


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


def _goals(result):
    full, classical, points = result["mbo_full"]["sizes"], result["classical"]["sizes"], result["cfpg"]["sizes"]
    measured = {
        "full_vs_grabcut": min(s["ratio_n"] for s in full.values()),         # every core, as OpenCV runs
        "full_iou": min((s["iou"] for k, s in full.items() if k != "small"), default=None),
        "classical_share": classical.get("small", {}).get("share"),
        "classical_iou": classical.get("small", {}).get("iou"),
        "classical_700_vs_grabcut_rect": classical.get("700", {}).get("ratio"),
        "cfpg_700_vs_kmeans": points.get("700", {}).get("ratio")}
    return {name: {"goal": goal, "measured": measured[name],
                   "met": None if measured[name] is None else
                   (measured[name] <= goal if name.startswith("cfpg") else measured[name] >= goal)}
            for name, goal in GOALS.items()}


def table(result):
    """The README's table: per size, p50 of each stage and side; the worst ratio (full mode: at one thread and
    at ``--threads``), IoU and share."""
    full, classical, points = result["mbo_full"]["sizes"], result["classical"]["sizes"], result["cfpg"]["sizes"]
    n = result["mbo_full"]["threads"]
    lines = [f"| box | MBO full, 1 / {n} threads | cv2.grabCut, same window and trimap "
             f"| full: ratio at 1 / {n} threads, IoU (worst) "
             "| classical | cv2.grabCut from the rectangle | classical: ratio, share of box (worst) "
             "| CFPG | cv2.kmeans, same crop | CFPG / kmeans (worst) |", "| --- " * 10 + "|"]
    for size in full:
        f, c, p = full[size], classical.get(size), points.get(size)
        cells = [f"{size} px" if size != "small" else "small (boats, crowns)",
                 f"{f['ours_1']['p50_ms']:.1f} / {f['ours_n']['p50_ms']:.1f} ms", f"{f['opencv']['p50_ms']:.0f} ms",
                 f"{f['ratio_1']:.1f}x / {f['ratio_n']:.1f}x, {f['iou']:.3f}"]
        cells += [f"{c['ours']['p50_ms']:.1f} ms", f"{c['opencv']['p50_ms']:.0f} ms",
                  f"{c['ratio']:.1f}x, {c['share']:.2f}"] if c else ["", "", ""]
        cells += [f"{p['ours']['p50_ms']:.1f} ms", f"{p['kmeans']['p50_ms']:.1f} ms", f"{p['ratio']:.2f}"] if p else \
            ["", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(data_dir=DEFAULT_DATA, large_dir=DEFAULT_LARGE, repeats=5, quick=False, n_threads=None, sizes=SIZES):
    """Every comparison; returns the JSON-ready result. ``quick``: four boats, two crowns per forest
    image, one crop, two OpenCV seeds."""
    data_dir, large_dir = Path(data_dir), Path(large_dir)
    n_threads = n_threads or max_threads()
    before = threads()
    warmup()
    small = small_cases(data_dir, large_dir, per_image=2 if quick else 6)
    if quick:
        small = [c for c in small if c[0] != "marina"][:8] + [c for c in small if c[0] == "marina"][:4]
        small.sort(key=lambda c: c[0] != "marina")
    large = large_cases(large_dir, data_dir, sizes, 1 if quick else len(CROPS))
    seeds = 2 if quick else 5
    try:
        result = {
            "machine": {"python": sys.version.split()[0], "numpy": np.__version__, "opencv": cv2.__version__,
                        "opencv_threads": cv2.getNumThreads(), "cpus": os.cpu_count(), "kernel_threads": n_threads},
            "repeats": repeats,
            "mbo_full": bench_full(small + large, repeats, seeds, n_threads),
        }
        set_threads(1)                         # the shipped default
        result["classical"] = bench_classical(small + large, repeats, seeds)
        result["cfpg"] = bench_cfpg(small + large, repeats)
        result["maxflow"] = bench_maxflow(small[:4 if quick else 8], repeats)
        result["kmeans_k2"] = bench_kmeans(small[:4 if quick else 8], repeats, 2)
        result["kmeans_k5"] = bench_kmeans(small[:4 if quick else 8], repeats, 5)
        result["first_call"] = bench_first_call(small[0][1], small[0][2], repeats)
    finally:
        set_threads(before)
    result["goals"] = _goals(result)
    result["table"] = table(result)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pslg.benchmarks.kernels", description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median reported)")
    parser.add_argument("--quick", action="store_true", help="fewer boxes, one crop, two OpenCV seeds")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="box sizes of the 800 x 800 crops, comma-separated (a subset of %(default)s)")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder with the shipped images")
    parser.add_argument("--large-data", default=str(DEFAULT_LARGE if DEFAULT_LARGE.is_dir() else DEFAULT_DATA),
                        help="folder with the images to crop 800 x 800 (and more forest boxes)")
    parser.add_argument("--threads", type=int, help=f"kernel threads of the multi-thread runs (default "
                                                    f"{max_threads()}, every core)")
    args = parser.parse_args(argv)
    try:
        import maxflow  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as exc:
        parser.exit(2, f"{exc.name} is missing: the kernel benchmark compares against it "
                       f"(pip install PyMaxflow scikit-learn, or the [dev] extra)\n")
    sizes = tuple(int(v) for v in args.sizes.split(",") if v)
    if not set(sizes) <= set(SIZES):
        parser.error(f"--sizes takes some of {','.join(map(str, SIZES))}")
    result = run(args.data, args.large_data, args.repeats, args.quick, args.threads, sizes)
    print(result["table"])
    for name, goal in result["goals"].items():
        measured = "n/a" if goal["measured"] is None else f"{goal['measured']:.3f}"
        print(f"{name:32s} {measured:>8s}  (goal {goal['goal']:g}{'' if goal['met'] else ', not met'})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
