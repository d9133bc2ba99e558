"""The SAM family table: checkpoints recognised by their keys, refused by name, graphs ready for TensorRT."""
import re

import onnx
import pytest
import torch

from pslg.export import sam_families
from pslg.export.sam import load_sam
from pslg.runtime import modelset
from pslg.runtime.cli import main
from pslg.runtime.errors import CheckpointError, ParameterError

pytest.importorskip("sam2")
pytest.importorskip("mobile_sam")


def built_state(model_type):
    """A model type's state dict as its family builds it (shapes only for the large ViTs)."""
    kind = sam_families.model_type(model_type)
    if kind.family.name == "sam":
        with torch.device("meta"):
            return kind.family.load_module().build(model_type).state_dict()
    return kind.family.load_module().build(model_type).state_dict()


@pytest.mark.parametrize("model_type", list(sam_families.MODEL_TYPES))
def test_every_model_type_is_recognised_by_its_keys(model_type):
    """Each family's own configuration builds the keys the table identifies it by: SAM 2.0 and 2.1, t/s/b+/l."""
    state = built_state(model_type)
    assert sam_families.identify(state, "file.pt", model_type).name == model_type
    others = [t for t in sam_families.MODEL_TYPES if t != model_type]
    for other in others[:: max(1, len(others) // 4)]:
        with pytest.raises(CheckpointError, match=re.escape(f"not {other}: pass --model-type {model_type}") + "$"):
            sam_families.identify(state, "file.pt", other)


def test_sam_2_and_2_1_are_told_apart():
    state = built_state("sam2_hiera_t")
    with pytest.raises(CheckpointError, match=r"file.pt is a SAM 2 Hiera-T checkpoint, not sam2.1_hiera_t: "
                                              r"pass --model-type sam2_hiera_t"):
        sam_families.identify(state, "file.pt", "sam2.1_hiera_t")
    assert {"no_obj_embed_spatial", "obj_ptr_tpos_proj.weight"} <= set(built_state("sam2.1_hiera_t")) - set(state)


def test_unknown_checkpoints_are_named():
    with pytest.raises(CheckpointError, match=r"not a checkpoint of any SAM family .*\(first keys: backbone.0"):
        sam_families.identify({"backbone.0.weight": torch.zeros(1)}, "x.pth", "mobile_sam")
    state = {"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(80, 3, 7, 7),
             "image_encoder.trunk.blocks.0.norm1.weight": torch.zeros(80), "no_obj_embed_spatial": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"SAM 2.x \(Hiera trunk, version 2.1, embed dim 80, 1 blocks\) "
                                              r"checkpoint, which matches no known model type"):
        sam_families.identify(state, "x.pt", "sam2.1_hiera_t")
    with pytest.raises(ParameterError, match="unknown SAM model type 'vit_t'"):
        sam_families.model_type("vit_t")


def test_checkpoint_of_another_family_is_refused_by_the_cli(sam_family, tmp_path, capsys):
    """The family fixture's official-format file under another family's type: named error, nothing written."""
    model_type, _, checkpoint, _ = sam_family
    title = sam_families.model_type(model_type).title
    other = "mobile_sam" if model_type != "mobile_sam" else "sam2.1_hiera_s"
    code = main(["export", "sam", "--model-type", other, "--checkpoint", str(checkpoint), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == CheckpointError.code and "Traceback" not in err
    assert f"{checkpoint.name} is a {title} checkpoint, not {other}: pass --model-type {model_type}" in err
    assert not (tmp_path / "manifest.json").exists()


def test_decoder_checkpoint_replaces_each_familys_decoder(sam_family, tmp_path):
    model_type, _, checkpoint, _ = sam_family
    decoder = sam_families.model_type(model_type).family.decoder
    tuned, _ = load_sam(model_type, random_weights=True, seed=9)
    path = tmp_path / "decoder.pth"
    torch.save({f"{decoder}.{k}": v for k, v in getattr(tuned, decoder).state_dict().items()}, path)
    loaded, record = load_sam(model_type, checkpoint=checkpoint, decoder_checkpoint=path)
    for k, v in getattr(tuned, decoder).state_dict().items():
        assert torch.equal(getattr(loaded, decoder).state_dict()[k], v)
    assert record["decoder_checkpoint"]["file"] == "decoder.pth"


def test_random_weights_are_seeded():
    a, record = load_sam("sam2.1_hiera_t", random_weights=True, seed=1)
    b, _ = load_sam("sam2.1_hiera_t", random_weights=True, seed=1)
    c, _ = load_sam("sam2.1_hiera_t", random_weights=True, seed=2)
    key = "sam_mask_decoder.iou_token.weight"
    assert torch.equal(a.state_dict()[key], b.state_dict()[key]) and not torch.equal(a.state_dict()[key],
                                                                                      c.state_dict()[key])
    assert record == {"random": True, "seed": 1}


def test_tensorrt_keeps_each_familys_normalisations_in_fp32(sam_family):
    """``pslg build``'s fp32 rule (by ONNX op) on every family's graphs: each LayerNorm, fused or decomposed
    (SAM 2's and TinyViT's LayerNorm2d: ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div), and each Softmax;
    its profiles come from the manifest's dynamic axes, the high-resolution inputs fixed."""
    from pslg.export import tensorrt as trt_build
    models = modelset.open(sam_family[1])
    for graph in ("sam_encoder", "sam_decoder"):
        model = onnx.load(str(models.graph(graph).path))
        keep = set(trt_build.fp32_nodes(model))
        producer = {out: n for n in model.graph.node for out in n.output}
        must = [n for n in model.graph.node if n.op_type in ("LayerNormalization", "Softmax", "ReduceMean", "Sqrt")]
        for sqrt in (n for n in model.graph.node if n.op_type == "Sqrt"):
            eps_add = producer.get(sqrt.input[0])
            mean = producer.get(eps_add.input[0]) if eps_add is not None and eps_add.op_type == "Add" else None
            if mean is None or mean.op_type != "ReduceMean":
                continue  # not a LayerNorm's: attention's 1/sqrt(head dim)
            consumers = [n for n in model.graph.node if sqrt.output[0] in n.input]
            must += [eps_add] + [n for n in consumers if n.op_type == "Div"]
        assert must and {n.name for n in must} <= keep, graph
    decoder = models.graph("sam_decoder")
    profile = trt_build.profile_ranges(decoder, trt_build.DEFAULT_LIMITS)
    inputs = {t.name: t for t in decoder.inputs}
    for name in models.sam.encoder_outputs:
        assert profile[name].min == profile[name].max == inputs[name].shape
    assert profile["point_coords"].max == (trt_build.DEFAULT_LIMITS["prompts"], trt_build.DEFAULT_LIMITS["points"], 2)


def test_graph_shapes_come_from_the_table():
    assert [t.name for t in sam_families.decoder_inputs(sam_families.SAM2)] == [
        "image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "high_res_feats_0",
        "high_res_feats_1"]
    assert sam_families.encoder_outputs(sam_families.SAM2)[1].shape == (1, 32, 256, 256)
    assert [t.name for t in sam_families.encoder_outputs(sam_families.MOBILE_SAM)] == ["image_embeddings"]
