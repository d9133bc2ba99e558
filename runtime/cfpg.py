"""CFPG: the clustering-based foreground point generator.

Crop the box, split its colours into two clusters with k-means++ (k = 2),
take the cluster that touches the crop border least as foreground, separate
touching blobs with a distance-transform-seeded watershed, and return the
centroid of the most convex region above an area threshold
(convexity = area / convex-hull area). Fallbacks, in ``CfpgResult.fallback``:

* ``"centroid_outside_region"``: the chosen region is concave enough that its
  centroid misses it; the point is its pixel farthest from its border;
* ``"no_region_above_area"``: regions exist but none reaches the area
  threshold; the point is the largest region's pixel farthest from its border;
* ``"no_region"``: the foreground cluster is empty (a uniform crop); the
  point is the box centre.

A crop above ``max_pixels`` (default ``MAX_PIXELS``) is analysed downscaled:
the point only has to fall inside the most convex region, and a
128 x 128 crop is enough to find one; the point stays inside its
region at that scale.
"""
import time
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

from .errors import BoxError
from .geometry import fit_scale, pixel_window
from .image import to_rgb8
from .prompts import check_box
from . import checks
from .kernels.kmeans import kmeans

FALLBACKS = ("centroid_outside_region", "no_region_above_area", "no_region")
#: Crops above this many pixels are analysed downscaled (a 700 px box: 47 ms of k-means -> about 5 ms in all).
MAX_PIXELS = 1 << 14


@dataclass
class CfpgResult:
    """The point and what led to it; arrays are in crop pixels (at ``scale``)."""

    point: tuple                    # (x, y) in image pixels, inside the box
    box: tuple                      # the box clipped to the image
    window: tuple                   # (x0, y0, x1, y1) image pixels of the crop
    scale: float                    # crop pixels per image pixel (< 1: downscaled)
    labels: np.ndarray              # (h, w) k-means cluster of each crop pixel
    centres: np.ndarray             # (k, 3) cluster centres, RGB
    foreground: int                 # cluster taken as foreground
    regions: np.ndarray             # (h, w) int32: 0 = none, r = region r (1-based)
    areas: np.ndarray               # (R,) pixels of region r at index r - 1
    convexity: np.ndarray           # (R,) area / convex-hull area
    chosen: int                     # region the point comes from (0: none)
    fallback: Optional[str] = None  # one of FALLBACKS, or None
    timings_ms: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)


