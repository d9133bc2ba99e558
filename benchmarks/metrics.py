"""RRSIS-D metrics as RMSIN's evaluation defines them.

Per sample: I = |P and G|, U = |P or G|, IoU = I / U (0 when U = 0).
Over samples: mIoU = mean IoU, oIoU = sum I / sum U, P@X = fraction with IoU >= X.

Protocols: ``native`` scores at the ground truth's resolution; ``480`` resizes
prediction and ground truth to 480 x 480 first, as RMSIN does. Every resize is
nearest-neighbour sampling pixel centres (PIL's NEAREST, which RMSIN uses).
"""
import math

import cv2
import numpy as np

from pslg.runtime.errors import ParameterError

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
#: protocol -> the (h, w) both masks are scored at; None: the ground truth's own size
PROTOCOLS = {"native": None, "480": (480, 480)}


def resize_nearest(mask, shape):
    """A bool mask resized to ``shape`` (h, w), nearest neighbour at pixel centres like PIL's NEAREST."""
    mask = np.asarray(mask) != 0
    if mask.shape == tuple(shape):
        return mask
    resized = cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST_EXACT)
    return resized != 0


def intersection_union(pred, gt, protocol="native"):
    """I and U (pixel counts) of a prediction against the ground truth under ``protocol``.

    Under ``native`` a prediction of another size than the ground truth is
    resized to it first; nonzero pixels are the object.
    """
    if protocol not in PROTOCOLS:
        raise ParameterError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    gt = np.asarray(gt)
    shape = PROTOCOLS[protocol] or gt.shape[:2]
    p, g = resize_nearest(pred, shape), resize_nearest(gt, shape)
    return int(np.count_nonzero(p & g)), int(np.count_nonzero(p | g))


def iou(i, u):
    """I / U, and 0 when U is 0 (both masks empty)."""
    return i / u if u else 0.0


def summarize(pairs):
    """n, mIoU, oIoU and P@X of (I, U) pairs, as fractions; the metrics are None when there are none."""
    pairs = list(pairs)
    n = len(pairs)
    ious = [iou(i, u) for i, u in pairs]
    total_u = sum(u for _, u in pairs)
    out = {"n": n,
           "mIoU": math.fsum(ious) / n if n else None,
           "oIoU": (sum(i for i, _ in pairs) / total_u if total_u else 0.0) if n else None}
    for t in THRESHOLDS:
        out[f"P@{t}"] = sum(v >= t for v in ious) / n if n else None
    return out


def summarize_by_category(rows):
    """``{"overall": summary, "categories": {name: summary}}`` of (category, I, U) rows; names sorted."""
    rows = list(rows)
    names = sorted({name for name, _, _ in rows})
    return {"overall": summarize((i, u) for _, i, u in rows),
            "categories": {name: summarize((i, u) for c, i, u in rows if c == name) for name in names}}
