"""The SAM model types ``pslg export sam`` takes, in one table: family, configuration, graph shapes, checkpoint keys.

Model types are named as their own projects name them: ``vit_b/l/h``
(segment-anything), ``mobile_sam`` (MobileSAM's TinyViT), ``sam2_hiera_*`` and
``sam2.1_hiera_*`` (Meta's ``sam2``). ``vit_test`` is a small configuration
of segment-anything's classes for tests; no official weights exist for it.

Each family is one module beside this one (``sam``, ``mobile_sam``,
``sam2``) with ``build(model_type)``, ``graphs(model)`` (encoder and decoder
modules), ``rules(model)`` (the SamComponent fields of its pre/post-processing)
and ``predictor(model)`` (the family's own PyTorch predictor, the parity and
latency reference). Which family a checkpoint belongs to is read from its keys
(:func:`identify`), so a file of another family is refused by name.
"""
import importlib
from dataclasses import dataclass
from typing import Optional, Tuple

from pslg.runtime.errors import CheckpointError, ParameterError
from pslg.runtime.specs import TensorSpec


@dataclass(frozen=True)
class Family:
    """One SAM family (``name`` is also its export module's): reference packages, decoder module name, extra
    encoder outputs, and whether its encoder gets a CPU variant with fused attention."""

    name: str
    packages: Tuple[str, ...]
    decoder: str
    #: encoder outputs besides the 256 x 64 x 64 embedding that the decoder takes: (name, channels, side)
    high_res: Tuple[Tuple[str, int, int], ...] = ()
    #: the encoder's attention is ``F.scaled_dot_product_attention`` (Hiera), which the CPU variant fuses
    cpu_encoder: bool = False

    def load_module(self):
        return importlib.import_module(f"pslg.export.{self.name}")


@dataclass(frozen=True)
class ModelType:
    """One model type: its family, its configuration in that family, and what identifies its checkpoints."""

    name: str
    family: Family
    title: str
    config: object
    signature: tuple


SAM = Family("sam", ("segment-anything",), "mask_decoder")
MOBILE_SAM = Family("mobile_sam", ("mobilesam-mirror", "timm"), "mask_decoder")
SAM2 = Family("sam2", ("sam2",), "sam_mask_decoder", (("high_res_feats_0", 32, 256), ("high_res_feats_1", 64, 128)),
              cpu_encoder=True)

#: ViT configurations (embed dim, depth, heads, global-attention blocks), keyed by (embed dim, depth)
_VIT = {"vit_b": (768, 12, 12, (2, 5, 8, 11)), "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
        "vit_h": (1280, 32, 16, (7, 15, 23, 31)), "vit_test": (64, 2, 2, (1,))}
#: Hiera sizes: (embed dim, blocks)
_HIERA = {"t": (96, 12), "s": (96, 16), "b+": (112, 24), "l": (144, 48)}

MODEL_TYPES = {}
for _name, _cfg in _VIT.items():
    MODEL_TYPES[_name] = ModelType(_name, SAM, f"SAM ViT-{_name[4:].upper()}" if _name != "vit_test"
                                   else "SAM test configuration (vit_test)", _cfg, ("vit", _cfg[0], _cfg[1]))
MODEL_TYPES["mobile_sam"] = ModelType("mobile_sam", MOBILE_SAM, "MobileSAM (TinyViT-5M)", None, ("tinyvit", 32))
for _version, _prefix in (("2", "sam2"), ("2.1", "sam2.1")):
    for _size, (_dim, _blocks) in _HIERA.items():
        _name = f"{_prefix}_hiera_{_size}"
        MODEL_TYPES[_name] = ModelType(_name, SAM2, f"SAM {_version} Hiera-{_size.upper()}",
                                       f"configs/{_prefix}/{_name}.yaml", ("hiera", _version, _dim, _blocks))
_BY_SIGNATURE = {t.signature: t for t in MODEL_TYPES.values()}


