"""Parity of the torch-free SAM stage with segment-anything's SamPredictor."""
import json

import numpy as np
import pytest
import torch

from pslg.runtime import backends, modelset, sam
from pslg.runtime.image import load_image
from pslg.runtime.pipeline import Pipeline
from tests.runner_options import CPU

segment_anything = pytest.importorskip("segment_anything")

BOXES = np.array([[820, 420, 1010, 560], [1200, 300, 1330, 420], [300, 700, 520, 860]], np.float64)
POINTS = np.array([[[915, 490]], [[1265, 360]], [[410, 780]]], np.float64)


def iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


@pytest.fixture(scope="module")
def marina(data_dir):
    return load_image(data_dir / "marina.png")


@pytest.fixture(scope="module")
def predictor(sam_tiny, marina):
    p = segment_anything.SamPredictor(sam_tiny[1])
    p.set_image(marina)
    return p


@pytest.fixture(scope="module")
def runtime_parts(sam_tiny, marina):
    models = modelset.open(sam_tiny[0])
    encoder = sam.SamEncoder(backends.open_runner(models.graph("sam_encoder"), CPU), models.sam)
    decoder = sam.SamDecoder(backends.open_runner(models.graph("sam_decoder"), CPU))
    embedding, transform = encoder(marina)
    return decoder, embedding, transform


def runtime_masks(parts, boxes=None, points=None):
    decoder, embedding, transform = parts
    coords, labels = sam.encode_prompts(transform, boxes=boxes, points=points)
    low_res, scores = decoder(embedding, coords, labels)
    return np.stack([sam.upscale_logits(m, transform) > 0 for m in low_res[:, 0]]), low_res[:, 0].copy()


def test_preprocessing_equals_sampredictor(sam_tiny, marina):
    model = sam_tiny[1]
    transformed = segment_anything.utils.transforms.ResizeLongestSide(1024).apply_image(marina)
    ref = model.preprocess(torch.as_tensor(transformed).permute(2, 0, 1)[None].float()).numpy()
    ours, transform = sam.preprocess(marina, modelset.open(sam_tiny[0]).sam)
    assert transform.input_size == transformed.shape[:2]
    np.testing.assert_array_equal(ours, ref)


def test_embedding_matches_predictor(predictor, runtime_parts):
    assert np.abs(runtime_parts[1] - predictor.features.numpy()).max() <= 1e-3


@pytest.mark.parametrize("with_point", [False, True], ids=["box", "box+point"])
def test_masks_match_predictor(predictor, runtime_parts, with_point):
    for i, box in enumerate(BOXES):
        kwargs = {"point_coords": POINTS[i], "point_labels": np.ones(1)} if with_point else {}
        ref, _, _ = predictor.predict(box=box, multimask_output=False, **kwargs)
        ours, _ = runtime_masks(runtime_parts, boxes=box[None], points=POINTS[i:i + 1] if with_point else None)
        assert ref[0].any()
        assert iou(ours[0], ref[0]) >= 0.99


def test_multi_box_matches_predictor_batch(predictor, runtime_parts):
    boxes = torch.as_tensor(predictor.transform.apply_boxes(BOXES, predictor.original_size), dtype=torch.float)
    ref, _, _ = predictor.predict_torch(None, None, boxes=boxes, multimask_output=False)
    ours, _ = runtime_masks(runtime_parts, boxes=BOXES)
    for a, b in zip(ours, ref[:, 0].numpy()):
        assert iou(a, b) >= 0.99


def test_n_prompts_in_one_call_equal_one_at_a_time(runtime_parts):
    together, low_together = runtime_masks(runtime_parts, boxes=BOXES, points=POINTS)
    for i in range(len(BOXES)):
        alone, low_alone = runtime_masks(runtime_parts, boxes=BOXES[i:i + 1], points=POINTS[i:i + 1])
        np.testing.assert_allclose(low_together[i], low_alone[0], atol=1e-5)
        assert iou(together[i], alone[0]) >= 0.999


def test_upscaling_matches_postprocess_masks(sam_tiny):
    model = sam_tiny[1]
    low = np.random.default_rng(0).standard_normal((1, 1, 256, 256)).astype(np.float32)
    for original in [(1080, 1920), (400, 400), (300, 1000)]:
        transform = sam.SamTransform.for_image(*original, 1024)
        ref = model.postprocess_masks(torch.from_numpy(low), transform.input_size, original)[0, 0].numpy()
        np.testing.assert_allclose(sam.upscale_logits(low[0, 0], transform), ref, atol=5e-4)


def test_pipeline_segment_equals_parts(sam_tiny, marina, runtime_parts):
    with Pipeline.open(sam_tiny[0], CPU) as p:
        p.set_image(marina)
        out = np.zeros(marina.shape[:2], np.uint8)
        result = p.segment(box=BOXES[0], point=POINTS[0, 0], mode="box+point", out=out)
    ours, _ = runtime_masks(runtime_parts, boxes=BOXES[:1], points=POINTS[:1])
    np.testing.assert_array_equal(out.astype(bool), ours[0])
    assert result.mask.base is out or result.mask is out


def test_multimask_keeps_the_best_of_the_three_masks(predictor, sam_tiny, marina, data_dir, tmp_path):
    box = BOXES[1]
    masks, scores, _ = predictor.predict(box=box, multimask_output=True)
    best = int(np.argmax(scores))
    with Pipeline.open(sam_tiny[0], CPU) as p:
        p.set_image(marina)
        result = p.segment(box=box, mode="box", multimask=True)
        single = p.segment(box=box, mode="box")
    assert result.sam_score == pytest.approx(float(scores[best]), abs=1e-4) != single.sam_score
    assert iou(result.mask, masks[best]) >= 0.99
    from pslg.runtime.cli import main
    assert main(["segment", str(data_dir / "marina.png"), "--models", str(sam_tiny[0]), "--multimask",
                 "--box", ",".join(str(v) for v in box), "--out", str(tmp_path)]) == 0
    written = json.loads((tmp_path / "result.json").read_text())
    assert written["sam_score"] == pytest.approx(result.sam_score, abs=1e-6)
