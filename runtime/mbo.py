"""MBO: mask boundary optimisation, GrabCut iterated on the box window.

``refine`` turns a SAM mask (or, with ``mask=None``, the box and the CFPG
point: the ``classical`` mode) into a trimap on the box plus a margin, runs
``grabcut`` there and pastes the result back; outside the window the input
mask stands. ``grabcut`` is GrabCut as OpenCV runs it with
``GC_INIT_WITH_MASK`` (k-means++ initialised 5-component colour mixtures, hard
assignment, gamma 50, lambda 9 gamma, 8-neighbourhood) on the Numba kernels,
stopping early once few labels change. Trimap codes are OpenCV's.
"""
import time
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from .errors import ParameterError, PointError
from .geometry import fit_scale, pixel_window
from .image import to_rgb8
from .prompts import check_box, check_point
from .kernels import gmm
from .kernels.kmeans import kmeans
from .kernels.maxflow import GridMaxflow, contrast_weights

GC_BGD, GC_FGD, GC_PR_BGD, GC_PR_FGD = 0, 1, 2, 3


#: Windows above this many pixels are refined downscaled: max-flow time grows
#: faster than the window (measured on the marina: a 1 Mpx window with an
#: ellipse prior took 4.6 s, the same window capped at 512 x 512 took 0.55 s).
MAX_WINDOW_PIXELS = 512 * 512


@dataclass
class GrabcutRun:
    """What one ``grabcut`` call did."""

    iterations: int = 0
    changed: list = field(default_factory=list)    # probable pixels that changed label, per iteration
    energy: list = field(default_factory=list)     # min-cut energy (= max-flow), per iteration
    converged: bool = False                        # stopped because fewer than tol x pixels changed
    beta: float = 0.0
    timings_ms: dict = field(default_factory=dict)
    skipped: Optional[str] = None                  # why nothing ran (no foreground / no background)


@dataclass
class MboResult(GrabcutRun):
    """``refine``'s result: the image-size mask and where and how it was refined."""

    mask: Optional[np.ndarray] = None    # (H, W) bool, or the caller's ``out``
    box: tuple = ()                      # the box clipped to the image
    window: tuple = ()                   # (x0, y0, x1, y1) pixels touched, exclusive end
    start: str = "mask"                  # "mask" (SAM prior) or "box" (classical)
    scale: float = 1.0                   # < 1: the window was worked on downscaled
    warnings: list = field(default_factory=list)


def window_for(box, shape, margin_fraction=0.1, min_margin=16):
    """Pixel window (x0, y0, x1, y1) MBO works on: ``box`` plus ``max(min_margin, fraction x side)`` per axis."""
    bw, bh = box[2] - box[0], box[3] - box[1]
    return pixel_window(box, shape[1], shape[0], max(min_margin, margin_fraction * bw),
                        max(min_margin, margin_fraction * bh))


def band_width(box, fraction=0.02, minimum=3):
    """Width of the probable band around a mask edge: a fraction of the box's shorter side."""
    return max(minimum, int(round(fraction * min(box[2] - box[0], box[3] - box[1]))))


def trimap_from_mask(mask, band):
    """Trimap of a window mask: eroded = sure fg, outside the dilated mask = sure bg, between = probable."""
    m = mask.astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    trimap = np.where(cv2.dilate(m, kernel) > 0, GC_PR_BGD, GC_BGD).astype(np.uint8)
    trimap[m > 0] = GC_PR_FGD
    trimap[cv2.erode(m, kernel) > 0] = GC_FGD
    return trimap


def trimap_from_box(shape, box, point=None, radius=0):
    """GrabCut's rectangle start: outside ``box`` sure bg, inside probable fg, a sure-fg disc at ``point``.

    ``box`` and ``point`` are in window pixels; the disc is clipped to the box.
    """
    trimap = np.full(shape, GC_BGD, np.uint8)
    x0, y0, x1, y1 = pixel_window(box, shape[1], shape[0])
    inside = np.full((y1 - y0, x1 - x0), GC_PR_FGD, np.uint8)
    if point is not None:
        cx = min(max(int(np.floor(point[0])), x0), x1 - 1) - x0
        cy = min(max(int(np.floor(point[1])), y0), y1 - 1) - y0
        cv2.circle(inside, (cx, cy), int(radius), GC_FGD, thickness=-1)
    trimap[y0:y1, x0:x1] = inside
    return trimap


