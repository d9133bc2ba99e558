"""The metrics: I/U per sample, mIoU / oIoU / P@X by hand, and the 480 protocol's resizing."""
import numpy as np
import pytest
from PIL import Image

from pslg.benchmarks.metrics import intersection_union, iou, resize_nearest, summarize, summarize_by_category
from pslg.runtime.errors import ParameterError


def _rect(shape, r0, r1, c0, c1):
    mask = np.zeros(shape, bool)
    mask[r0:r1, c0:c1] = True
    return mask


def test_intersection_union_counts_pixels():
    gt = _rect((20, 30), 0, 10, 0, 10)
    pred = _rect((20, 30), 5, 15, 0, 10)
    assert intersection_union(pred, gt) == (50, 150)
    assert intersection_union(pred.astype(np.uint8) * 255, gt) == (50, 150)  # nonzero is the object
    assert intersection_union(np.zeros((20, 30)), np.zeros((20, 30), bool)) == (0, 0)


def test_iou_is_zero_when_both_masks_are_empty():
    assert iou(0, 0) == 0.0 and iou(3, 4) == 0.75


def test_native_protocol_resizes_a_prediction_of_another_size_to_the_ground_truth():
    gt = _rect((40, 48), 0, 20, 0, 48)  # the top half
    pred = _rect((80, 96), 0, 40, 0, 96)  # the top half, twice the size
    assert intersection_union(pred, gt) == (960, 960)


def test_480_protocol_scales_both_masks_to_480():
    gt = _rect((48, 48), 0, 10, 0, 10)
    pred = _rect((48, 48), 0, 10, 0, 8)
    assert intersection_union(pred, gt, "480") == (8000, 10000)
    odd_gt = _rect((40, 48), 10, 20, 10, 20)  # rows x 12, columns x 10
    assert intersection_union(np.ones((48, 48), bool), odd_gt, "480") == (12000, 480 * 480)


@pytest.mark.parametrize("shape, size", [((800, 800), (480, 480)), ((37, 53), (480, 480)), ((48, 48), (40, 48))])
def test_resize_nearest_matches_pil_nearest(shape, size):
    mask = np.random.default_rng(0).random(shape) > 0.5
    pil = np.array(Image.fromarray(mask.astype(np.uint8) * 255).resize(size[::-1], Image.NEAREST)) > 0
    np.testing.assert_array_equal(resize_nearest(mask, size), pil)


def test_unknown_protocol_is_a_parameter_error():
    with pytest.raises(ParameterError, match="unknown protocol '512'"):
        intersection_union(np.zeros((2, 2)), np.zeros((2, 2)), "512")


def test_summarize_by_hand():
    # IoUs 1, 0.5, 0.7, 0.89, 0 (U = 0) -> mIoU 3.09 / 5; oIoU (10 + 5 + 7 + 89 + 0) / (10 + 10 + 10 + 100 + 0)
    out = summarize([(10, 10), (5, 10), (7, 10), (89, 100), (0, 0)])
    assert out["n"] == 5
    assert out["mIoU"] == pytest.approx(3.09 / 5, abs=1e-12)
    assert out["oIoU"] == pytest.approx(111 / 130, abs=1e-12)
    # IoU = X exactly counts for P@X
    assert [out[f"P@{t}"] for t in (0.5, 0.6, 0.7, 0.8, 0.9)] == [0.8, 0.6, 0.6, 0.4, 0.2]


def test_summarize_of_nothing_has_no_metrics():
    assert summarize([]) == {"n": 0, "mIoU": None, "oIoU": None, "P@0.5": None, "P@0.6": None, "P@0.7": None,
                             "P@0.8": None, "P@0.9": None}
    assert summarize([(0, 0)])["oIoU"] == 0.0


def test_summarize_by_category_splits_rows_by_name():
    out = summarize_by_category([("ship", 1, 2), ("airplane", 3, 4), ("ship", 0, 2)])
    assert list(out["categories"]) == ["airplane", "ship"]
    assert out["overall"]["n"] == 3 and out["overall"]["oIoU"] == 4 / 8
    assert out["categories"]["ship"]["mIoU"] == 0.25 and out["categories"]["ship"]["oIoU"] == 0.25
    assert out["categories"]["airplane"]["P@0.7"] == 1.0