def _watershed_regions(crop, fg, peak_fraction):
    """Regions of ``fg``: watershed from the distance-transform peaks above a fraction of its maximum."""
    dist = cv2.distanceTransform(fg, cv2.DIST_L2, 5)
    peaks = (dist > peak_fraction * dist.max()).astype(np.uint8)
    count, markers = cv2.connectedComponents(peaks, connectivity=8)
    markers += 1                      # 1 = background, 2.. = peaks, 0 = to flood
    markers[(fg > 0) & (peaks == 0)] = 0
    # watershed marks the outer frame as a boundary: give it a frame of background to spend
    markers = cv2.copyMakeBorder(markers, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
    cv2.watershed(cv2.copyMakeBorder(crop, 1, 1, 1, 1, cv2.BORDER_REPLICATE), markers)
    markers = markers[1:-1, 1:-1]
    return np.where((fg > 0) & (markers >= 2), markers - 1, 0).astype(np.int32), count - 1


def _region_stats(regions, count):
    """Pixel coordinates, area and convexity of each region."""
    flat = regions.ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.cumsum(np.bincount(flat, minlength=count + 1))
    pixels, areas, convexity = [], np.zeros(count, np.int64), np.zeros(count)
    width = regions.shape[1]
    for r in range(1, count + 1):
        idx = order[bounds[r - 1]:bounds[r]]
        ys, xs = np.divmod(idx, width)
        pixels.append((ys, xs))
        areas[r - 1] = len(idx)
        if len(idx):
            pts = np.stack([xs - xs.min(), ys - ys.min()], axis=1).astype(np.int32)
            canvas = np.zeros((ys.max() - ys.min() + 1, xs.max() - xs.min() + 1), np.uint8)
            cv2.fillConvexPoly(canvas, cv2.convexHull(pts), 1)
            convexity[r - 1] = len(idx) / max(int(canvas.sum()), len(idx))
    return pixels, areas, convexity


def _innermost(ys, xs):
    """The pixel of a region (given by its coordinates) farthest from the region's border."""
    y0, x0 = ys.min(), xs.min()
    mask = np.zeros((ys.max() - y0 + 3, xs.max() - x0 + 3), np.uint8)
    mask[ys - y0 + 1, xs - x0 + 1] = 1
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
    iy, ix = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return ix - 1 + x0 + 0.5, iy - 1 + y0 + 0.5


def _crop_valid(valid, shape, window, size):
    """The crop's data mask at the crop's size (w, h), or None when every pixel has data."""
    if valid is None:
        return None
    checks.mask("valid", valid, shape)
    x0, y0, x1, y1 = window
    data = (valid[y0:y1, x0:x1] != 0).view(np.uint8)
    if data.shape[::-1] != size:
        data = cv2.resize(data, size, interpolation=cv2.INTER_NEAREST)
    if data.all():
        return None
    if not data.any():
        raise BoxError("the box covers only pixels without data (nodata)")
    return data.astype(bool)


def foreground_point(image, box, seed=0, *, area_fraction=0.05, peak_fraction=0.5,
                     kmeans_iterations=10, max_pixels=MAX_PIXELS, valid=None):
    """CFPG point for ``box`` (x1, y1, x2, y2) in an RGB uint8 ``image``; returns a ``CfpgResult``.

    ``seed``: any integer, the k-means++ seed (same seed, same point);
    ``area_fraction`` in [0, 1]: regions below this share of the crop do not
    qualify; ``peak_fraction`` in (0, 1): watershed markers are
    distance-transform peaks above this share of its maximum;
    ``kmeans_iterations`` >= 1 Lloyd steps; crops above ``max_pixels`` (>= 1)
    are analysed downscaled. ``valid``: H x W bool, False where the image has
    no data (a raster's nodata): those pixels are clustered with nothing,
    labelled -1, and no region holds them.
    """
    tick = time.perf_counter()
    seed = checks.seed("seed", seed)
    area_fraction = checks.real("area_fraction", area_fraction, 0.0, 1.0)
    peak_fraction = checks.real("peak_fraction", peak_fraction, 0.0, 1.0, open_low=True, open_high=True)
    kmeans_iterations = checks.count("kmeans_iterations", kmeans_iterations, 1, 1000)
    max_pixels = checks.count("max_pixels", max_pixels, 1)
    image = to_rgb8(image)
    height, width = image.shape[:2]
    warnings = []
    box = tuple(float(v) for v in check_box(box, image.shape, warnings))
    window = x0, y0, x1, y1 = pixel_window(box, width, height)
    crop = image[y0:y1, x0:x1]
    scale = fit_scale(y1 - y0, x1 - x0, max_pixels)
    if scale < 1.0:
        crop = cv2.resize(crop, (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))),
                          interpolation=cv2.INTER_AREA)
    crop = np.ascontiguousarray(crop)
    h, w = crop.shape[:2]
    data = _crop_valid(valid, image.shape[:2], window, (w, h))
    if data is None:
        centres, labels, _, _ = kmeans(crop.reshape(-1, 3), 2, seed=seed, max_iter=kmeans_iterations)
        labels = labels.reshape(h, w)
    else:
        crop = np.where(data[..., None], crop, 0).astype(np.uint8)  # nodata colours shape no watershed either
        labels = np.full((h, w), -1, np.int32)
        centres, labels[data], _, _ = kmeans(np.ascontiguousarray(crop[data]), 2, seed=seed,
                                             max_iter=kmeans_iterations)
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    touches = np.bincount(border[border >= 0], minlength=2)
    sizes = np.bincount(labels[labels >= 0], minlength=2)
    foreground = int(min((0, 1), key=lambda c: (touches[c], sizes[c])))
    fg = (labels == foreground).astype(np.uint8)
    t_cluster = time.perf_counter()
    regions, count = (_watershed_regions(crop, fg, peak_fraction) if fg.any()
                      else (np.zeros((h, w), np.int32), 0))
    t_watershed = time.perf_counter()
    pixels, areas, convexity = _region_stats(regions, count)
    qualified = [r for r in range(count) if areas[r] > 0 and areas[r] >= area_fraction * h * w]
    fallback, chosen = None, 0
    if qualified:
        r = max(qualified, key=lambda i: (convexity[i], areas[i]))
        chosen = r + 1
        ys, xs = pixels[r]
        px, py = xs.mean() + 0.5, ys.mean() + 0.5
        if regions[int(py), int(px)] != chosen:
            fallback = "centroid_outside_region"
            px, py = _innermost(ys, xs)
    elif count and areas.max() > 0:
        fallback = "no_region_above_area"
        chosen = int(np.argmax(areas)) + 1
        px, py = _innermost(*pixels[chosen - 1])
    else:
        fallback = "no_region"
    if chosen:
        sx, sy = w / (x1 - x0), h / (y1 - y0)
        point = (min(max(x0 + px / sx, box[0]), box[2]), min(max(y0 + py / sy, box[1]), box[3]))
    else:
        point = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    done = time.perf_counter()
    return CfpgResult(
        point=(float(point[0]), float(point[1])), box=box, window=window, scale=scale, labels=labels,
        centres=centres, foreground=foreground, regions=regions, areas=areas, convexity=convexity,
        chosen=chosen, fallback=fallback, warnings=warnings,
        timings_ms={"kmeans": (t_cluster - tick) * 1e3, "watershed": (t_watershed - t_cluster) * 1e3,
                    "regions": (done - t_watershed) * 1e3})
