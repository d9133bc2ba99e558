"""SAM family test helpers: random checkpoints in the official file formats, and the official loaders."""
from pathlib import Path

import torch

from pslg.export import sam_families
from pslg.export.sam import load_sam

#: what each family's official checkpoint file is called and how it holds its state dict
FILE_NAMES = {"sam": "sam_{}.pth", "mobile_sam": "mobile_sam.pt", "sam2": "{}.pt"}


def random_checkpoint(model_type, folder, seed):
    """Seeded random weights saved as the family's official file is (plain, or ``{"model": ...}`` for SAM 2).

    The family's own initialisation, with the tensors it initialises to
    constants (TinyViT's attention biases, BatchNorm statistics) drawn too,
    so a stale cache or a dropped buffer shows in the outputs.
    """
    model, _ = load_sam(model_type, random_weights=True, seed=seed)
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("attention_biases"):
            value = torch.randn(value.shape, generator=g)
        elif key.endswith("running_mean"):
            value = 0.1 * torch.randn(value.shape, generator=g)
        elif key.endswith("running_var"):
            value = 1 + 0.5 * torch.rand(value.shape, generator=g)
        state[key] = value.clone()
    family = sam_families.model_type(model_type).family.name
    path = Path(folder) / FILE_NAMES[family].format(model_type)
    torch.save({"model": state} if family == "sam2" else state, path)
    return path


def official_model(model_type, checkpoint):
    """The model as the family's own loader builds it from a checkpoint file (the parity reference)."""
    kind = sam_families.model_type(model_type)
    if kind.family.name == "sam2":
        from sam2.build_sam import build_sam2
        return build_sam2(kind.config, ckpt_path=str(checkpoint), device="cpu")
    if kind.family.name == "mobile_sam":
        from pslg.export.mobile_sam import _mobile_sam
        return _mobile_sam().sam_model_registry["vit_t"](checkpoint=str(checkpoint)).eval()  # eval as its README
    from segment_anything.build_sam import _build_sam
    dim, depth, heads, global_attn = kind.config
    return _build_sam(dim, depth, heads, list(global_attn), checkpoint=str(checkpoint)).eval()


def reference_features(predictor):
    """The reference predictor's encoder outputs by our output names."""
    if hasattr(predictor, "_features") and isinstance(predictor._features, dict):
        s0, s1 = predictor._features["high_res_feats"]
        return {"image_embeddings": predictor._features["image_embed"].numpy(), "high_res_feats_0": s0.numpy(),
                "high_res_feats_1": s1.numpy()}
    return {"image_embeddings": predictor.features.numpy()}


def reference_batch(predictor, boxes, points=None):
    """The reference's masks [N, H, W] and scores [N] for N prompts in one call (``multimask_output=False``)."""
    labels = None if points is None else torch.ones(points.shape[:2], dtype=torch.int)
    if hasattr(predictor, "_features") and isinstance(predictor._features, dict):  # SAM2ImagePredictor
        masks, scores, _ = predictor.predict(point_coords=points, point_labels=labels, box=boxes,
                                             multimask_output=False)
        return masks.reshape(len(boxes), *masks.shape[-2:]) > 0, scores.reshape(len(boxes))
    size = predictor.original_size
    coords = None if points is None else torch.as_tensor(predictor.transform.apply_coords(points, size),
                                                         dtype=torch.float)
    tboxes = torch.as_tensor(predictor.transform.apply_boxes(boxes, size), dtype=torch.float)
    masks, scores, _ = predictor.predict_torch(coords, labels, boxes=tboxes, multimask_output=False)
    return masks[:, 0].numpy(), scores[:, 0].numpy()
