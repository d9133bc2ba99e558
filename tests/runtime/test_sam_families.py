"""Every SAM family's runtime path against the family's own PyTorch predictor, on real images.

Random weights (saved as the official checkpoint files) make large masks, so
the complement of each mask must agree as well as the mask.
"""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from pslg.export import sam_families
from pslg.runtime import backends, modelset, sam
from pslg.runtime.cli import main
from pslg.runtime.image import load_image
from pslg.runtime.pipeline import Pipeline
from tests import sam_support
from tests.runner_options import CPU

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")  # SAM2Transforms

#: per image: boxes and a foreground point inside each
PROMPTS = {
    "marina.png": (np.array([[820, 420, 1010, 560], [1200, 300, 1330, 420], [300, 700, 520, 860]], np.float64),
                   np.array([[[915, 490]], [[1265, 360]], [[410, 780]]], np.float64)),
    "osbs_029.png": (np.array([[150, 160, 230, 250], [20, 30, 140, 120], [250, 260, 390, 380]], np.float64),
                     np.array([[[190, 200]], [[80, 75]], [[320, 320]]], np.float64)),
}


def iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


def assert_same_masks(ours, ref, scores, ref_scores):
    for a, b in zip(ours, ref):
        assert iou(a, b) >= 0.99 and iou(~a, ~b) >= 0.99, (iou(a, b), iou(~a, ~b))
    np.testing.assert_allclose(scores, ref_scores, atol=2e-3)


@pytest.fixture(scope="module", params=list(PROMPTS))
def case(request, sam_family, data_dir):
    """One family on one image: our SamModel and the reference predictor, both with the image set."""
    model_type, models_dir, _, reference = sam_family
    path = data_dir / request.param
    image = load_image(path)
    models = modelset.open(models_dir)
    model = sam.SamModel(backends.open_runner(models.graph("sam_encoder"), CPU),
                         backends.open_runner(models.graph("sam_decoder"), CPU), models.sam)
    predictor = sam_families.model_type(model_type).family.load_module().predictor(reference)
    predictor.set_image(image)
    boxes, points = PROMPTS[request.param]
    return SimpleNamespace(models=models_dir, path=path, image=image, model=model, encoding=model.encode(image),
                           predictor=predictor, boxes=boxes, points=points)


def test_manifest_records_the_family(sam_family):
    model_type, models_dir, checkpoint, _ = sam_family
    meta = modelset.open(models_dir).sam
    kind = sam_families.model_type(model_type)
    assert (meta.family, meta.model_type) == (kind.family.name, model_type)
    assert meta.encoder_outputs == tuple(name for name, _, _ in kind.family.high_res)
    assert meta.provenance.weights["checkpoint"]["file"] == checkpoint.name and not meta.provenance.random_weights


def test_encoder_outputs_within_1e3(case):
    ref = sam_support.reference_features(case.predictor)
    assert set(ref) == set(case.encoding.features)
    for name, value in ref.items():
        assert np.abs(case.encoding.features[name] - value).max() <= 1e-3, name


@pytest.mark.parametrize("with_point", [False, True], ids=["box", "box+point"])
def test_one_prompt_equals_predict(case, with_point):
    for box, point in zip(case.boxes, case.points):
        kwargs = {"point_coords": point, "point_labels": np.ones(1)} if with_point else {}
        ref, ref_scores, _ = case.predictor.predict(box=box, multimask_output=False, **kwargs)
        out = np.empty(case.image.shape[:2], bool)
        score = case.model.segment(case.encoding, box, point[0] if with_point else None, out=out)
        assert_same_masks(out[None], ref[:1] > 0, [score], ref_scores[:1])


@pytest.mark.parametrize("with_point", [False, True], ids=["boxes", "boxes+points"])
def test_several_prompts_in_one_call_equal_batched_predict(case, with_point):
    points = case.points if with_point else None
    ref, ref_scores = sam_support.reference_batch(case.predictor, case.boxes, points)
    masks, scores = case.model.segment_many(case.encoding, case.boxes, points)
    assert masks.shape == (len(case.boxes),) + case.image.shape[:2]
    assert_same_masks(masks, ref, scores, ref_scores)


@pytest.mark.parametrize("case", ["marina.png"], indirect=True)
def test_pslg_segment_equals_predict(case, tmp_path):
    """The command line on the exported set: its mask and score equal the reference's."""
    box, point = case.boxes[0], case.points[0]
    ref, ref_scores, _ = case.predictor.predict(point_coords=point, point_labels=np.ones(1), box=box,
                                                multimask_output=False)
    assert main(["segment", str(case.path), "--models", str(case.models), "--box", ",".join(str(v) for v in box),
                 "--point", ",".join(str(v) for v in point[0]), "--out", str(tmp_path)]) == 0
    mask = load_image(tmp_path / "mask.png")[..., 0] > 127
    assert_same_masks(mask[None], ref[:1] > 0, [json.loads((tmp_path / "result.json").read_text())["sam_score"]],
                      ref_scores[:1])


@pytest.mark.parametrize("case", ["marina.png"], indirect=True)
def test_full_pipeline_runs_on_the_family(case):
    """CFPG and MBO downstream of every family: the pipeline's full mode gives a mask inside the image."""
    with Pipeline.open(case.models, CPU, warmup=False) as p:
        p.set_image(case.image)
        result = p.segment(box=case.boxes[0], mode="full")
    assert result.mask.shape == case.image.shape[:2] and result.mask.any() and result.sam_score is not None


def test_sam2_encodes_with_its_cpu_variant_and_verify_checks_it(sam_family, tmp_path):
    """SAM 2's encoder has a CPU variant with fused attention, which ONNX Runtime on the CPU loads; the portable
    graph (what TensorRT parses) has standard operators only; ``pslg verify`` compares the two. Other families,
    and a set exported with ``--no-cpu-variant``, have none."""
    import onnx

    from tests.conftest import EXPORT_FLAGS
    model_type, models_dir, _, _ = sam_family
    spec = modelset.open(models_dir).graph("sam_encoder")
    if not sam_families.model_type(model_type).family.cpu_encoder \
            or "--no-cpu-variant" in EXPORT_FLAGS.get(model_type, ()):
        assert spec.cpu_path is None and not (models_dir / "sam_encoder.cpu.onnx").exists()
        return
    ops = {p: {(n.domain, n.op_type) for n in onnx.load(str(p)).graph.node} for p in (spec.path, spec.cpu_path)}
    assert ("com.microsoft", "MultiHeadAttention") in ops[spec.cpu_path]
    assert {domain for domain, _ in ops[spec.path]} <= {"", "ai.onnx"}
    with backends.open_runner(spec, CPU) as runner:
        assert runner.path == spec.cpu_path
    report = tmp_path / "verify.json"
    assert main(["verify", "--models", str(models_dir), "--backend", "onnxruntime", "--device", "cpu",
                 "--json", str(report)]) == 0
    encoder = json.loads(report.read_text())["graphs"]["sam_encoder"]
    assert set(encoder) == {"image_embeddings", *modelset.open(models_dir).sam.encoder_outputs}
    assert 0 < max(v["max_abs_diff"] for v in encoder.values()) <= 1e-3