def _initial_mixtures(pixels, planes, fg, components, seed):
    """GrabCut's start: k-means (10 Lloyd steps) per class, then one fit."""
    comp = np.zeros(len(pixels), np.int8)
    for cls in (0, 1):
        sel = fg == cls
        comp[sel] = kmeans(pixels[sel], components, seed=seed, max_iter=10)[1]
    mix = gmm.empty_mixtures(2, components)
    gmm.fit(planes, fg.view(np.int8), comp, mix)
    return mix


class Workspace:
    """The max-flow graph and n-link buffer of the last window shape, kept between calls.

    A caller that refines many windows of one size (a tracked object, a
    repeated query) passes the same workspace and stops allocating them.
    """

    def __init__(self):
        self.shape, self.graph, self.weights = None, None, None

    def get(self, h, w):
        if self.shape != (h, w):
            self.shape, self.graph, self.weights = (h, w), GridMaxflow(h, w, 8), np.empty((8, h, w))
        return self.graph, self.weights


def grabcut(window, trimap, iterations=5, *, gamma=50.0, tol=0.001, seed=0, components=5, reuse_flow=True,
            workspace=None):
    """GrabCut on an (h, w, 3) uint8 window, updating the OpenCV-coded ``trimap`` in place.

    Sure pixels keep their label; probable ones become GC_PR_FGD or GC_PR_BGD.
    Stops after ``iterations`` or once fewer than ``tol`` x pixels change.
    As lambda = 9 gamma exceeds a pixel's summed n-links (6.83 gamma), the
    max-flow's reduction fixes the sure pixels and searches the probable ones
    only. ``reuse_flow`` warm-starts each max-flow from the previous one.
    ``workspace``: a :class:`Workspace` whose buffers are reused.
    """
    run = GrabcutRun()
    t = {"init": 0.0, "edges": 0.0, "gmm": 0.0, "maxflow": 0.0}
    tick = time.perf_counter()
    h, w = trimap.shape
    n = h * w
    window = np.ascontiguousarray(window)
    pixels = window.reshape(n, 3)
    tm = trimap.reshape(n)
    fg = (tm & 1).astype(bool)
    if fg.all() or not fg.any():
        run.skipped = "no background in the window" if fg.all() else "no foreground in the window"
        run.converged = True
        return run
    probable = tm >= GC_PR_BGD
    only = np.where(probable, -1, fg).astype(np.int8)
    nll = np.empty((n, 2))
    best = np.zeros((n, 2), np.int8)
    side = np.empty(n, bool)
    planes = gmm.to_planes(pixels)
    mix = _initial_mixtures(pixels, planes, fg, components, seed)
    gmm.evaluate(planes, mix, fg.view(np.int8), nll, best)
    tick = _lap(t, "init", tick)
    graph, weights = (workspace or Workspace()).get(h, w)
    run.beta = contrast_weights(window, float(gamma), weights)
    lam = 9.0 * gamma
    source = np.where(tm == GC_FGD, lam, 0.0)
    sink = np.where(tm == GC_BGD, lam, 0.0)
    graph.set_edges(weights)
    tick = _lap(t, "edges", tick)
    for it in range(iterations):
        cls = fg.view(np.int8)
        gmm.fit(planes, cls, np.where(fg, best[:, 1], best[:, 0]), mix)
        gmm.evaluate(planes, mix, only, nll, best)
        np.copyto(source, nll[:, 0], where=probable)
        np.copyto(sink, nll[:, 1], where=probable)
        tick = _lap(t, "gmm", tick)
        run.energy.append(graph.solve(source.reshape(h, w), sink.reshape(h, w), reuse=reuse_flow and it > 0))
        graph.source_side(out=side.reshape(h, w))
        changed = int(np.count_nonzero(probable & (side != fg)))
        np.copyto(fg, side, where=probable)
        tick = _lap(t, "maxflow", tick)
        run.changed.append(changed)
        run.iterations = it + 1
        if changed < tol * n:
            run.converged = True
            break
    np.copyto(tm, np.where(fg, GC_PR_FGD, GC_PR_BGD).astype(np.uint8), where=probable)
    run.timings_ms = {k: v * 1e3 for k, v in t.items()}
    return run


def _lap(timings, phase, tick):
    now = time.perf_counter()
    timings[phase] += now - tick
    return now


def _check_mask(mask, shape):
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ParameterError(f"mask must have the image's shape {shape}, got {mask.shape}")
    if mask.dtype != bool and not np.issubdtype(mask.dtype, np.integer):
        raise ParameterError(f"mask must be bool or integer (non-zero = foreground), got {mask.dtype}")
    return mask


