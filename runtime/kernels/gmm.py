"""Colour Gaussian mixtures with hard assignment, as GrabCut learns them (Numba).

A set of ``C`` mixtures (GrabCut: background and foreground) of ``K``
full-covariance 3-D components is held in a ``Mixtures`` tuple of arrays:
``weights (C, K)``, ``means (C, K, 3)``, ``covs (C, K, 3, 3)``,
``precs (C, K, 3, 3)`` (inverse covariances) and ``logdets (C, K)``. Densities
follow OpenCV's GrabCut: ``w_k |S_k|^-1/2 exp(-m^2 / 2)`` without the
``(2 pi)^-3/2`` constant, which moves every unary term by the same amount.
Guards: an empty component gets weight 0 and is never chosen; a covariance
with determinant <= 1e-6 gets 0.01 added to its diagonal (OpenCV's fix),
repeated with ten times more until it is regular (a uniform colour).
``evaluate`` has a parallel compilation, ``evaluate_parallel`` (see
``kernels.parallel``), with the same results.
"""
from collections import namedtuple

import numpy as np
from numba import njit, prange

from .parallel import variants

Mixtures = namedtuple("Mixtures", "weights means covs precs logdets")

SINGULAR_DET = 1e-6
SINGULAR_FIX = 0.01
_NEGLIGIBLE = -37.0   # exp(-37) < 2^-53: a term this far below the largest cannot change the sum


def to_planes(pixels):
    """(3, n) float64 colour planes of (n, 3) pixels, the layout the kernels read."""
    return np.ascontiguousarray(pixels.T, dtype=np.float64)


def empty_mixtures(n_mixtures, n_components):
    """Allocate a ``Mixtures`` for ``n_mixtures`` mixtures of ``n_components``."""
    c, k = n_mixtures, n_components
    return Mixtures(np.zeros((c, k)), np.zeros((c, k, 3)), np.zeros((c, k, 3, 3)),
                    np.zeros((c, k, 3, 3)), np.zeros((c, k)))


@njit(cache=True)
def _det3(a):
    return (a[0, 0] * (a[1, 1] * a[2, 2] - a[1, 2] * a[2, 1])
            - a[0, 1] * (a[1, 0] * a[2, 2] - a[1, 2] * a[2, 0])
            + a[0, 2] * (a[1, 0] * a[2, 1] - a[1, 1] * a[2, 0]))


@njit(cache=True)
def _invert3(a, det, out):
    r = 1.0 / det
    out[0, 0] = (a[1, 1] * a[2, 2] - a[1, 2] * a[2, 1]) * r
    out[0, 1] = -(a[0, 1] * a[2, 2] - a[0, 2] * a[2, 1]) * r
    out[0, 2] = (a[0, 1] * a[1, 2] - a[0, 2] * a[1, 1]) * r
    out[1, 0] = -(a[1, 0] * a[2, 2] - a[1, 2] * a[2, 0]) * r
    out[1, 1] = (a[0, 0] * a[2, 2] - a[0, 2] * a[2, 0]) * r
    out[1, 2] = -(a[0, 0] * a[1, 2] - a[0, 2] * a[1, 0]) * r
    out[2, 0] = (a[1, 0] * a[2, 1] - a[1, 1] * a[2, 0]) * r
    out[2, 1] = -(a[0, 0] * a[2, 1] - a[0, 1] * a[2, 0]) * r
    out[2, 2] = (a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]) * r


@njit(cache=True)
def fit(planes, mixture, component, weight, mix):
    """Learn every mixture from hard assignments, in place.

    ``planes (3, n)`` float64 colour planes; ``mixture (n,)`` says which mixture a pixel trains (a
    negative value: none), ``component (n,)`` which of its components,
    ``weight (n,)`` how many pixels it stands for (1 everywhere: OpenCV's
    fit; a sample of a class: that class's pixels per sampled pixel). A
    mixture that gets no pixel keeps its previous parameters.
    """
    weights, means, covs, precs, logdets = mix
    c_count, k_count = weights.shape
    sums = np.zeros((c_count, k_count, 3))
    prods = np.zeros((c_count, k_count, 3, 3))
    counts = np.zeros((c_count, k_count))
    for i in range(planes.shape[1]):
        c = mixture[i]
        if c < 0:
            continue
        k = component[i]
        wt = weight[i]
        p0, p1, p2 = planes[0, i], planes[1, i], planes[2, i]
        w0, w1, w2 = wt * p0, wt * p1, wt * p2
        counts[c, k] += wt
        sums[c, k, 0] += w0
        sums[c, k, 1] += w1
        sums[c, k, 2] += w2
        prods[c, k, 0, 0] += w0 * p0
        prods[c, k, 0, 1] += w0 * p1
        prods[c, k, 0, 2] += w0 * p2
        prods[c, k, 1, 1] += w1 * p1
        prods[c, k, 1, 2] += w1 * p2
        prods[c, k, 2, 2] += w2 * p2
    for c in range(c_count):
        total = counts[c].sum()
        if total == 0:
            continue
        for k in range(k_count):
            n = counts[c, k]
            weights[c, k] = n / total if n > 0 else 0.0
            if n == 0:
                continue
            for a in range(3):
                means[c, k, a] = sums[c, k, a] / n
            for a in range(3):
                for b in range(a, 3):
                    v = prods[c, k, a, b] / n - means[c, k, a] * means[c, k, b]
                    covs[c, k, a, b] = v
                    covs[c, k, b, a] = v
            cov = covs[c, k]
            det = _det3(cov)
            fix = SINGULAR_FIX
            while det <= SINGULAR_DET:
                for a in range(3):
                    cov[a, a] += fix
                det = _det3(cov)
                fix *= 10.0
            _invert3(cov, det, precs[c, k])
            logdets[c, k] = np.log(det)


