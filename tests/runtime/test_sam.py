"""The torch-free SAM stage: each family's pre/post-processing and mask choice against its predictor's code.

Mask and score parity of whole models per family is in test_sam_families.py.
"""
import json

import numpy as np
import pytest
import torch

from pslg.runtime import backends, modelset, sam
from pslg.runtime.errors import ParameterError, PointError
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
    features, transform = encoder(marina)
    return decoder, features, transform


def runtime_masks(parts, boxes=None, points=None):
    decoder, features, transform = parts
    coords, labels = sam.encode_prompts(transform, boxes=boxes, points=points)
    low_res, scores = decoder(features, coords, labels)
    return np.stack([sam.upscale_logits(m, transform) > 0 for m in low_res[:, 0]]), low_res[:, 0].copy()


def test_preprocessing_equals_sampredictor(sam_tiny, marina):
    model = sam_tiny[1]
    transformed = segment_anything.utils.transforms.ResizeLongestSide(1024).apply_image(marina)
    ref = model.preprocess(torch.as_tensor(transformed).permute(2, 0, 1)[None].float()).numpy()
    ours, transform = sam.preprocess(marina, modelset.open(sam_tiny[0]).sam)
    assert transform.input_size == transformed.shape[:2]
    np.testing.assert_array_equal(ours, ref)


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


def square_meta(**changes):
    """SAM 2's rules as its exporter records them (the SamComponent of a sam2 set, without graphs)."""
    from dataclasses import replace

    from pslg.runtime.modelset import Provenance, SamComponent
    meta = SamComponent("sam2", "sam2.1_hiera_t", 1024, 0.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
                        Provenance({"random": True, "seed": 0}, {}, {}, "", "", 17), resize="square",
                        pixel_divisor=255.0, prompt_layout="box_then_points_padded", mask_choice="stability",
                        stability_delta=0.05, stability_threshold=0.98,
                        encoder_outputs=("high_res_feats_0", "high_res_feats_1"))
    return replace(meta, **changes)


SAM2_TRANSFORMS_WARNING = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")


@pytest.mark.parametrize("resize", ["longest_side", "square"])
def test_preprocessing_on_threads_gives_the_same_bits(sam_tiny, marina, resize):
    """The encoder's three channel threads change nothing: the same array as one thread, for either rule."""
    from concurrent.futures import ThreadPoolExecutor
    meta = modelset.open(sam_tiny[0]).sam if resize == "longest_side" else square_meta()
    alone, _ = sam.preprocess(marina, meta)
    with ThreadPoolExecutor(3) as pool:
        threaded, _ = sam.preprocess(marina, meta, out=np.full_like(alone, np.nan), pool=pool)
    np.testing.assert_array_equal(threaded, alone)


class _Outputs:
    """A runner that returns zero features of a SAM 2 encoder (what the encoder does around its graph is tested)."""

    def run(self, feeds):
        return {"image_embeddings": np.zeros((1, 256, 64, 64), np.float32),
                "high_res_feats_0": np.zeros((1, 32, 256, 256), np.float32),
                "high_res_feats_1": np.zeros((1, 64, 128, 128), np.float32)}


def _encode_in_child(encoder, image, results):
    _, transform = encoder(image)
    results.put(transform.original_size)


def test_encoder_preprocesses_in_a_forked_child(marina):
    """A worker forked after the parent encoded gets threads of its own (the parent's did not come along)."""
    import multiprocessing
    encoder = sam.SamEncoder(_Outputs(), square_meta())
    encoder(marina)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_encode_in_child, args=(encoder, marina, results))
    child.start()
    child.join(120)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0 and results.get(timeout=5) == marina.shape[:2]


@SAM2_TRANSFORMS_WARNING
@pytest.mark.parametrize("name", ["marina.png", "osbs_029.png", "highway.jpeg"])
def test_square_preprocessing_equals_sam2_transforms(data_dir, name):
    """Shrinking (marina, highway) and enlarging (osbs_029): Pillow's float filter is torchvision's antialiased one."""
    transforms = pytest.importorskip("sam2.utils.transforms")
    image = load_image(data_dir / name)
    ref = transforms.SAM2Transforms(1024, 0.0)(image).numpy()
    ours, transform = sam.preprocess(image, square_meta())
    assert transform.input_size == (1024, 1024) and transform.original_size == image.shape[:2]
    assert np.abs(ours[0] - ref).max() <= 2e-6


@SAM2_TRANSFORMS_WARNING
def test_square_coordinates_and_prompt_layout_equal_sam2_predictor():
    transforms = pytest.importorskip("sam2.utils.transforms")
    transform = sam.SamTransform.for_image(1080, 1920, 1024, "square")
    box, point = np.array([[820.5, 420.0, 1010.0, 560.25]]), np.array([[[915.0, 490.0]]])
    coords, labels = sam.encode_prompts(transform, boxes=box, points=point, layout="box_then_points_padded")
    t = transforms.SAM2Transforms(1024, 0.0)
    ref_box = t.transform_boxes(torch.as_tensor(box, dtype=torch.float), True, (1080, 1920))
    ref_point = t.transform_coords(torch.as_tensor(point, dtype=torch.float), True, (1080, 1920))
    np.testing.assert_array_equal(coords[0, :2], ref_box[0].numpy())
    np.testing.assert_array_equal(coords[0, 2], ref_point[0, 0].numpy())
    np.testing.assert_array_equal(coords[0, 3], [0, 0])
    np.testing.assert_array_equal(labels, [[sam.BOX_TL, sam.BOX_BR, sam.POSITIVE, sam.PAD]])
    coords, labels = sam.encode_prompts(transform, boxes=box, layout="box_then_points_padded")
    np.testing.assert_array_equal(labels, [[sam.BOX_TL, sam.BOX_BR, sam.PAD]])
    _, labels = sam.encode_prompts(transform, boxes=box, points=point)
    np.testing.assert_array_equal(labels, [[sam.POSITIVE, sam.BOX_TL, sam.BOX_BR]])


