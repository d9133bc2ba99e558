"""Cases and oracles of the kernel tests: the shipped boxes, SAM-like priors, OpenCV's GrabCut, PyMaxflow.

Only ``data/`` is read (a fresh clone has no ``shared/``); overlays go to
``$PSLG_TEST_ARTIFACTS`` or ``tests/artifacts/``.
"""
import os
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np

from pslg.runtime import mbo
from pslg.runtime.draw import overlay, side_by_side
from pslg.runtime.image import load_image, save_rgb

DATA = Path(__file__).resolve().parents[1] / "data"
ARTIFACTS = Path(os.environ.get("PSLG_TEST_ARTIFACTS", Path(__file__).resolve().parent / "artifacts"))


def boxes(name, smallest=20):
    """Boxes of ``data/<name>.xml`` whose shorter side is at least ``smallest`` pixels."""
    out = []
    for obj in ET.parse(DATA / f"{name}.xml").getroot().findall("object"):
        corners = [float(obj.find("bndbox").find(tag).text) for tag in ("xmin", "ymin", "xmax", "ymax")]
        if min(corners[2] - corners[0], corners[3] - corners[1]) >= smallest:
            out.append(tuple(corners))
    return out


def real_cases(crowns=5):
    """[(name, image, box)]: every marina boat, then ``crowns`` crowns of each forest image."""
    marina = load_image(DATA / "marina.png")
    cases = [("marina", marina, box) for box in boxes("marina")]
    for name in ("osbs_029", "soap_061"):
        image = load_image(DATA / f"{name}.png")
        cases += [(name, image, box) for box in boxes(name)[:crowns]]
    return cases


def ellipse_prior(shape, box, fill=0.9):
    """A SAM-like prior: the ellipse inscribed in ``box`` with ``fill`` x its half-axes, (H, W) uint8."""
    prior = np.zeros(shape[:2], np.uint8)
    cv2.ellipse(prior, (round((box[0] + box[2]) / 2), round((box[1] + box[3]) / 2)),
                (max(1, int(fill * (box[2] - box[0]) / 2)), max(1, int(fill * (box[3] - box[1]) / 2))),
                0, 0, 360, 1, -1)
    return prior


def big_case(size):
    """An 800 x 800 crop of the marina (boats, piers) with a ``size`` px box in its centre and its prior."""
    image = np.ascontiguousarray(load_image(DATA / "marina.png")[140:940, 560:1360])
    half_w, half_h = size / 2, 0.4 * size
    box = (400 - half_w, 400 - half_h, 400 + half_w, 400 + half_h)
    return image, box, ellipse_prior(image.shape, box)


def window_problem(image, box, prior):
    """(window pixels, trimap) as ``mbo.refine`` builds them from ``prior``."""
    x0, y0, x1, y1 = mbo.window_for(box, image.shape)
    return np.ascontiguousarray(image[y0:y1, x0:x1]), mbo.trimap_from_mask(prior[y0:y1, x0:x1], mbo.band_width(box))


def opencv_masks(window, trimap=None, rect=None, seeds=3):
    """Foreground of cv2.grabCut (5 iterations) for each of ``seeds`` RNG seeds, from a trimap or a rectangle."""
    masks = []
    for seed in range(seeds):
        codes = np.zeros(window.shape[:2], np.uint8) if trimap is None else trimap.copy()
        cv2.setRNGSeed(seed)
        cv2.grabCut(window, codes, rect, np.zeros((1, 65)), np.zeros((1, 65)), 5,
                    cv2.GC_INIT_WITH_RECT if trimap is None else cv2.GC_INIT_WITH_MASK)
        masks.append((codes & 1) > 0)
    return masks


def iou(a, b):
    return float((a & b).sum() / max(1, (a | b).sum()))


def pymaxflow(weights, source, sink, directions):
    """PyMaxflow's (Boykov-Kolmogorov) max-flow of a grid graph, added arc by arc; (flow, source-side mask)."""
    import maxflow
    h, w = source.shape
    graph = maxflow.Graph[float]()
    nodes = graph.add_nodes(h * w)
    for y in range(h):
        for x in range(w):
            p = y * w + x
            graph.add_tedge(nodes[p], source[y, x], sink[y, x])
            for k, (dy, dx) in enumerate(directions):
                if 0 <= y + dy < h and 0 <= x + dx < w and weights[k, y, x] > 0:
                    graph.add_edge(nodes[p], nodes[p + dy * w + dx], weights[k, y, x], 0.0)
    flow = graph.maxflow()
    return flow, np.array([graph.get_segment(n) == 0 for n in nodes]).reshape(h, w)


def save_overlays(folder, stem, window, box, point, panels):
    """Panels [(title, mask)] side by side on ``window`` (small windows drawn larger), to ARTIFACTS/folder."""
    zoom = max(1, 240 // min(window.shape[:2]))

    def grow(image):
        return cv2.resize(image, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)

    big = grow(window)
    scaled_box = [v * zoom for v in box]
    scaled_point = None if point is None else (point[0] * zoom, point[1] * zoom)
    save_rgb(ARTIFACTS / folder / f"{stem}.png", side_by_side(*(
        overlay(big, grow(mask.astype(np.uint8)) > 0, scaled_box, scaled_point, title=title)
        for title, mask in panels)))


def in_threads(work, count=2):
    """Run ``work(k)`` for k in 0 .. count - 1 in threads that start together; re-raise the first error."""
    barrier, errors = threading.Barrier(count), []

    def run(k):
        try:
            barrier.wait()
            work(k)
        except BaseException as exc:        # re-raised below, in the calling thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
