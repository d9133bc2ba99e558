"""k-means kernel: Lloyd against scikit-learn, k-means++ against a pure-Python reference."""
import numpy as np
import pytest

from pslg.runtime.image import load_image
from pslg.runtime.kernels.kmeans import kmeans, kmeans_pp, lloyd, n_local_trials, uniforms
from tests.kernel_cases import DATA


def blobs(seed, n=600, k=4, d=3):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 255, (k, d))
    return np.concatenate([c + rng.normal(0, 12 + 8 * i, (n // k, d)) for i, c in enumerate(centres)])


def reference_pp(x, k, trials, uniforms):
    """Greedy k-means++ written out with numpy, one candidate at a time."""
    x = np.asarray(x, np.float64)
    centres = [x[min(int(uniforms[0] * len(x)), len(x) - 1)]]
    closest = ((x - centres[0]) ** 2).sum(1)
    u = 1
    for _ in range(1, k):
        cum = np.cumsum(closest)
        best = None
        for _ in range(trials):
            idx = min(int(np.searchsorted(cum, uniforms[u] * cum[-1], side="right")), len(x) - 1)
            u += 1
            pot_d = np.minimum(closest, ((x - x[idx]) ** 2).sum(1))
            if best is None or pot_d.sum() < best[0]:
                best = (pot_d.sum(), idx, pot_d)
        centres.append(x[best[1]])
        closest = best[2]
    return np.array(centres)


@pytest.mark.parametrize("seed,k", [(0, 2), (1, 2), (2, 5), (3, 5), (4, 3)])
def test_lloyd_matches_sklearn_from_the_same_centres(seed, k):
    from sklearn.cluster import KMeans
    x = blobs(seed)
    init = x[np.random.default_rng(seed + 10).choice(len(x), k, replace=False)].copy()
    sk = KMeans(n_clusters=k, init=init, n_init=1, max_iter=300, tol=0.0, algorithm="lloyd").fit(x)
    labels, iterations, inertia = lloyd(x, init.copy(), 300, 0.0)
    centres = init.copy()
    lloyd(x, centres, 300, 0.0)
    np.testing.assert_allclose(centres, sk.cluster_centers_, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(labels, sk.labels_)
    assert inertia == pytest.approx(sk.inertia_, rel=1e-9)
    assert 1 <= iterations <= 300


def test_lloyd_on_pixels_matches_sklearn():
    from sklearn.cluster import KMeans
    image = load_image(DATA / "osbs_029.png")
    pixels = np.ascontiguousarray(image[100:160, 200:260]).reshape(-1, 3)
    init = kmeans_pp(pixels, 5, n_local_trials(5), np.random.default_rng(7).random(13))
    sk = KMeans(n_clusters=5, init=init.copy(), n_init=1, max_iter=50, tol=0.0, algorithm="lloyd")
    sk.fit(pixels.astype(np.float64))
    centres = init.copy()
    labels, _, _ = lloyd(pixels, centres, 50, 0.0)
    np.testing.assert_allclose(centres, sk.cluster_centers_, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(labels, sk.labels_)


@pytest.mark.parametrize("k", [1, 2, 5, 8])
def test_kmeans_pp_matches_reference(k):
    x = blobs(k, n=400)
    trials = n_local_trials(k)
    uniforms = np.random.default_rng(k).random(1 + (k - 1) * trials)
    np.testing.assert_array_equal(kmeans_pp(x, k, trials, uniforms), reference_pp(x, k, trials, uniforms))


def test_uniform_stream():
    a = uniforms(5, 20000)
    np.testing.assert_array_equal(a, uniforms(5, 20000))
    assert 0 <= a.min() and a.max() < 1 and abs(a.mean() - 0.5) < 0.01
    assert np.histogram(a, 10, (0, 1))[0].min() > 1800
    assert not np.array_equal(a[:10], uniforms(6, 10))


def test_seeded_and_deterministic():
    x = blobs(5)
    a, b = kmeans(x, 4, seed=3), kmeans(x, 4, seed=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    others = [kmeans(x, 4, seed=s)[0] for s in range(6)]
    assert any(not np.array_equal(others[0], o) for o in others[1:])


def test_inertia_and_labels_belong_to_the_centres():
    x = blobs(6)
    centres, labels, iterations, inertia = kmeans(x, 4, seed=0, max_iter=3, tol=0.0)
    d = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(labels, d.argmin(1))
    assert inertia == pytest.approx(d.min(1).sum(), rel=1e-9)
    assert iterations <= 3


def test_empty_cluster_keeps_its_centre():
    x = np.array([[0.0, 0, 0], [1, 1, 1], [2, 2, 2]])
    centres = np.array([[1.0, 1, 1], [1000.0, 1000, 1000]])
    labels, _, _ = lloyd(x, centres, 10, 0.0)
    np.testing.assert_array_equal(labels, [0, 0, 0])
    np.testing.assert_array_equal(centres[1], [1000.0, 1000, 1000])


def test_degenerate_inputs():
    same = np.full((50, 3), 7, np.uint8)
    centres, labels, _, inertia = kmeans(same, 2)
    assert inertia == 0 and (labels == 0).all() and np.all(centres == 7)
    centres, labels, _, _ = kmeans(np.array([[1, 2, 3]], np.uint8), 5)
    assert centres.shape == (1, 3) and labels.tolist() == [0]


def test_colour_fast_path_equals_the_general_one():
    """d = 3 takes a fused distance loop; a fourth, constant coordinate takes the general one: same labels."""
    x = blobs(8, n=900)
    padded = np.concatenate([x, np.zeros((len(x), 1))], axis=1)
    a, b = kmeans(x, 5, seed=2), kmeans(padded, 5, seed=2)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_allclose(a[0], b[0][:, :3], rtol=1e-12)
