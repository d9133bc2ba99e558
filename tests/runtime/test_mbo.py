"""MBO: parity with cv2.grabCut, refinement toward the object, classical mode, bad input."""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from pslg.benchmarks.kernels import ellipse_prior, load_cases, opencv_grabcut, window_problem
from pslg.runtime import mbo
from pslg.runtime.cfpg import foreground_point
from pslg.runtime.draw import overlay, side_by_side
from pslg.runtime.errors import BoxError, ParameterError, PointError
from pslg.runtime.image import load_image, save_rgb

DATA = Path(__file__).resolve().parents[2] / "data"
ARTIFACTS = Path(os.environ.get("PSLG_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"))


def iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


@pytest.fixture(scope="module")
def cases():
    """All six marina boats and five crowns of each forest image."""
    return load_cases(DATA, per_image=None)[:6] + load_cases(DATA, per_image=5)[6:]


def test_grabcut_matches_opencv_on_real_windows(cases):
    """Same window, trimap and 5 iterations as cv2.grabCut (GC_INIT_WITH_MASK): IoU >= 0.98.

    Both start from random k-means; on a few windows GrabCut itself lands on
    one of two solutions depending on its seed, so ours must match one of
    its seeded runs, and most windows must match its seed-0 run as well.
    """
    at_seed0 = []
    for name, image, box in cases:
        window, trimap, _ = window_problem(image, box)
        ours = trimap.copy()
        run = mbo.grabcut(window, ours, 5, tol=0.0)
        assert run.iterations == 5 and len(run.energy) == 5 and run.skipped is None
        assert np.array_equal(ours[trimap < 2], trimap[trimap < 2])          # sure pixels stand
        ious = [iou((ours & 1) > 0, (opencv_grabcut(window, trimap, seed=s) & 1) > 0) for s in range(5)]
        assert max(ious) >= 0.98, (name, box, ious)
        at_seed0.append(ious[0])
    assert np.median(at_seed0) >= 0.98


def test_warm_started_flow_gives_the_same_result(cases):
    name, image, box = cases[0]
    window, trimap, _ = window_problem(image, box)
    warm, cold = trimap.copy(), trimap.copy()
    a = mbo.grabcut(window, warm, 5, tol=0.0, reuse_flow=True)
    b = mbo.grabcut(window, cold, 5, tol=0.0, reuse_flow=False)
    np.testing.assert_array_equal(warm, cold)
    np.testing.assert_allclose(a.energy, b.energy, rtol=1e-9)


def synthetic_boat():
    """A white hull with a dark cockpit on the marina's open water; returns (image, object mask, box)."""
    image = np.ascontiguousarray(load_image(DATA / "marina.png")[600:760, 860:1160])
    hull = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(hull, [np.array([[60, 80], [110, 45], [230, 50], [250, 80], [230, 110], [110, 115]])], 1)
    rng = np.random.default_rng(0)
    paint = np.clip(rng.normal(215, 12, image.shape), 0, 255).astype(np.uint8)
    image[hull > 0] = paint[hull > 0]
    image[70:90, 150:200] = (40, 45, 50)
    return image, hull.astype(bool), (60.0, 45.0, 251.0, 116.0)


@pytest.mark.parametrize("change", ["eroded", "dilated"])
def test_refine_moves_a_wrong_mask_toward_the_object(change):
    image, truth, box = synthetic_boat()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11))
    prior = (cv2.erode if change == "eroded" else cv2.dilate)(truth.astype(np.uint8), kernel)
    result = mbo.refine(image, prior, box, band=8)
    assert iou(prior > 0, truth) < 0.9
    assert iou(result.mask, truth) > 0.97
    x0, y0, x1, y1 = result.window
    outside = np.ones_like(truth)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(result.mask[outside], prior[outside] > 0)


def test_classical_mode_against_plain_grabcut(cases):
    """Box + CFPG point vs cv2.grabCut from the rectangle on the same window, 5 iterations.

    GrabCut collapses (< 1 % of the box for every seed) on most tight boxes
    here: MBO must never return an empty mask. Where GrabCut finds the object
    (>= 25 % of the box), MBO must agree (IoU >= 0.9) with one of GrabCut's
    own seeded runs: both start from random k-means, and on some boats
    GrabCut itself flips between two solutions from seed to seed. Overlays
    (MBO | GrabCut seed 0) go to PSLG_TEST_ARTIFACTS/classical/.
    """
    outcome = {"collapsed": 0, "found": 0}
    for name, image, box in cases:
        point = foreground_point(image, box).point
        result = mbo.refine(image, None, box, point=point)
        x0, y0, x1, y1 = result.window
        window = np.ascontiguousarray(image[y0:y1, x0:x1])
        rect = (int(box[0]) - x0, int(box[1]) - y0, int(box[2] - box[0]), int(box[3] - box[1]))
        runs = [(opencv_grabcut(window, rect=rect, seed=seed) & 1) > 0 for seed in range(5)]
        ours = result.mask[y0:y1, x0:x1]
        shares = [r.sum() / ((box[2] - box[0]) * (box[3] - box[1])) for r in runs]
        local_box = (box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0)
        save_overlays(f"{name}_{int(box[0])}_{int(box[1])}", window, local_box, (point[0] - x0, point[1] - y0),
                      ours, runs[0])
        assert ours.any(), (name, box)
        if max(shares) < 0.01:
            outcome["collapsed"] += 1
        elif np.median(shares) >= 0.25:
            outcome["found"] += 1
            assert max(iou(ours, r) for r in runs) >= 0.9, (name, box)
    assert outcome["collapsed"] and outcome["found"]