def test_square_upscaling_equals_interpolate():
    """SAM 2 resizes the 256 x 256 logits straight to the original size, larger or smaller (OpenCV's float
    bilinear weights differ from torch's by up to ~1e-4, as in the SAM test above)."""
    low = np.random.default_rng(1).standard_normal((1, 1, 256, 256)).astype(np.float32)
    for original in [(1080, 1920), (400, 400), (200, 150)]:
        ref = torch.nn.functional.interpolate(torch.from_numpy(low), original, mode="bilinear",
                                              align_corners=False)[0, 0].numpy()
        transform = sam.SamTransform.for_image(*original, 1024, "square")
        np.testing.assert_allclose(sam.upscale_logits(low[0, 0], transform), ref, atol=5e-4)


def test_stability_rule_equals_sam2_mask_decoder():
    """Token 0 where its logits are stable, else the best of tokens 1..3, as _dynamic_multimask_via_stability."""
    decoder_module = pytest.importorskip("sam2.modeling.sam.mask_decoder")
    rng = np.random.default_rng(2)
    low = rng.standard_normal((6, 4, 256, 256)).astype(np.float32) * 0.02
    low[:3, 0] += np.where(rng.random((3, 256, 256)) < 0.5, 5.0, -5.0)  # far from 0: stable
    scores = rng.random((6, 4)).astype(np.float32)
    ref = decoder_module.MaskDecoder.__new__(decoder_module.MaskDecoder)
    ref.dynamic_multimask_stability_delta, ref.dynamic_multimask_stability_thresh = 0.05, 0.98
    ref_masks, ref_scores = ref._dynamic_multimask_via_stability(torch.from_numpy(low), torch.from_numpy(scores))
    keep = sam.choose_masks(low, scores, False, square_meta())
    assert list(keep[:3]) == [0, 0, 0] and all(keep[3:] >= 1)
    np.testing.assert_array_equal(low[np.arange(6), keep], ref_masks[:, 0].numpy())
    np.testing.assert_array_equal(scores[np.arange(6), keep], ref_scores[:, 0].numpy())
    assert list(sam.choose_masks(low, scores, False, square_meta(mask_choice="first_token"))) == [0] * 6
    np.testing.assert_array_equal(sam.choose_masks(low, scores, True, square_meta()),
                                  1 + np.argmax(scores[:, 1:], axis=1))


def test_decoder_feeds_carry_the_family_extras():
    features = {"image_embeddings": np.zeros((1, 256, 64, 64), np.float32),
                "high_res_feats_0": np.ones((1, 32, 256, 256), np.float32),
                "high_res_feats_1": np.ones((1, 64, 128, 128), np.float32)}
    coords, labels = np.zeros((2, 3, 2), np.float32), np.ones((2, 3), np.float32)
    feeds = sam.decoder_feeds(features, coords, labels, meta=square_meta())
    assert list(feeds) == list(sam.DECODER_INPUTS) + ["high_res_feats_0", "high_res_feats_1"]
    assert feeds["mask_input"].shape == (2, 1, 256, 256) and feeds["has_mask_input"][0] == 0
    assert list(sam.decoder_feeds(features, coords, labels)) == list(sam.DECODER_INPUTS)


def test_sam_model_refuses_graphs_of_another_family(sam_tiny):
    """A sam2 component on a SAM 1 decoder graph (no high-resolution inputs) is a named ManifestError."""
    from pslg.runtime.errors import ManifestError
    models = modelset.open(sam_tiny[0])
    runners = [backends.open_runner(models.graph(g), CPU) for g in ("sam_encoder", "sam_decoder")]
    with pytest.raises(ManifestError, match="high_res_feats_0"):
        sam.SamModel(*runners, square_meta())


def test_segment_many_refuses_bad_prompts(sam_tiny, marina):
    from pslg.runtime.errors import BoxError
    models = modelset.open(sam_tiny[0])
    model = sam.SamModel(*(backends.open_runner(models.graph(g), CPU) for g in ("sam_encoder", "sam_decoder")),
                         models.sam)
    encoding = model.encode(marina)
    with pytest.raises(BoxError, match=r"\[N, 4\]"):
        model.segment_many(encoding, BOXES[:, :3])
    with pytest.raises(PointError, match="points must be"):
        model.segment_many(encoding, BOXES, POINTS[:2])
    with pytest.raises(ParameterError, match="out must be"):
        model.segment_many(encoding, BOXES, out=np.zeros((2,) + marina.shape[:2], bool))
    masks, scores = model.segment_many(encoding, BOXES, POINTS)
    assert masks.shape == (3,) + marina.shape[:2] and scores.shape == (3,)
