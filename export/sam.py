"""SAM export for every family, and the SAM (ViT) family itself.

:func:`export_sam` exports any model type of :mod:`.sam_families`' table:
the family's module builds the model and its two graphs, and the one
exporter skeleton checks them against PyTorch and records the component.

* ``sam_encoder``: preprocessed image [1, 3, 1024, 1024] -> embedding [1, 256, 64, 64]
  (plus the family's high-resolution features: SAM 2's decoder takes two);
  SAM 2's also gets a CPU variant with ONNX Runtime's fused attention
  (``sam_encoder.cpu.onnx``, :mod:`.fused_attention`);
* ``sam_decoder``: prompt encoder + mask decoder for P prompts of K label-coded
  points each (labels: -1 padding, 0 negative, 1 positive, 2/3 box corners),
  optional mask input; outputs the low-resolution logits of all four mask
  tokens and their IoU scores. No upscaling in the graph: the runtime does it.

This module is also the SAM family's (segment-anything's ViT-B/L/H and the
``vit_test`` test configuration): ``build``, ``graphs``, ``rules``, ``predictor``.
"""
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pslg.runtime import extras
from pslg.runtime.errors import ParameterError
from pslg.runtime.modelset import SamComponent

from . import sam_families
from .exporter import GraphExport, export_component
from .weights import file_record, load_strict, read_state_dict

#: Max abs difference ONNX Runtime vs PyTorch accepted at export time.
TOLERANCES = {"image_embeddings": 1e-3, **{name: 1e-3 for name, _, _ in sam_families.SAM2.high_res},
              "low_res_masks": 1e-3, "iou_predictions": 1e-4}


def build(model_type):
    """An untrained segment-anything ``Sam`` of one of the ViT configurations."""
    _build_sam = extras.require("segment_anything.build_sam", "export", "SAM export")._build_sam
    dim, depth, heads, global_attn = sam_families.model_type(model_type).config
    return _build_sam(dim, depth, heads, list(global_attn), checkpoint=None).eval()


def graphs(model):
    """The encoder and decoder modules of a segment-anything ``Sam`` (also MobileSAM's)."""
    return EncoderGraph(model.image_encoder), DecoderGraph(model.prompt_encoder, model.mask_decoder)


def rules(model):
    """SamPredictor's rules: longest side resized (PIL bilinear) and padded, points then box, token 0."""
    return {"image_size": model.image_encoder.img_size, "mask_threshold": float(model.mask_threshold),
            "pixel_mean": tuple(model.pixel_mean.flatten().tolist()),
            "pixel_std": tuple(model.pixel_std.flatten().tolist()), "resize": "longest_side", "pixel_divisor": 1.0,
            "prompt_layout": "points_then_box", "mask_choice": "first_token"}


def predictor(model):
    from segment_anything import SamPredictor
    return SamPredictor(model)


def load_sam(model_type, checkpoint=None, decoder_checkpoint=None, random_weights=False, seed=0):
    """Build a model of any SAM family and fill it; returns ``(model, weights_record)`` for the manifest.

    ``checkpoint`` is the family's official (or fully fine-tuned) checkpoint:
    a state dict, bare or under ``"model"``; one of another family or size is
    refused by name. ``decoder_checkpoint`` replaces the mask decoder on top
    of it (keys with or without the decoder's prefix). Random weights (the
    family's own initialisation under ``seed``) only when asked.
    """
    kind = sam_families.model_type(model_type)
    family = kind.family.load_module()
    if random_weights == (checkpoint is not None):
        raise ParameterError("give exactly one of --checkpoint PATH or --random-weights")
    if random_weights:
        if decoder_checkpoint is not None:
            raise ParameterError("--decoder-checkpoint needs a base --checkpoint")
        torch.manual_seed(seed)
        return family.build(model_type), {"random": True, "seed": seed}
    state = read_state_dict(checkpoint)
    sam_families.identify(state, Path(checkpoint).name, model_type)
    model = family.build(model_type)
    load_strict(model, state, f"checkpoint {Path(checkpoint).name}", kind.title)
    record = {"random": False, "checkpoint": file_record(checkpoint)}
    if decoder_checkpoint is not None:
        prefix = kind.family.decoder + "."
        dec = read_state_dict(decoder_checkpoint, "decoder checkpoint")
        dec = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in dec.items()}
        load_strict(getattr(model, kind.family.decoder), dec,
                    f"decoder checkpoint {Path(decoder_checkpoint).name}", f"{kind.title}'s mask decoder")
        record["decoder_checkpoint"] = file_record(decoder_checkpoint)
    return model.eval(), record  # eval() again: TinyViT caches its attention biases there


