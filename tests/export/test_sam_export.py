"""SAM export: checkpoints, the manifest it writes, and the errors it gives."""
import json

import numpy as np
import pytest
import torch

from pslg.export.sam import export_sam, load_sam
from pslg.runtime import modelset
from pslg.runtime.cli import main
from pslg.runtime.errors import CheckpointError, ParameterError
from tests.runner_options import CPU

pytest.importorskip("segment_anything")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A vit_test state dict saved as an official SAM .pth is (plain state dict)."""
    model, _ = load_sam("vit_test", random_weights=True, seed=3)
    path = tmp_path_factory.mktemp("ckpt") / "sam_vit_test.pth"
    torch.save(model.state_dict(), path)
    return path, model


def test_manifest_records_random_weights_and_signatures(sam_tiny):
    manifest = json.loads((sam_tiny[0] / "manifest.json").read_text())
    meta = modelset.open(sam_tiny[0]).sam
    assert meta.provenance.random_weights and meta.provenance.weights == {"random": True, "seed": 0}
    assert meta.provenance.opset >= 17 and meta.family == "sam" and meta.image_size == 1024
    assert meta.provenance.exporter.endswith(" + onnxslim")
    dec = manifest["graphs"]["sam_decoder"]
    assert [i["name"] for i in dec["inputs"]] == ["image_embeddings", "point_coords", "point_labels",
                                                  "mask_input", "has_mask_input"]
    assert dec["inputs"][1]["shape"] == ["prompts", "points", 2]
    assert dec["outputs"][0]["shape"] == ["prompts", 4, 256, 256]
    assert all(d <= 1e-3 for g in meta.provenance.parity.values() for d in g.values())
    assert modelset.sha256(sam_tiny[0] / "sam_encoder.onnx") == manifest["graphs"]["sam_encoder"]["sha256"]


def test_random_weights_warn_when_opened(sam_tiny, tmp_path, caplog):
    import shutil
    copy = shutil.copytree(sam_tiny[0], tmp_path / "copy")
    models = modelset.open(copy)
    assert "RANDOM weights" in caplog.text
    assert models.random_weights and models.warnings


def test_checkpoint_loads_and_is_recorded(tiny_checkpoint, tmp_path):
    path, model = tiny_checkpoint
    loaded, record = load_sam("vit_test", checkpoint=path)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    assert record["checkpoint"]["file"] == "sam_vit_test.pth" and len(record["checkpoint"]["sha256"]) == 64


def test_decoder_only_checkpoint_replaces_the_decoder(tiny_checkpoint, tmp_path):
    path, model = tiny_checkpoint
    tuned, _ = load_sam("vit_test", random_weights=True, seed=9)
    dec_path = tmp_path / "decoder.pth"
    torch.save({"mask_decoder." + k: v for k, v in tuned.mask_decoder.state_dict().items()}, dec_path)
    loaded, record = load_sam("vit_test", checkpoint=path, decoder_checkpoint=dec_path)
    sd = loaded.state_dict()
    assert torch.equal(sd["mask_decoder.iou_token.weight"], tuned.mask_decoder.iou_token.weight)
    assert torch.equal(sd["image_encoder.pos_embed"], model.image_encoder.pos_embed)
    assert record["decoder_checkpoint"]["file"] == "decoder.pth"


def test_wrapped_fine_tuned_checkpoint_loads(tiny_checkpoint, tmp_path):
    path, model = tiny_checkpoint
    wrapped = tmp_path / "finetuned.pth"
    torch.save({"model": {"module." + k: v for k, v in model.state_dict().items()}, "epoch": 3}, wrapped)
    loaded, _ = load_sam("vit_test", checkpoint=wrapped)
    assert torch.equal(loaded.mask_decoder.iou_token.weight, model.mask_decoder.iou_token.weight)


@pytest.mark.parametrize("case", ["missing", "corrupt", "not_sam", "wrong_type", "missing_key", "bad_decoder"])
def test_bad_checkpoints_are_named(case, tiny_checkpoint, tmp_path):
    path, model = tiny_checkpoint
    model_type, decoder = "vit_test", None
    if case == "missing":
        path = tmp_path / "nope.pth"
    elif case == "corrupt":
        path = tmp_path / "corrupt.pth"
        path.write_bytes(tiny_checkpoint[0].read_bytes()[:5000])
    elif case == "not_sam":
        path = tmp_path / "other.pth"
        torch.save({"backbone.0.body.conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    elif case == "wrong_type":
        model_type = "vit_b"
    elif case == "missing_key":
        state = dict(model.state_dict())
        del state["mask_decoder.iou_token.weight"]
        path = tmp_path / "partial.pth"
        torch.save(state, path)
    elif case == "bad_decoder":
        decoder = tmp_path / "dec.pth"
        torch.save({"mask_decoder.nonsense": torch.zeros(3)}, decoder)
    with pytest.raises(CheckpointError) as err:
        load_sam(model_type, checkpoint=path, decoder_checkpoint=decoder)
    expected = {"missing": "does not exist", "corrupt": "not a loadable",
                "not_sam": "not a checkpoint of any SAM family",
                "wrong_type": "is a SAM test configuration (vit_test) checkpoint, not vit_b",
                "missing_key": "mask_decoder.iou_token.weight",
                "bad_decoder": "mask_decoder.nonsense"[len("mask_decoder."):]}[case]
    assert expected in str(err.value)


def test_random_weights_only_when_asked():
    with pytest.raises(ParameterError):
        load_sam("vit_b")


def test_cli_bad_checkpoint_exits_with_code(tmp_path, capsys):
    code = main(["export", "sam", "--model-type", "vit_b", "--checkpoint", str(tmp_path / "x.pth"),
                 "--out", str(tmp_path / "set")])
    err = capsys.readouterr().err
    assert code == CheckpointError.code and "does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "set" / "manifest.json").exists()


@pytest.mark.slow
def test_vit_b_export_matches_pytorch(tmp_path, data_dir):
    """The real ViT-B architecture (random weights): embeddings within 1e-3, masks IoU >= 0.99.

    Exported without onnxslim, which takes half of this export; the slim pass is tested on ``vit_test``, the
    same architecture smaller (``sam_tiny``), and every export checks its final graph against PyTorch."""
    from segment_anything import SamPredictor

    from pslg.runtime.image import load_image
    from pslg.runtime.pipeline import Pipeline
    assert export_sam(tmp_path, "vit_b", random_weights=True, seed=1, simplify=False).sam.model_type == "vit_b"
    model, _ = load_sam("vit_b", random_weights=True, seed=1)
    image = load_image(data_dir / "osbs_029.png")
    predictor = SamPredictor(model)
    predictor.set_image(image)
    box = np.array([150.0, 160.0, 230.0, 250.0])
    ref, _, _ = predictor.predict(box=box, multimask_output=False)
    with Pipeline.open(tmp_path, CPU) as p:
        p.set_image(image)
        ours = p.segment(box=box, mode="box").mask
        assert np.abs(p._per_image["sam_encoder"][1].embedding - predictor.features.numpy()).max() <= 1e-3
    union = np.logical_or(ours, ref[0]).sum()
    assert union and np.logical_and(ours, ref[0]).sum() / union >= 0.99


def test_a_failed_export_leaves_the_model_set_as_it_was(sam_tiny, tmp_path, monkeypatch):
    """The decoder's parity check fails after both graphs were exported: nothing lands, the old set still opens."""
    import shutil

    from pslg.export import sam as sam_export
    from pslg.runtime.errors import ParityError
    copy = shutil.copytree(sam_tiny[0], tmp_path / "set")
    before = {p.name: modelset.sha256(p) for p in copy.iterdir()}
    monkeypatch.setattr(sam_export, "TOLERANCES", dict(sam_export.TOLERANCES, iou_predictions=0.0))
    with pytest.raises(ParityError, match="iou_predictions"):
        export_sam(copy, "vit_test", random_weights=True, seed=5)
    assert {p.name: modelset.sha256(p) for p in copy.iterdir()} == before
    assert modelset.open(copy).sam.provenance.weights == {"random": True, "seed": 0}
