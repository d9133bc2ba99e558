"""MBO: mask boundary optimisation, GrabCut iterated on the box window.

``refine`` turns a SAM mask (or, with ``mask=None``, the box and the CFPG
point: the ``classical`` mode) into a trimap on the box plus a margin, runs
``grabcut`` there and pastes the result back; outside the window the input
mask stands. ``grabcut`` is GrabCut as OpenCV runs it with
``GC_INIT_WITH_MASK`` (k-means++ initialised 5-component colour mixtures, hard
assignment, gamma 50, lambda 9 gamma, 8-neighbourhood), stopping early once
few labels change, on the Numba kernels of ``kernels.grabcut``: its cost
follows the probable band, not the window (the sure pixels enter the cut
through their arcs to the band and the colour models, which learn from a
deterministic sample of them). A band above ``max_band_nodes`` is solved
coarse to fine: downscaled, then its boundary again at full resolution.
Trimap codes are OpenCV's.

The classical start (``classical_start="core"``) is GrabCut's rectangle
start with more sure foreground: a central ellipse of the box (a tight box's
centre lies on its object) besides the disc at the CFPG point. Where GrabCut
still ends with less than twice that seed (its colour models cannot tell
the object from its surroundings: tree crowns among tree crowns), it is
redone from the ellipse inscribed in the box as a prior, refined like a SAM
mask within a band. On the 36 real boxes of ``benchmarks.kernels`` (12
marina boats, 24 tree crowns): cv2.grabCut from the rectangle keeps under
10 % of the box on 32 (with each of five seeds), the rectangle start with
the CFPG disc on 24 (the disc alone), this start on none (the least: 18 %),
and where GrabCut finds the object (4 boats) they agree at IoU >= 0.94.
Starting from CFPG's chosen region instead (tried during development) left
under 10 % on 29 of 36: on tight boxes its foreground cluster is often the
background between crowns. ``"rect"`` keeps the rectangle start with the
CFPG disc, for comparison.
"""
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from .errors import ParameterError, PointError
from .geometry import pixel_window
from .image import to_rgb8
from .prompts import check_box, check_point
from . import checks
from .kernels import gmm
from .kernels import grabcut as kernel
from .kernels.maxflow import graph_view, new_graph, parts_for
from .kernels.parallel import launch

GC_BGD, GC_FGD, GC_PR_BGD, GC_PR_FGD = 0, 1, 2, 3

#: Bands above this many probable pixels are solved coarse to fine (measured on
#: 800 x 800 crops: a 700 px box with a SAM-like prior has about 41,000, solved
#: whole; the classical start from a 700 px box about 340,000). Solving that
#: prior's band coarse to fine changed marina masks by 5 % IoU: not done. The
#: classical start, with no SAM mask to stay close to, goes coarse to fine
#: above ``CLASSICAL_BAND_NODES``.
MAX_BAND_NODES = 1 << 17
CLASSICAL_BAND_NODES = 1 << 14
#: Coarse to fine halves the window until its band has at most this many pixels; each finer level
#: then takes a band of ``FINE_BAND`` pixels around the boundary found at the level below.
COARSEST_NODES = 1 << 12
FINE_BAND = 3
#: Trimap bands up to this width use OpenCV's ellipse morphology, wider ones a distance transform.
MORPHOLOGY_BAND = 16
#: The colour mixtures learn from every probable pixel and from at most about
#: this many pixels of each sure class (a hashed sample; on 800 x 800 crops the
#: masks agree with OpenCV's closest seeded run as closely as with a fit on
#: every pixel, IoU >= 0.99, and 1024 .. 16384 measured alike). Windows with
#: fewer sure pixels are fitted on all of them, as OpenCV does.
FIT_SAMPLE = 1 << 12
#: beta is averaged over the pairs of about this many pixels (every row of a
#: smaller window, as OpenCV; evenly spaced rows of a larger one).
BETA_SAMPLE = 1 << 16
CLASSICAL_STARTS = ("core", "rect")
#: Classical start: half-axes of the sure central ellipse, and of the prior
#: ellipse with its band, as fractions of the box's sides / shorter side.
CORE_FRACTION = 0.15
PRIOR_FRACTION = 0.45
PRIOR_BAND = 0.1
#: The core start has collapsed when its foreground ends below this many times its sure part.
COLLAPSED = 2.0