def _start(image, prior, box, window, point, band, seed_radius, max_pixels):
    """The window image (downscaled above ``max_pixels``), its trimap and the scale.

    ``prior`` is the window of the mask, or None for the classical start.
    """
    x0, y0, x1, y1 = window
    crop = image[y0:y1, x0:x1]
    scale = fit_scale(y1 - y0, x1 - x0, max_pixels)
    if scale < 1.0:
        size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        if prior is not None:
            prior = cv2.resize(prior.view(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    sx, sy = crop.shape[1] / (x1 - x0), crop.shape[0] / (y1 - y0)
    if prior is not None:
        band = band if band is not None else band_width(box)
        return crop, trimap_from_mask(prior, max(1, round(band * sx))), scale
    local_box = ((box[0] - x0) * sx, (box[1] - y0) * sy, (box[2] - x0) * sx, (box[3] - y0) * sy)
    local_point = None if point is None else ((point[0] - x0) * sx, (point[1] - y0) * sy)
    radius = seed_radius if seed_radius is not None else max(2, round(0.05 * min(box[2] - box[0], box[3] - box[1])))
    return crop, trimap_from_box(crop.shape[:2], local_box, local_point, radius * sx), scale


def refine(image, mask, box, *, point=None, iterations=5, gamma=50.0, band=None, tol=0.001,
           margin_fraction=0.1, min_margin=16, seed_radius=None, seed=0,
           max_window_pixels=MAX_WINDOW_PIXELS, reuse_flow=True, out=None, workspace=None):
    """Refine ``mask`` (H x W, non-zero = foreground, or None) inside ``box`` with GrabCut.

    ``mask=None`` is the classical mode: the box is probable foreground, the
    window around it sure background, and a disc of ``seed_radius`` (default
    5 % of the box's shorter side, at least 2 px) around ``point`` (x, y) is
    sure foreground. The window is the box plus ``max(min_margin,
    margin_fraction x side)`` per axis; a window above ``max_window_pixels``
    is worked on downscaled. ``band``: probable band width around the mask
    edge (default ``band_width(box)``). ``out``: a caller-owned (H, W) bool
    or uint8 array to write the mask into. ``workspace``: a :class:`Workspace`
    kept between calls to reuse the max-flow graph. Returns an ``MboResult``.
    """
    timer = time.perf_counter()
    image = to_rgb8(image)
    height, width = image.shape[:2]
    warnings = []
    box = tuple(float(v) for v in check_box(box, image.shape, warnings))
    if iterations < 0 or gamma <= 0 or tol < 0:
        raise ParameterError(f"need iterations >= 0, gamma > 0, tol >= 0; got {iterations}, {gamma}, {tol}")
    if out is None:
        out = np.zeros((height, width), bool)
    elif out.shape != (height, width) or out.dtype not in (np.bool_, np.uint8):
        raise ParameterError(f"out must be a ({height}, {width}) bool or uint8 array, got {out.shape} {out.dtype}")
    if point is not None and mask is None:
        point = check_point(point, image.shape)
        if not (box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]):
            raise PointError(f"point {point.tolist()} lies outside the box {box}")
    if mask is None:
        out[:] = 0
    else:
        np.not_equal(_check_mask(mask, (height, width)), 0, out=out, casting="unsafe")
    window = x0, y0, x1, y1 = window_for(box, image.shape, margin_fraction, min_margin)
    crop, trimap, scale = _start(image, None if mask is None else out[y0:y1, x0:x1], box, window, point, band,
                                 seed_radius, max_window_pixels)
    prepare_ms = (time.perf_counter() - timer) * 1e3
    run = grabcut(crop, trimap, iterations, gamma=gamma, tol=tol, seed=seed, reuse_flow=reuse_flow,
                  workspace=workspace)
    timer = time.perf_counter()
    result = MboResult(**vars(run), box=box, window=window, start="box" if mask is None else "mask", scale=scale,
                       warnings=warnings)
    if run.skipped is not None:
        result.warnings.append(f"MBO skipped: {run.skipped}")
        if mask is None:
            bx0, by0, bx1, by1 = pixel_window(box, width, height)
            out[by0:by1, bx0:bx1] = 1
    else:
        fg = (trimap & 1).astype(np.uint8)
        if scale < 1.0:
            fg = cv2.resize(fg * 255, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR) >= 128
            result.warnings.append(f"window of {(x1 - x0) * (y1 - y0)} px refined at scale {scale:.3f}")
        out[y0:y1, x0:x1] = fg
    result.mask = out
    result.timings_ms = {"prepare": prepare_ms, **run.timings_ms, "paste": (time.perf_counter() - timer) * 1e3}
    return result