def model_type(name: str) -> ModelType:
    """The table entry of a model type name, or ParameterError listing the known ones."""
    if name not in MODEL_TYPES:
        raise ParameterError(f"unknown SAM model type {name!r}; choose one of {', '.join(MODEL_TYPES)}")
    return MODEL_TYPES[name]


def _blocks(state, prefix):
    return len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})


def signature(state) -> Optional[tuple]:
    """What identifies a state dict's model type (family and size), read from its keys and shapes; None if no SAM."""
    if "image_encoder.trunk.patch_embed.proj.weight" in state:
        version = "2.1" if "no_obj_embed_spatial" in state else "2"  # SAM 2.1 added it (and obj_ptr_tpos_proj)
        dim = state["image_encoder.trunk.patch_embed.proj.weight"].shape[0]
        return "hiera", version, dim, _blocks(state, "image_encoder.trunk.blocks.")
    if "image_encoder.patch_embed.seq.0.c.weight" in state:
        return "tinyvit", state["image_encoder.patch_embed.seq.0.c.weight"].shape[0]
    if "image_encoder.pos_embed" in state:
        return "vit", state["image_encoder.pos_embed"].shape[-1], _blocks(state, "image_encoder.blocks.")
    return None


_ENCODER_NAMES = {"hiera": "SAM 2.x (Hiera trunk, version {1}, embed dim {2}, {3} blocks)",
                  "tinyvit": "MobileSAM-style (TinyViT, stem width {1})",
                  "vit": "SAM ViT (embed dim {1}, {2} blocks)"}


def identify(state, file_name, wanted: str) -> ModelType:
    """The model type of a checkpoint's state dict; CheckpointError unless it is ``wanted``, naming what it is."""
    sig = signature(state)
    if sig is None:
        raise CheckpointError(
            f"{file_name} is not a checkpoint of any SAM family pslg knows (SAM, MobileSAM, SAM 2/2.1): it has "
            f"none of 'image_encoder.pos_embed', 'image_encoder.patch_embed.seq.0.c.weight', "
            f"'image_encoder.trunk.patch_embed.proj.weight' (first keys: {', '.join(list(state)[:3])})")
    found = _BY_SIGNATURE.get(sig)
    if found is None:
        raise CheckpointError(f"{file_name} is a {_ENCODER_NAMES[sig[0]].format(*sig)} checkpoint, which matches "
                              f"no known model type ({', '.join(MODEL_TYPES)})")
    if found.name != wanted:
        raise CheckpointError(f"{file_name} is a {found.title} checkpoint, not {wanted}: "
                              f"pass --model-type {found.name}")
    return found


EMBEDDING = TensorSpec("image_embeddings", "float32", (1, 256, 64, 64))
PROMPTS = (
    TensorSpec("point_coords", "float32", ("prompts", "points", 2)),
    TensorSpec("point_labels", "float32", ("prompts", "points")),
    TensorSpec("mask_input", "float32", ("prompts", 1, 256, 256)),
    TensorSpec("has_mask_input", "float32", (1,)),
)
DECODER_OUTPUTS = (
    TensorSpec("low_res_masks", "float32", ("prompts", 4, 256, 256)),
    TensorSpec("iou_predictions", "float32", ("prompts", 4)),
)


def encoder_outputs(family: Family) -> Tuple[TensorSpec, ...]:
    """The encoder graph's outputs: the embedding, then the family's high-resolution features."""
    return (EMBEDDING,) + tuple(TensorSpec(n, "float32", (1, c, s, s)) for n, c, s in family.high_res)


def decoder_inputs(family: Family) -> Tuple[TensorSpec, ...]:
    """The decoder graph's inputs: SAM's five, then the family's high-resolution features."""
    return (EMBEDDING,) + PROMPTS + encoder_outputs(family)[1:]


def encoder_inputs(image_size: int) -> Tuple[TensorSpec, ...]:
    return (TensorSpec("image", "float32", (1, 3, image_size, image_size)),)