@dataclass
class GrabcutRun:
    """What one ``grabcut`` call did."""

    iterations: int = 0
    changed: list = field(default_factory=list)    # probable pixels that changed label, per iteration
    energy: list = field(default_factory=list)     # min-cut energy of the band (sure-sure arcs left out)
    converged: bool = False                        # stopped because fewer than tol x pixels changed
    beta: float = 0.0
    band: int = 0                                  # probable pixels (graph nodes)
    timings_ms: dict = field(default_factory=dict)
    skipped: Optional[str] = None                  # why nothing ran (no foreground / no background)


@dataclass
class MboResult(GrabcutRun):
    """``refine``'s result: the image-size mask and where and how it was refined."""

    mask: Optional[np.ndarray] = None    # (H, W) bool, or the caller's ``out``
    box: tuple = ()                      # the box clipped to the image
    window: tuple = ()                   # (x0, y0, x1, y1) pixels touched, exclusive end
    start: str = "mask"                  # "mask" (SAM prior) or "box" (classical)
    classical_start: Optional[str] = None  # classical mode: "core", "ellipse" (its fallback) or "rect"
    scale: float = 1.0                   # < 1: solved coarse to fine, first at this scale
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
    """Trimap of a window mask: eroded = sure fg, outside the dilated mask = sure bg, between = probable.

    Up to ``MORPHOLOGY_BAND`` the structuring element is OpenCV's ellipse of
    ``2 band + 1`` (as GrabCut users build trimaps); a wider band is taken as
    a Euclidean distance (OpenCV's morphology with an ellipse that large
    costs more than the cut). A band wider than the window covers all of it.
    """
    m = (mask != 0).view(np.uint8)
    band = int(min(band, max(m.shape)))
    if band <= MORPHOLOGY_BAND:
        element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
        near, core = cv2.dilate(m, element) > 0, cv2.erode(m, element) > 0
    else:
        near = cv2.distanceTransform(1 - m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= band
        core = cv2.distanceTransform(m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) > band
    trimap = np.where(near, GC_PR_BGD, GC_BGD).astype(np.uint8)
    trimap[m > 0] = GC_PR_FGD
    trimap[core] = GC_FGD
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


def _box_mask(shape, box):
    x0, y0, x1, y1 = pixel_window(box, shape[1], shape[0])
    inside = np.zeros(shape, bool)
    inside[y0:y1, x0:x1] = True
    return inside


def inscribed_ellipse(shape, box, fraction):
    """Bool mask of ``shape``: the ellipse centred in ``box`` (window pixels) with half-axes ``fraction`` x
    its sides, clipped to the box."""
    mask = np.zeros(shape, np.uint8)
    centre = (int(round((box[0] + box[2]) / 2)), int(round((box[1] + box[3]) / 2)))
    axes = (max(1, int(fraction * (box[2] - box[0]))), max(1, int(fraction * (box[3] - box[1]))))
    cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1)
    return (mask > 0) & _box_mask(shape, box)


def trimap_from_core(shape, box, point=None, radius=0):
    """The classical start: ``trimap_from_box`` plus a sure-fg central ellipse (``CORE_FRACTION``)."""
    trimap = trimap_from_box(shape, box, point, radius)
    trimap[inscribed_ellipse(shape, box, CORE_FRACTION)] = GC_FGD
    return trimap


def trimap_from_ellipse(shape, box):
    """The classical fallback: the box's inscribed ellipse (``PRIOR_FRACTION``) as a prior with a band of
    ``PRIOR_BAND`` x the box's shorter side; outside the box sure bg."""
    side = min(box[2] - box[0], box[3] - box[1])
    trimap = trimap_from_mask(inscribed_ellipse(shape, box, PRIOR_FRACTION), max(2, round(PRIOR_BAND * side)))
    trimap[~_box_mask(shape, box)] = GC_BGD
    return trimap


