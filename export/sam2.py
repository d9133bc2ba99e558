"""The SAM 2 / 2.1 family (image predictor path only, no video memory), built by Meta's ``sam2`` package.

``build`` instantiates the official hydra configuration as ``build_sam2``
does for ``SAM2ImagePredictor`` (with its dynamic multimask-via-stability
rule), so the official ``{"model": state_dict}`` checkpoints load key for key.

* encoder graph: Hiera trunk + FPN neck on the 1024 x 1024 image, then what
  ``SAM2ImagePredictor.set_image`` does to the three levels: ``conv_s0`` /
  ``conv_s1`` of the mask decoder on the 256 x 256 and 128 x 128 levels
  (``high_res_feats_0`` [1, 32, 256, 256], ``high_res_feats_1`` [1, 64, 128, 128])
  and ``no_mem_embed`` added to the 64 x 64 level (``image_embeddings``);
* decoder graph: SAM's decoder contract plus the two high-resolution inputs;
  the object-score token is computed but not output (the image predictor
  ignores it).

Runtime rules: ``SAM2Transforms`` (stretch to 1024 x 1024, 0..1 values,
ImageNet mean/std), coordinates normalised by the original size and scaled
to 1024, box corners then points then one padding point, the stability rule
when one mask is asked for, logits resized straight to the original size.
"""
import warnings

from torch import nn

from pslg.runtime import extras

from . import sam, sam_families


def build(model_type):
    """An untrained SAM 2.x model of one of the official configurations, on the CPU, in eval mode."""
    build_sam2 = extras.require("sam2.build_sam", "export", "SAM 2 export").build_sam2
    return build_sam2(sam_families.model_type(model_type).config, ckpt_path=None, device="cpu", mode="eval")


class EncoderGraph(nn.Module):
    """Image -> (image_embeddings, high_res_feats_0, high_res_feats_1), as ``SAM2ImagePredictor.set_image``."""

    def __init__(self, model):
        super().__init__()
        self.image_encoder = model.image_encoder
        self.conv_s0, self.conv_s1 = model.sam_mask_decoder.conv_s0, model.sam_mask_decoder.conv_s1
        self.no_mem_embed = model.no_mem_embed if model.directly_add_no_mem_embed else None

    def forward(self, image):
        level0, level1, embedding = self.image_encoder(image)["backbone_fpn"]
        if self.no_mem_embed is not None:
            embedding = embedding + self.no_mem_embed.reshape(1, -1, 1, 1)
        return embedding, self.conv_s0(level0), self.conv_s1(level1)


class DecoderGraph(sam.DecoderGraph):
    """SAM's decoder graph with SAM 2's high-resolution features as two more inputs."""

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input,
                high_res_feats_0, high_res_feats_1):
        sparse, dense = self.embed_prompts(point_coords, point_labels, mask_input, has_mask_input)
        masks, scores, _, _ = self.mask_decoder.predict_masks(
            image_embeddings, self.prompt_encoder.get_dense_pe(), sparse, dense, repeat_image=True,
            high_res_features=[high_res_feats_0, high_res_feats_1])
        return masks, scores


def graphs(model):
    return EncoderGraph(model), DecoderGraph(model.sam_prompt_encoder, model.sam_mask_decoder)


#: SAM2ImagePredictor's default mask threshold (on the logits)
MASK_THRESHOLD = 0.0


def rules(model):
    """``SAM2ImagePredictor``'s rules, read from its transforms and the model's mask decoder."""
    from sam2.utils.transforms import SAM2Transforms
    with warnings.catch_warnings():  # it scripts its resize with the deprecated torch.jit.script
        warnings.simplefilter("ignore", FutureWarning)
        transforms = SAM2Transforms(model.image_size, mask_threshold=MASK_THRESHOLD)
    decoder = model.sam_mask_decoder
    stability = bool(decoder.dynamic_multimask_via_stability)
    return {"image_size": int(model.image_size), "mask_threshold": MASK_THRESHOLD,
            "pixel_mean": tuple(float(v) for v in transforms.mean),
            "pixel_std": tuple(float(v) for v in transforms.std), "resize": "square", "pixel_divisor": 255.0,
            "prompt_layout": "box_then_points_padded", "mask_choice": "stability" if stability else "first_token",
            "stability_delta": float(decoder.dynamic_multimask_stability_delta) if stability else 0.0,
            "stability_threshold": float(decoder.dynamic_multimask_stability_thresh) if stability else 0.0}


def predictor(model):
    from sam2.sam2_image_predictor import SAM2ImagePredictor
    return SAM2ImagePredictor(model)