@njit(cache=True)
def _component_logs(planes, start, stop, means, precs, logdets, need, out):
    """``out[c, k, i - start] = -(m^2 + log|S_ck|) / 2`` for samples start..stop and the mixtures ``need``
    marks (vectorises)."""
    for c in range(means.shape[0]):
        if not need[c]:
            continue
        for k in range(means.shape[1]):
            mu = means[c, k]
            q = precs[c, k]
            a00, a11, a22 = q[0, 0], q[1, 1], q[2, 2]
            a01, a02, a12 = 2.0 * q[0, 1], 2.0 * q[0, 2], 2.0 * q[1, 2]
            half_logdet = 0.5 * logdets[c, k]
            row = out[c, k]
            for i in range(start, stop):
                d0 = planes[0, i] - mu[0]
                d1 = planes[1, i] - mu[1]
                d2 = planes[2, i] - mu[2]
                m = d0 * (a00 * d0 + a01 * d1 + a02 * d2) + d1 * (a11 * d1 + a12 * d2) + a22 * d2 * d2
                row[i - start] = -0.5 * m - half_logdet


_CHUNK = 256     # pixels whose component logs are computed together (vectorised)
_BLOCK = 4096    # pixels per parallel task


def _evaluate(planes, mix, only, nll, best):
    """Per pixel and mixture: negative log-likelihood and most likely component.

    ``planes (3, n)`` float64 colour planes. ``nll (n, C)`` gets
    ``-log sum_k w_k N_k(x)`` (log-sum-exp, finite for any colour); ``best
    (n, C)`` the component with the highest density without its weight,
    GrabCut's rule for the next hard assignment. ``only (n,)``: a mixture
    index asks for that mixture's ``best`` alone (GrabCut's sure pixels;
    everything else is left as it is), a negative value for all. Mixtures
    no pixel of a run of ``_CHUNK`` asks for are skipped there, so pixels
    grouped by ``only`` cost least.
    """
    weights, means, _, precs, logdets = mix     # arrays only into the prange body (see kernels.grabcut)
    c_count, k_count = weights.shape
    logw = np.full((c_count, k_count), -np.inf)
    for c in range(c_count):
        for k in range(k_count):
            if weights[c, k] > 0:
                logw[c, k] = np.log(weights[c, k])
    n = planes.shape[1]
    for block in prange((n + _BLOCK - 1) // _BLOCK):
        logs = np.empty((c_count, k_count, _CHUNK))
        top = np.empty(_CHUNK)
        arg = np.empty(_CHUNK, np.int64)
        need = np.empty(c_count, np.bool_)
        for start in range(block * _BLOCK, min(n, (block + 1) * _BLOCK), _CHUNK):
            _evaluate_chunk(planes, means, precs, logdets, logw, only, nll, best, start, min(n, start + _CHUNK), logs,
                            top, arg, need)


@njit(cache=True)
def _evaluate_chunk(planes, means, precs, logdets, logw, only, nll, best, start, stop, logs, top, arg, need):
    c_count, k_count = logw.shape
    m = stop - start
    need[:] = False
    for i in range(start, stop):
        if only[i] < 0:
            need[:] = True
            break
        need[only[i]] = True
    _component_logs(planes, start, stop, means, precs, logdets, need, logs)
    for c in range(c_count):
        if not need[c]:
            continue
        top[:] = -np.inf
        arg[:] = 0
        for k in range(k_count):
            if logw[c, k] == -np.inf:
                continue
            row = logs[c, k]
            for r in range(m):
                better = row[r] > top[r]
                top[r] = row[r] if better else top[r]
                arg[r] = k if better else arg[r]
        for r in range(m):
            if only[start + r] < 0 or only[start + r] == c:
                best[start + r, c] = arg[r]
    for r in range(m):
        i = start + r
        if only[i] >= 0:
            continue
        for c in range(c_count):
            top_w = -np.inf
            for k in range(k_count):
                top_w = max(top_w, logs[c, k, r] + logw[c, k])
            s = 0.0
            for k in range(k_count):
                t = logs[c, k, r] + logw[c, k] - top_w
                if t > _NEGLIGIBLE:
                    s += np.exp(t)
            nll[i, c] = -(top_w + np.log(s))


evaluate, evaluate_parallel = variants(_evaluate)