class Workspace:
    """Buffers MBO keeps between calls, grown to the largest band seen; one set per thread.

    A caller that refines many windows (a tracked object, a repeated query)
    passes the same workspace and stops allocating. Threads may share one
    workspace: each thread gets its own buffers (freed when it ends).
    """

    def __init__(self):
        self._local = threading.local()

    def buffers(self, pixels, nodes, rows):
        """(Band, FlowGraph) views for a window of ``pixels`` with ``nodes`` band nodes and ``rows`` rows."""
        mine = self._local
        have = getattr(mine, "size", (0, 0, 0))
        if pixels > have[0] or nodes > have[1] or rows > have[2]:
            size = tuple(int(1.25 * need) if need > got else got
                         for need, got in zip((pixels, nodes, rows), have))
            mine.band, mine.graph, mine.size = kernel.band_buffers(*size), new_graph(size[1], 8), size
        return kernel.band_view(mine.band, pixels, nodes, rows), graph_view(mine.graph, nodes)

    @property
    def size(self):
        """(pixels, nodes, rows) the calling thread's buffers hold, (0, 0, 0) before its first call."""
        return getattr(self._local, "size", (0, 0, 0))


def _check_window(window, trimap):
    if not isinstance(window, np.ndarray) or window.dtype != np.uint8 or window.ndim != 3 or window.shape[2] != 3 \
            or window.shape[0] == 0 or window.shape[1] == 0:
        checks.fail("window", "an (h, w, 3) uint8 array", window)
    if not isinstance(trimap, np.ndarray) or trimap.dtype != np.uint8 or trimap.shape != window.shape[:2] \
            or not trimap.flags.writeable or not trimap.flags.c_contiguous:
        checks.fail("trimap", f"a writable C-contiguous uint8 array of shape {window.shape[:2]}", trimap)
    if trimap.max() > GC_PR_FGD:
        raise ParameterError(f"trimap holds {int(trimap.max())}: codes are 0 (GC_BGD) to 3 (GC_PR_FGD)")
    if trimap.size > checks.MAX_NODES:
        checks.fail("window", f"at most {checks.MAX_NODES} pixels", window)
    return np.ascontiguousarray(window)


def grabcut(window, trimap, iterations=5, *, gamma=50.0, tol=0.001, seed=0, components=5, reuse_flow=True,
            workspace=None, sample=FIT_SAMPLE):
    """GrabCut on an (h, w, 3) uint8 window, updating the OpenCV-coded ``trimap`` in place.

    Sure pixels keep their label; probable ones become GC_PR_FGD or GC_PR_BGD.
    Stops after ``iterations`` or once fewer than ``tol`` x pixels change.
    ``reuse_flow`` warm-starts each max-flow from the previous one;
    ``sample``: sure pixels per class the mixtures learn from (more: all);
    ``workspace``: a :class:`Workspace` whose buffers are reused.
    """
    window = _check_window(window, trimap)
    iterations = checks.count("iterations", iterations, 0, 1000)
    gamma = checks.real("gamma", gamma, 0.0, 1e12, open_low=True)
    tol = checks.real("tol", tol, 0.0)
    seed = checks.seed("seed", seed) % 2**63
    components = checks.count("components", components, 1, 100)
    reuse_flow = checks.flag("reuse_flow", reuse_flow)
    workspace = checks.instance("workspace", workspace, Workspace) or Workspace()
    sample = checks.count("sample", sample, 1)
    return _grabcut(window, trimap, iterations, gamma, tol, seed, components, reuse_flow, workspace, sample)