def save_overlays(stem, window, box, point, ours, theirs):
    """MBO | GrabCut side by side, small windows drawn larger with square pixels."""
    zoom = max(1, 240 // min(window.shape[:2]))

    def grow(image):
        return cv2.resize(image, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)

    big, box = grow(window), [v * zoom for v in box]
    save_rgb(ARTIFACTS / "classical" / f"{stem}.png", side_by_side(
        overlay(big, grow(ours.astype(np.uint8)) > 0, box, (point[0] * zoom, point[1] * zoom), title="MBO classical"),
        overlay(big, grow(theirs.astype(np.uint8)) > 0, box, title="cv2.grabCut")))


def test_out_buffer_and_result_fields(cases):
    name, image, box = cases[0]
    prior = ellipse_prior(image.shape, box)
    prior[10:20, 10:20] = 7                                # far from the window: must stand, as 1
    out = np.full(prior.shape, 9, np.uint8)
    result = mbo.refine(image, prior, box, out=out)
    assert result.mask is out and set(np.unique(out)) <= {0, 1}
    assert out[10:20, 10:20].all()
    assert result.start == "mask" and result.scale == 1.0 and result.iterations == len(result.changed)
    assert set(result.timings_ms) == {"prepare", "init", "edges", "gmm", "maxflow", "paste"}
    again = mbo.refine(image, prior, box)
    np.testing.assert_array_equal(again.mask, out > 0)


def test_degenerate_masks_and_windows():
    image = load_image(DATA / "soap_061.png")
    box = (150.0, 150.0, 200.0, 200.0)
    full = np.ones(image.shape[:2], bool)
    result = mbo.refine(image, full, box)
    assert result.skipped and result.mask.all()
    empty = np.zeros(image.shape[:2], bool)
    result = mbo.refine(image, empty, box)
    assert result.skipped and not result.mask.any()
    uniform = np.full((120, 120, 3), 77, np.uint8)
    result = mbo.refine(uniform, ellipse_prior(uniform.shape, (30, 30, 90, 90)), (30, 30, 90, 90))
    assert result.skipped is None and np.isfinite(result.energy).all()
    one = np.array([[[1, 2, 3]]], np.uint8)
    result = mbo.refine(one, None, (0, 0, 1, 1), point=(0.5, 0.5))
    assert result.skipped and result.mask.tolist() == [[True]]
    result = mbo.refine(one, np.zeros((1, 1), bool), (0, 0, 1, 1))
    assert result.skipped and result.mask.tolist() == [[False]]


def test_box_partly_outside_is_clipped():
    image = load_image(DATA / "osbs_029.png")
    result = mbo.refine(image, None, (380.0, -20.0, 430.0, 30.0), point=(390.0, 10.0))
    assert result.box == (380.0, 0.0, 400.0, 30.0) and result.warnings
    assert result.window[2] == 400 and result.window[1] == 0


def test_bad_input():
    image = load_image(DATA / "osbs_029.png")
    mask = np.zeros(image.shape[:2], bool)
    for box in [(10, 10, 10, 30), (50, 50, 40, 60), (-50, -50, -10, -10), (0, 0, np.inf, 10)]:
        with pytest.raises(BoxError):
            mbo.refine(image, mask, box)
    with pytest.raises(ParameterError):
        mbo.refine(image, mask[:10], (0, 0, 50, 50))
    with pytest.raises(ParameterError):
        mbo.refine(image, mask.astype(np.float32), (0, 0, 50, 50))
    with pytest.raises(ParameterError):
        mbo.refine(image, mask, (0, 0, 50, 50), out=np.zeros((5, 5), bool))
    with pytest.raises(ParameterError):
        mbo.refine(image, mask, (0, 0, 50, 50), iterations=-1)
    with pytest.raises(PointError):
        mbo.refine(image, None, (0, 0, 50, 50), point=(80, 80))


@pytest.mark.slow
def test_huge_window_is_refined_downscaled():
    rng = np.random.default_rng(1)
    image = np.clip(rng.normal(60, 10, (4000, 4000, 3)), 0, 255).astype(np.uint8)
    truth = np.zeros((4000, 4000), np.uint8)
    cv2.circle(truth, (2000, 2000), 1500, 1, -1)
    image[truth > 0] = 200
    prior = cv2.erode(truth, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (41, 41)))
    result = mbo.refine(image, prior, (0, 0, 4000, 4000), band=40)
    assert result.scale < 1 and any("scale" in w for w in result.warnings)
    assert iou(result.mask, truth > 0) > 0.99


def test_a_reused_workspace_gives_the_same_masks(data_dir):
    """Buffers kept between calls (one window shape, different content) change no result."""
    from pslg.runtime.image import load_image
    from pslg.runtime.mbo import Workspace, refine
    image = load_image(data_dir / "marina.png")
    workspace = Workspace()
    for box in ((1238, 756, 1347, 806), (1000, 700, 1109, 750), (300, 700, 409, 750)):
        shared = refine(image, None, box, point=((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), workspace=workspace)
        fresh = refine(image, None, box, point=((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))
        np.testing.assert_array_equal(shared.mask, fresh.mask)
        assert shared.energy == fresh.energy
    assert workspace.shape is not None