class EncoderGraph(nn.Module):
    """An image encoder that maps the preprocessed 1024 x 1024 image to the embedding alone (ViT, TinyViT)."""

    def __init__(self, image_encoder):
        super().__init__()
        self.image_encoder = image_encoder

    def forward(self, image):
        return self.image_encoder(image)


class DecoderGraph(nn.Module):
    """Prompt encoder + mask decoder for many prompts of label-coded points at once."""

    def __init__(self, prompt_encoder, mask_decoder):
        super().__init__()
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder

    def embed_points(self, coords, labels):
        pe = self.prompt_encoder
        emb = pe.pe_layer.forward_with_coords(coords + 0.5, pe.input_image_size)
        labels = labels.unsqueeze(-1)
        emb = torch.where(labels == -1, pe.not_a_point_embed.weight, emb)
        for i, point in enumerate(pe.point_embeddings):
            emb = emb + point.weight * (labels == i).to(emb.dtype)
        return emb

    def embed_prompts(self, point_coords, point_labels, mask_input, has_mask_input):
        """Sparse [P, K, 256] and dense [P, 256, 64, 64] prompt embeddings."""
        pe = self.prompt_encoder
        dense = (has_mask_input * pe.mask_downscaling(mask_input)
                 + (1 - has_mask_input) * pe.no_mask_embed.weight.reshape(1, -1, 1, 1))
        return self.embed_points(point_coords, point_labels), dense

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input):
        sparse, dense = self.embed_prompts(point_coords, point_labels, mask_input, has_mask_input)
        return self.mask_decoder.predict_masks(image_embeddings, self.prompt_encoder.get_dense_pe(), sparse, dense)


def example_decoder_inputs(encoded, prompts=2, points=3, seed=0):
    """Prompts for tracing and for the export-time check: box corners plus a positive point.

    ``encoded``: the encoder's outputs by name (the embedding and any high-resolution features).
    """
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 900, size=(prompts, 2))
    wh = rng.uniform(40, 120, size=(prompts, 2))
    coords = np.concatenate([(xy + wh / 2)[:, None], xy[:, None], (xy + wh)[:, None]], axis=1)[:, :points]
    labels = np.tile(np.array([1, 2, 3], np.float32)[:points], (prompts, 1))
    return dict(encoded, point_coords=coords.astype(np.float32), point_labels=labels,
                mask_input=np.zeros((prompts, 1, 256, 256), np.float32), has_mask_input=np.zeros(1, np.float32))


def export_sam(out, model_type, checkpoint=None, decoder_checkpoint=None, random_weights=False, seed=0,
               simplify=True, cpu_variant=True):
    """Export a SAM model type's two graphs into the model set ``out``; checked against PyTorch before they land.

    ``cpu_variant``: also the encoder's CPU variant, where the family has one (SAM 2).
    """
    kind = sam_families.model_type(model_type)
    family = kind.family.load_module()
    model, weights = load_sam(model_type, checkpoint, decoder_checkpoint, random_weights, seed)
    encoder, decoder = (g.eval() for g in family.graphs(model))
    fields = family.rules(model)
    enc_in, enc_out = sam_families.encoder_inputs(fields["image_size"]), sam_families.encoder_outputs(kind.family)
    image = np.random.default_rng(seed).standard_normal(enc_in[0].shape, dtype=np.float32)
    with torch.no_grad():
        encoded = encoder(torch.from_numpy(image))
    encoded = encoded if isinstance(encoded, tuple) else (encoded,)
    encoded = {t.name: e.numpy() for t, e in zip(enc_out, encoded)}
    graph_list = [GraphExport("sam_encoder", encoder, enc_in, enc_out, [{"image": image}], TOLERANCES,
                              references=[encoded], cpu_variant=cpu_variant and kind.family.cpu_encoder),
                  GraphExport("sam_decoder", decoder, sam_families.decoder_inputs(kind.family),
                              sam_families.DECODER_OUTPUTS, [example_decoder_inputs(encoded)], TOLERANCES)]

    def describe(provenance):
        return SamComponent(kind.family.name, model_type, provenance=provenance,
                            encoder_outputs=tuple(t.name for t in enc_out[1:]), **fields)

    return export_component(out, "sam", graph_list, describe, weights=weights, packages=kind.family.packages,
                            simplify=simplify)