def _grabcut(window, trimap, iterations, gamma, tol, seed, components, reuse_flow, workspace, sample):
    run = GrabcutRun()
    t = {"layout": 0.0, "init": 0.0, "gmm": 0.0, "maxflow": 0.0}
    tick = time.perf_counter()
    h, w = trimap.shape
    n = h * w
    tm = trimap.reshape(n)
    fg_count = int(np.count_nonzero(tm & 1))
    if fg_count in (0, n):
        run.skipped = "no background in the window" if fg_count else "no foreground in the window"
        run.converged = True
        return run
    nodes, kept_bg, kept_fg = kernel.layout_size(tm, sample)
    rows = nodes + kept_bg + kept_fg
    run.band = int(nodes)
    if nodes == 0:
        run.converged = True
        return run
    band, graph = workspace.buffers(n, nodes, rows)
    kernel.layout(window.reshape(n, 3), tm, sample, band)
    with launch(nodes + rows) as parallel:
        run.beta = kernel.beta(window, max(1, n // BETA_SAMPLE), parallel)
        kernel.band_links(window, trimap, band, run.beta, gamma, graph, parallel)
        tick = _lap(t, "layout", tick)
        mix = gmm.empty_mixtures(2, components)
        parts = parts_for(nodes)
        kernel.init_mixtures(band, mix, seed, parallel)
        tick = _lap(t, "init", tick)
        for it in range(iterations):
            kernel.refit(band, mix, parallel)
            tick = _lap(t, "gmm", tick)
            energy = kernel.terminals(band) + kernel.cut(band, graph, reuse_flow and it > 0, parts, parallel)
            changed = kernel.relabel(band)
            tick = _lap(t, "maxflow", tick)
            run.energy.append(float(energy))
            run.changed.append(int(changed))
            run.iterations = it + 1
            if changed < tol * n:
                run.converged = True
                break
    kernel.write_labels(band, tm)
    run.timings_ms = {k: v * 1e3 for k, v in t.items()}
    return run


def _lap(timings, phase, tick):
    now = time.perf_counter()
    timings[phase] += now - tick
    return now


def _free(trimap):
    """The probable (undecided) pixels of a trimap."""
    return (trimap == GC_PR_BGD) | (trimap == GC_PR_FGD)


def _solve(crop, trimap, args, max_nodes, min_growth=0.0):
    """GrabCut on ``trimap`` in place; a band above ``max_nodes`` pixels coarse to fine.

    Coarse to fine: the window is solved at half resolution (recursively,
    down to a band of at most ``COARSEST_NODES``), then at full resolution on
    a band of ``FINE_BAND`` pixels around the boundary it found; the sure
    pixels of ``trimap`` stay sure. Returns (run, scale, collapsed): the
    finest run (the coarser runs' time under ``coarse``), the coarsest
    scale, and whether the foreground ended below ``min_growth`` x its sure
    part, which is checked at the coarsest level (the finer ones are then
    skipped and ``trimap`` is left as it was).
    """
    if int(np.count_nonzero(_free(trimap))) <= max_nodes or min(trimap.shape) < 8:
        run = _grabcut(crop, trimap, *args)
        collapsed = min_growth > 0 and np.count_nonzero(trimap & 1) < min_growth * np.count_nonzero(trimap == GC_FGD)
        return run, 1.0, bool(collapsed)
    h, w = trimap.shape
    size = ((w + 1) // 2, (h + 1) // 2)
    small = np.ascontiguousarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA))
    coarse = cv2.resize(trimap, size, interpolation=cv2.INTER_NEAREST)
    first, scale, collapsed = _solve(small, coarse, args, min(max_nodes, COARSEST_NODES), min_growth)
    if first.skipped is not None or collapsed:
        return first, scale / 2, collapsed
    up = cv2.resize((coarse & 1) * 255, (w, h), interpolation=cv2.INTER_LINEAR) >= 128
    fine = trimap_from_mask(up, FINE_BAND)
    sure = ~_free(trimap)
    fine[sure] = trimap[sure]
    run = _grabcut(crop, fine, *args)
    trimap[:] = fine
    run.timings_ms["coarse"] = sum(first.timings_ms.values())
    return run, scale / 2, False


def refine(image, mask, box, *, point=None, classical_start="core", iterations=5, gamma=50.0, band=None, tol=0.001,
           margin_fraction=0.1, min_margin=16, seed_radius=None, seed=0, max_band_nodes=None,
           reuse_flow=True, out=None, workspace=None, valid=None):
    """Refine ``mask`` (H x W, non-zero = foreground, or None) inside ``box`` with GrabCut.

    ``mask=None`` is the classical mode: outside the box is sure background,
    a disc of ``seed_radius`` (default 5 % of the box's shorter side, at
    least 2 px) around ``point`` (x, y) sure foreground, the rest of the box
    probable foreground; ``classical_start="core"`` (default) adds the sure
    central ellipse and the ellipse-prior fallback of the module notes,
    ``"rect"`` is the plain rectangle start. The window is the box plus
    ``max(min_margin, margin_fraction x side)`` per axis. ``band``: probable
    band width around the mask edge (default ``band_width(box)``). A band of
    more than ``max_band_nodes`` pixels (default ``MAX_BAND_NODES``, classical
    ``CLASSICAL_BAND_NODES``) is solved coarse to fine. ``out``: a
    caller-owned (H, W) bool or uint8 array to write the mask into (it may be
    ``mask`` itself). ``workspace``: a :class:`Workspace` kept between calls.
    ``valid``: H x W bool, False where the image has no data (a raster's
    nodata): those pixels end as background and no colour model learns from
    them. Returns an ``MboResult``.
    """
    timer = time.perf_counter()
    image = to_rgb8(image)
    height, width = image.shape[:2]
    warnings = []
    box = tuple(float(v) for v in check_box(box, image.shape, warnings))
    iterations = checks.count("iterations", iterations, 0, 1000)
    gamma = checks.real("gamma", gamma, 0.0, 1e12, open_low=True)
    tol = checks.real("tol", tol, 0.0)
    band = None if band is None else checks.real("band", band, 1.0)
    margin_fraction = checks.real("margin_fraction", margin_fraction, 0.0, 100.0)
    min_margin = checks.real("min_margin", min_margin, 0.0, 1e9)
    seed_radius = None if seed_radius is None else checks.real("seed_radius", seed_radius, 0.0, 1e9)
    seed = checks.seed("seed", seed) % 2**63
    if max_band_nodes is None:
        max_band_nodes = MAX_BAND_NODES if mask is not None else CLASSICAL_BAND_NODES
    max_band_nodes = checks.count("max_band_nodes", max_band_nodes, 1024, checks.MAX_NODES)
    reuse_flow = checks.flag("reuse_flow", reuse_flow)
    workspace = checks.instance("workspace", workspace, Workspace) or Workspace()
    checks.choice("classical_start", classical_start, CLASSICAL_STARTS)
    out = checks.out_array("out", out, (height, width), (np.bool_, np.uint8))
    if valid is not None:
        valid = checks.mask("valid", valid, (height, width))
    if point is not None:
        point = check_point(point, image.shape)
        if mask is None and not (box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]):
            raise PointError(f"point {point.tolist()} lies outside the box {box}")
    if mask is None:
        out[:] = 0
    elif not (mask is out and out.dtype == np.bool_):   # a bool mask refined in place is already 0 / 1
        np.not_equal(checks.mask("mask", mask, (height, width)), 0, out=out)
    window = x0, y0, x1, y1 = window_for(box, image.shape, margin_fraction, min_margin)
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    local_box = (box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0)
    args = (iterations, gamma, tol, seed, 5, reuse_flow, workspace, FIT_SAMPLE)
    start = None
    if mask is not None:
        trimap = trimap_from_mask(out[y0:y1, x0:x1], band if band is not None else band_width(box))
    else:
        start = classical_start
        local_point = None if point is None else (point[0] - x0, point[1] - y0)
        side = min(box[2] - box[0], box[3] - box[1])
        radius = seed_radius if seed_radius is not None else max(2, round(0.05 * side))
        make = trimap_from_core if start == "core" else trimap_from_box
        trimap = make(crop.shape[:2], local_box, local_point, radius)
    nodata = None if valid is None else valid[y0:y1, x0:x1] == 0
    if nodata is not None:  # no data: background, no colour model, and a fixed colour for the contrast terms
        trimap[nodata] = kernel.NODATA
        crop = np.where(nodata[..., None], np.uint8(0), crop)
    prepare_ms = (time.perf_counter() - timer) * 1e3
    run, scale, collapsed = _solve(crop, trimap, args, max_band_nodes, COLLAPSED if start == "core" else 0.0)
    if collapsed and run.skipped is None:
        trimap = trimap_from_ellipse(crop.shape[:2], local_box)
        if nodata is not None:
            trimap[nodata] = kernel.NODATA
        run, scale, _ = _solve(crop, trimap, args, max_band_nodes)
        start = "ellipse"
        warnings.append("classical: GrabCut kept little beyond its seed; redone from the box's inscribed ellipse")
    if scale < 1.0:
        warnings.append(f"band solved coarse to fine, first at scale {scale:.3f}")
    timer = time.perf_counter()
    result = MboResult(**vars(run), box=box, window=window, start="box" if mask is None else "mask",
                       classical_start=start, scale=scale, warnings=warnings)
    if run.skipped is not None:
        result.warnings.append(f"MBO skipped: {run.skipped}")
        if mask is None:
            bx0, by0, bx1, by1 = pixel_window(box, width, height)
            out[by0:by1, bx0:bx1] = 1
    else:
        out[y0:y1, x0:x1] = trimap & 1
    result.mask = out
    result.timings_ms = {"prepare": prepare_ms, **run.timings_ms, "paste": (time.perf_counter() - timer) * 1e3}
    return result
