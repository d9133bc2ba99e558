"""SAM export: checkpoint loading and the two graph wrappers around segment-anything's modules.

* ``sam_encoder``: preprocessed image [1, 3, 1024, 1024] -> embedding [1, 256, 64, 64];
* ``sam_decoder``: prompt encoder + mask decoder for P prompts of K label-coded
  points each (labels: -1 padding, 0 negative, 1 positive, 2/3 box corners),
  optional mask input; outputs the low-resolution logits of all four mask
  tokens and their IoU scores. No upscaling in the graph: the runtime does it.
"""
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pslg.runtime.errors import CheckpointError, ParameterError
from pslg.runtime.modelset import SamComponent
from pslg.runtime.specs import TensorSpec

from .exporter import GraphExport, export_component
from .weights import file_record, load_strict, read_state_dict

#: ViT configurations: embed dim, depth, heads, global-attention blocks. ``vit_t``
#: is a small configuration of the same classes, for tests; no official weights exist for it.
CONFIGS = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
    "vit_t": (64, 2, 2, (1,)),
}

ENCODER_INPUTS = (TensorSpec("image", "float32", (1, 3, 1024, 1024)),)
ENCODER_OUTPUTS = (TensorSpec("image_embeddings", "float32", (1, 256, 64, 64)),)
DECODER_INPUTS = (
    TensorSpec("image_embeddings", "float32", (1, 256, 64, 64)),
    TensorSpec("point_coords", "float32", ("prompts", "points", 2)),
    TensorSpec("point_labels", "float32", ("prompts", "points")),
    TensorSpec("mask_input", "float32", ("prompts", 1, 256, 256)),
    TensorSpec("has_mask_input", "float32", (1,)),
)
DECODER_OUTPUTS = (
    TensorSpec("low_res_masks", "float32", ("prompts", 4, 256, 256)),
    TensorSpec("iou_predictions", "float32", ("prompts", 4)),
)
#: Max abs difference ONNX Runtime vs PyTorch accepted at export time.
TOLERANCES = {"image_embeddings": 1e-3, "low_res_masks": 1e-3, "iou_predictions": 1e-4}


def build(model_type):
    """An untrained segment-anything ``Sam`` of the given configuration."""
    from segment_anything.build_sam import _build_sam
    if model_type not in CONFIGS:
        raise ParameterError(f"unknown SAM model type {model_type!r}; choose one of {', '.join(CONFIGS)}")
    dim, depth, heads, global_attn = CONFIGS[model_type]
    return _build_sam(dim, depth, heads, list(global_attn), checkpoint=None).eval()


def detect_model_type(state):
    """The ViT configuration a SAM state dict was trained with."""
    pos = state.get("image_encoder.pos_embed")
    if pos is None:
        raise CheckpointError("this is not a SAM checkpoint: it has no 'image_encoder.pos_embed' "
                              f"(first keys: {', '.join(list(state)[:3])})")
    depth = len({k.split(".")[2] for k in state if k.startswith("image_encoder.blocks.")})
    for name, (dim, want_depth, _, _) in CONFIGS.items():
        if pos.shape[-1] == dim and depth == want_depth:
            return name
    raise CheckpointError(f"SAM checkpoint with embed dim {pos.shape[-1]} and {depth} blocks matches no known model type")


def load_sam(model_type, checkpoint=None, decoder_checkpoint=None, random_weights=False, seed=0):
    """Build SAM and fill it; returns ``(sam, weights_record)`` for the manifest.

    ``checkpoint`` is an official (or fully fine-tuned) SAM state dict;
    ``decoder_checkpoint`` replaces the mask decoder on top of it (keys with or
    without the ``mask_decoder.`` prefix). Random weights only when asked.
    """
    if random_weights == (checkpoint is not None):
        raise ParameterError("give exactly one of --checkpoint PATH or --random-weights")
    if random_weights:
        if decoder_checkpoint is not None:
            raise ParameterError("--decoder-checkpoint needs a base --checkpoint")
        torch.manual_seed(seed)
        return build(model_type), {"random": True, "seed": seed}
    state = read_state_dict(checkpoint)
    found = detect_model_type(state)
    if found != model_type:
        raise CheckpointError(f"{Path(checkpoint).name} is a {found} checkpoint, not {model_type}: "
                              f"pass --model-type {found}")
    sam = build(model_type)
    load_strict(sam, state, f"checkpoint {Path(checkpoint).name}", "SAM")
    record = {"random": False, "checkpoint": file_record(checkpoint)}
    if decoder_checkpoint is not None:
        dec = read_state_dict(decoder_checkpoint, "decoder checkpoint")
        dec = {k[len("mask_decoder."):] if k.startswith("mask_decoder.") else k: v for k, v in dec.items()}
        load_strict(sam.mask_decoder, dec, f"decoder checkpoint {Path(decoder_checkpoint).name}", "SAM's mask decoder")
        record["decoder_checkpoint"] = file_record(decoder_checkpoint)
    return sam, record


