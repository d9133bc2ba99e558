"""K-means: greedy k-means++ seeding and Lloyd iterations (Numba).

Samples are rows of an (n, d) array of any real or uint8 dtype. The kernels
work on a transposed float64 copy (d, n), so the distance loops run over
contiguous memory and vectorise. Randomness enters only through the uniforms
given to the seeding, so a seed gives the same centres everywhere (``kmeans``
draws them with ``uniforms(seed, count)``, a SplitMix64 stream).
"""
import math

import numpy as np
from numba import njit

from .. import checks


@njit(cache=True)
def n_local_trials(k):
    """Candidates tried per new centre (scikit-learn's greedy k-means++ rule)."""
    return 2 + int(math.log(k)) if k > 1 else 1


@njit(cache=True)
def uniforms(seed, count):
    """``count`` floats in [0, 1) from SplitMix64 seeded with ``seed`` (the same on every platform)."""
    out = np.empty(count)
    state = np.uint64(seed)
    for i in range(count):
        state += np.uint64(0x9E3779B97F4A7C15)
        z = state
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
        out[i] = (z >> np.uint64(11)) * (1.0 / 9007199254740992.0)
    return out


@njit(cache=True)
def _transpose(x):
    n, d = x.shape
    xt = np.empty((d, n))
    for i in range(n):
        for t in range(d):
            xt[t, i] = x[i, t]
    return xt


@njit(cache=True)
def _sqdist_to(xt, centre, out):
    """Squared distance of every sample to ``centre`` into ``out``."""
    out[:] = 0.0
    for t in range(xt.shape[0]):
        c = centre[t]
        row = xt[t]
        for i in range(xt.shape[1]):
            v = row[i] - c
            out[i] += v * v


@njit(cache=True)
def _nearest(xt, centres, labels, best, tmp):
    """Label each sample with its nearest centre (lowest index on ties); return the inertia."""
    if xt.shape[0] == 3:
        return _nearest3(xt, centres, labels, best)
    best[:] = np.inf
    for j in range(centres.shape[0]):
        _sqdist_to(xt, centres[j], tmp)
        for i in range(xt.shape[1]):
            closer = tmp[i] < best[i]
            best[i] = tmp[i] if closer else best[i]
            labels[i] = j if closer else labels[i]
    return best.sum()


@njit(cache=True)
def _nearest3(xt, centres, labels, best):
    """``_nearest`` for colours: one fused pass per centre (the same sums in the same order)."""
    x0, x1, x2 = xt[0], xt[1], xt[2]
    best[:] = np.inf
    for j in range(centres.shape[0]):
        c0, c1, c2 = centres[j, 0], centres[j, 1], centres[j, 2]
        for i in range(xt.shape[1]):
            v0 = x0[i] - c0
            v1 = x1[i] - c1
            v2 = x2[i] - c2
            d = ((0.0 + v0 * v0) + v1 * v1) + v2 * v2
            closer = d < best[i]
            best[i] = d if closer else best[i]
            labels[i] = j if closer else labels[i]
    return best.sum()


@njit(cache=True)
def _centre_sums(xt, labels, sums, counts):
    """Per cluster: member count and coordinate sums, in one pass (each cluster sums in sample order)."""
    sums[:] = 0.0
    counts[:] = 0
    for i in range(xt.shape[1]):
        j = labels[i]
        counts[j] += 1
        for t in range(xt.shape[0]):
            sums[j, t] += xt[t, i]


@njit(cache=True)
def _seed(xt, k, trials, draws):
    n = xt.shape[1]
    centres = np.empty((k, xt.shape[0]))
    centres[0] = xt[:, min(int(draws[0] * n), n - 1)]
    closest = np.empty(n)
    _sqdist_to(xt, centres[0], closest)
    trial = np.empty(n)
    best = np.empty(n)
    u = 1
    for c in range(1, k):
        cum = np.cumsum(closest)
        best_pot = np.inf
        best_idx = 0
        for _ in range(trials):
            idx = min(np.searchsorted(cum, draws[u] * cum[-1], side="right"), n - 1)
            u += 1
            _sqdist_to(xt, xt[:, idx], trial)
            pot = 0.0
            for i in range(n):
                trial[i] = min(closest[i], trial[i])
                pot += trial[i]
            if pot < best_pot:
                best_pot = pot
                best_idx = idx
                best[:] = trial
        centres[c] = xt[:, best_idx]
        closest[:] = best
    return centres


@njit(cache=True)
def _lloyd(xt, centres, max_iter, tol):
    d, n = xt.shape
    k = centres.shape[0]
    labels = np.full(n, -1, np.int32)
    new = np.empty(n, np.int32)
    best = np.empty(n)
    tmp = np.empty(n)
    sums = np.empty((k, d))
    counts = np.empty(k, np.int64)
    it = 0
    while it < max_iter:
        inertia = _nearest(xt, centres, new, best, tmp)
        it += 1
        changed = 0
        for i in range(n):
            changed += new[i] != labels[i]
            labels[i] = new[i]
        if changed == 0:
            return labels, it, inertia
        _centre_sums(xt, labels, sums, counts)
        shift = 0.0
        for j in range(k):
            if counts[j] == 0:
                continue
            for t in range(d):
                m = sums[j, t] / counts[j]
                shift += (m - centres[j, t]) ** 2
                centres[j, t] = m
        if shift <= tol:
            break
    inertia = _nearest(xt, centres, labels, best, tmp)
    return labels, it, inertia


@njit(cache=True)
def kmeans_pp(x, k, trials, draws):
    """Greedy k-means++ centres (k, d) float64 of the rows of ``x``.

    ``draws`` holds 1 + (k - 1) * trials numbers in [0, 1): the first picks
    the first centre, each further centre takes the candidate (sampled with
    probability proportional to the squared distance to the nearest centre)
    that lowers the total squared distance most.
    """
    return _seed(_transpose(x), k, trials, draws)


@njit(cache=True)
def lloyd(x, centres, max_iter, tol):
    """Lloyd iterations on the rows of ``x`` from ``centres`` (updated in place).

    Stops when the labels repeat or when the summed squared centre shift is
    <= ``tol`` (scikit-learn's rule with an absolute tolerance). Empty
    clusters keep their centre. Returns (labels int32, iterations, inertia);
    the labels always belong to the returned centres.
    """
    return _lloyd(_transpose(x), centres, max_iter, tol)


@njit(cache=True)
def kmeans_planes(xt, k, seed, max_iter, tol):
    """``kmeans`` on the columns of (d, n) float64 planes (``k`` already <= n); the same result."""
    trials = n_local_trials(k)
    centres = _seed(xt, k, trials, uniforms(seed, 1 + (k - 1) * trials))
    labels, it, inertia = _lloyd(xt, centres, max_iter, tol)
    return centres, labels, it, inertia


def kmeans(x, k, seed=0, max_iter=10, tol=0.0):
    """k-means++ then Lloyd on the rows of ``x``; returns (centres, labels, iterations, inertia).

    ``x``: (n, d) real array, n, d >= 1, finite. ``k`` >= 1 is lowered to the
    number of rows when there are fewer; ``seed`` any integer; ``max_iter``
    >= 0 Lloyd steps; ``tol`` >= 0. Same seed, same result.
    """
    x = checks.samples("x", x)
    k = checks.count("k", k, 1)
    seed = checks.seed("seed", seed) % 2**63
    max_iter = checks.count("max_iter", max_iter, 0)
    tol = checks.real("tol", tol, 0.0)
    return kmeans_planes(_transpose(x), min(k, x.shape[0]), seed, max_iter, tol)
