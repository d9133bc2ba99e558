"""Colour mixture kernel against a pure-numpy reference, and its guards."""
import numpy as np
import pytest

from pslg.runtime.kernels import gmm


def sample(seed, n=900):
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(120, 50, (n, 3)), 0, 255).astype(np.uint8)
    mixture = rng.integers(0, 2, n).astype(np.int8)
    component = rng.integers(0, 3, n).astype(np.int8)
    return pixels, mixture, component


def fitted(pixels, mixture, component, n_components=3, weight=None):
    mix = gmm.empty_mixtures(2, n_components)
    gmm.fit(gmm.to_planes(pixels), mixture, component, np.ones(len(pixels)) if weight is None else weight, mix)
    return mix


def test_fit_matches_numpy():
    pixels, mixture, component = sample(0)
    mix = fitted(pixels, mixture, component)
    x = pixels.astype(np.float64)
    for c in range(2):
        for k in range(3):
            sel = (mixture == c) & (component == k)
            assert mix.weights[c, k] == pytest.approx(sel.sum() / (mixture == c).sum())
            np.testing.assert_allclose(mix.means[c, k], x[sel].mean(0), rtol=1e-12)
            cov = np.cov(x[sel].T, bias=True)
            np.testing.assert_allclose(mix.covs[c, k], cov, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(mix.precs[c, k], np.linalg.inv(cov), rtol=1e-8)
            assert mix.logdets[c, k] == pytest.approx(np.log(np.linalg.det(cov)))


def reference_evaluate(pixels, mix):
    """-log sum_k w_k |S|^-1/2 exp(-m/2) and argmax_k |S|^-1/2 exp(-m/2), directly."""
    x = pixels.astype(np.float64)
    n, (c_count, k_count) = len(x), mix.weights.shape
    nll, best = np.zeros((n, c_count)), np.zeros((n, c_count), int)
    for c in range(c_count):
        dens = np.zeros((n, k_count))
        for k in range(k_count):
            if mix.weights[c, k] == 0:
                continue
            diff = x - mix.means[c, k]
            m = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(mix.covs[c, k]), diff)
            dens[:, k] = np.exp(-0.5 * m) / np.sqrt(np.linalg.det(mix.covs[c, k]))
        nll[:, c] = -np.log((dens * mix.weights[c]).sum(1))
        best[:, c] = dens.argmax(1)
    return nll, best


def test_evaluate_matches_reference():
    pixels, mixture, component = sample(1)
    mix = fitted(pixels, mixture, component)
    nll, best = np.empty((len(pixels), 2)), np.zeros((len(pixels), 2), np.int8)
    gmm.evaluate(gmm.to_planes(pixels), mix, np.full(len(pixels), -1, np.int8), nll, best)
    ref_nll, ref_best = reference_evaluate(pixels, mix)
    np.testing.assert_allclose(nll, ref_nll, rtol=1e-10)
    np.testing.assert_array_equal(best, ref_best)


def test_evaluate_only_limits_the_work():
    pixels, mixture, component = sample(2)
    mix = fitted(pixels, mixture, component)
    n = len(pixels)
    only = np.where(np.arange(n) % 3 == 0, -1, mixture).astype(np.int8)
    nll, best = np.full((n, 2), -7.0), np.full((n, 2), -1, np.int8)
    gmm.evaluate(gmm.to_planes(pixels), mix, only, nll, best)
    ref_nll, ref_best = reference_evaluate(pixels, mix)
    both = only < 0
    np.testing.assert_allclose(nll[both], ref_nll[both], rtol=1e-10)
    assert (nll[~both] == -7.0).all()
    rows = np.nonzero(~both)[0]
    np.testing.assert_array_equal(best[rows, only[rows]], ref_best[rows, only[rows]])
    assert (best[rows, 1 - only[rows]] == -1).all()


def test_singular_and_empty_components():
    rng = np.random.default_rng(3)
    pixels = np.concatenate([np.full((40, 3), 200, np.uint8),                              # one colour
                             rng.integers(0, 255, (40, 3)).astype(np.uint8)])
    pixels[40:60, 2] = pixels[40:60, 0]                                                    # rank-deficient
    component = np.repeat(np.array([0, 1, 1], np.int8), [40, 20, 20])
    component[60:] = 2
    pixels[60:, :] = pixels[40:60, :]
    mixture = np.zeros(80, np.int8)
    mix = fitted(pixels, mixture, component, n_components=4)
    for k in range(3):
        assert np.linalg.det(mix.covs[0, k]) > gmm.SINGULAR_DET
        np.testing.assert_allclose(mix.precs[0, k] @ mix.covs[0, k], np.eye(3), atol=1e-8)
    assert mix.weights[0, 3] == 0                                                          # empty component
    nll, best = np.empty((80, 2)), np.zeros((80, 2), np.int8)
    gmm.evaluate(gmm.to_planes(pixels), mix, np.zeros(80, np.int8), nll, best)
    assert (best[:, 0] != 3).all()
    far = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)                                 # far from every mean
    nll = np.empty((2, 2))
    gmm.evaluate(gmm.to_planes(far), mix, np.array([-1, -1], np.int8), nll, np.zeros((2, 2), np.int8))
    assert np.isfinite(nll[:, 0]).all()


def test_mixture_without_pixels_keeps_its_parameters():
    pixels, mixture, component = sample(4)
    mix = fitted(pixels, mixture, component)
    before = [a.copy() for a in mix]
    gmm.fit(gmm.to_planes(pixels), np.zeros(len(pixels), np.int8), component, np.ones(len(pixels)), mix)  # 1: none
    for a, b in zip(mix, before):
        np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(mix.means[0], before[1][0])


def test_weights_stand_for_repeated_pixels():
    """A pixel of weight 3 fits like three copies of it (how a sampled sure class stands for all of it)."""
    pixels, mixture, component = sample(5, n=300)
    weight = np.where(np.arange(300) % 2 == 0, 3.0, 1.0)
    repeat = np.repeat(np.arange(300), weight.astype(int))
    a = fitted(pixels, mixture, component, weight=weight)
    b = fitted(pixels[repeat], mixture[repeat], component[repeat])
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)


def test_parallel_evaluation_is_the_same():
    pixels, mixture, component = sample(6, n=20000)
    mix = fitted(pixels, mixture, component)
    only = np.where(np.arange(20000) % 3 == 0, -1, mixture).astype(np.int8)
    out = [(np.zeros((20000, 2)), np.zeros((20000, 2), np.int8)) for _ in range(2)]
    gmm.evaluate(gmm.to_planes(pixels), mix, only, *out[0])
    gmm.evaluate_parallel(gmm.to_planes(pixels), mix, only, *out[1])
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])