class EncoderGraph(nn.Module):
    """The ViT image encoder on a preprocessed, padded 1024x1024 image."""

    def __init__(self, sam):
        super().__init__()
        self.image_encoder = sam.image_encoder

    def forward(self, image):
        return self.image_encoder(image)


class DecoderGraph(nn.Module):
    """Prompt encoder + mask decoder for many prompts of label-coded points at once."""

    def __init__(self, sam):
        super().__init__()
        self.prompt_encoder = sam.prompt_encoder
        self.mask_decoder = sam.mask_decoder

    def embed_points(self, coords, labels):
        pe = self.prompt_encoder
        emb = pe.pe_layer.forward_with_coords(coords + 0.5, pe.input_image_size)
        labels = labels.unsqueeze(-1)
        emb = torch.where(labels == -1, pe.not_a_point_embed.weight, emb)
        for i, point in enumerate(pe.point_embeddings):
            emb = emb + point.weight * (labels == i).to(emb.dtype)
        return emb

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        pe = self.prompt_encoder
        sparse = self.embed_points(point_coords, point_labels)
        dense = (has_mask_input * pe.mask_downscaling(mask_input)
                 + (1 - has_mask_input) * pe.no_mask_embed.weight.reshape(1, -1, 1, 1))
        return self.mask_decoder.predict_masks(image_embeddings, pe.get_dense_pe(), sparse, dense)


def example_decoder_inputs(embedding, prompts=2, points=3, seed=0):
    """Prompts for tracing and for the export-time check: box corners plus a positive point."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 900, size=(prompts, 2))
    wh = rng.uniform(40, 120, size=(prompts, 2))
    coords = np.concatenate([(xy + wh / 2)[:, None], xy[:, None], (xy + wh)[:, None]], axis=1)[:, :points]
    labels = np.tile(np.array([1, 2, 3], np.float32)[:points], (prompts, 1))
    return {"image_embeddings": embedding, "point_coords": coords.astype(np.float32), "point_labels": labels,
            "mask_input": np.zeros((prompts, 1, 256, 256), np.float32), "has_mask_input": np.zeros(1, np.float32)}


def export_sam(out, model_type, checkpoint=None, decoder_checkpoint=None, random_weights=False, seed=0,
               simplify=True):
    """Export SAM's two graphs into the model set ``out``; checked against PyTorch before they land."""
    sam, weights = load_sam(model_type, checkpoint, decoder_checkpoint, random_weights, seed)
    encoder, decoder = EncoderGraph(sam).eval(), DecoderGraph(sam).eval()
    image = np.random.default_rng(seed).standard_normal((1, 3, 1024, 1024), dtype=np.float32)
    with torch.no_grad():
        embedding = encoder(torch.from_numpy(image)).numpy()
    graphs = [GraphExport("sam_encoder", encoder, ENCODER_INPUTS, ENCODER_OUTPUTS, [{"image": image}], TOLERANCES,
                          references=[{"image_embeddings": embedding}]),
              GraphExport("sam_decoder", decoder, DECODER_INPUTS, DECODER_OUTPUTS,
                          [example_decoder_inputs(embedding)], TOLERANCES)]

    def describe(provenance):
        return SamComponent("sam", model_type, sam.image_encoder.img_size, float(sam.mask_threshold),
                            tuple(sam.pixel_mean.flatten().tolist()),
                            tuple(sam.pixel_std.flatten().tolist()), provenance)

    return export_component(out, "sam", graphs, describe, weights=weights, packages=("segment-anything",),
                            simplify=simplify)
