"""Multi-scale deformable attention in plain exportable ops (GridSample, opset >= 16).

The level sizes are Python constants fixed by the image size, so value
splitting and reshaping trace to static slices; sampling is bilinear with
zero padding and ``align_corners=False`` (``grid = 2 * loc - 1``), the
convention of the official CUDA kernel and its PyTorch fallback. Inputs are
never padded (LQVG's pixel mask is all False), so there is no padding mask.
"""
import torch
import torch.nn.functional as F
from torch import nn


class MSDeformAttn(nn.Module):
    """Deformable DETR's ``MSDeformAttn`` (same parameter names) for fixed level sizes and one image."""

    def __init__(self, level_shapes, d_model=256, n_heads=8, n_points=4):
        super().__init__()
        self.level_shapes = tuple(level_shapes)
        self.n_levels, self.n_heads, self.n_points = len(self.level_shapes), n_heads, n_points
        self.head_dim = d_model // n_heads
        samples = n_heads * self.n_levels * n_points
        self.sampling_offsets = nn.Linear(d_model, samples * 2)
        self.attention_weights = nn.Linear(d_model, samples)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        # offsets are in pixels of each level: divide by (W, H)
        self.register_buffer("offset_normalizer", torch.tensor([[w, h] for h, w in self.level_shapes],
                                                               dtype=torch.float32), persistent=False)

    def forward(self, query, reference_points, source):
        """query [1, Lq, C]; source [1, S, C]; reference_points [1, Lq, 1 or L, 2] (points, 0..1)
        or [1, Lq, 1 or L, 4] (boxes cx, cy, w, h) -> [1, Lq, C]."""
        m, levels, points = self.n_heads, self.n_levels, self.n_points
        value = self.value_proj(source).reshape(1, -1, m, self.head_dim)
        offsets = self.sampling_offsets(query).reshape(1, -1, m, levels, points, 2)
        weights = self.attention_weights(query).reshape(1, -1, m, levels * points).softmax(-1)
        weights = weights.reshape(1, -1, m, levels, points)
        ref = reference_points[:, :, None, :, None, :]
        if reference_points.shape[-1] == 2:
            locations = ref + offsets / self.offset_normalizer[None, None, None, :, None, :]
        else:
            locations = ref[..., :2] + offsets / points * ref[..., 2:] * 0.5
        return self.output_proj(self.sample(value, locations, weights))

    def sample(self, value, locations, weights):
        """Attention-weighted bilinear samples of every level.

        value [1, S, M, D] (S = sum of H*W), locations [1, Lq, M, L, P, 2] in
        [0, 1] (x, y), weights [1, Lq, M, L, P] -> [1, Lq, M*D]. Levels are
        summed one by one, which keeps the largest intermediate at one level's
        samples. Reshapes use the module's constants, so the exported graph
        has no shape arithmetic.
        """
        m, d, points = self.n_heads, self.head_dim, self.n_points
        grids = 2 * locations - 1
        out, start = 0, 0
        for level, (h, w) in enumerate(self.level_shapes):
            v = value[0, start:start + h * w].reshape(h * w, m * d).transpose(0, 1).reshape(m, d, h, w)
            grid = grids[0, :, :, level].transpose(0, 1)  # [M, Lq, P, 2]
            sampled = F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            weight = weights[0, :, :, level].transpose(0, 1).reshape(m, 1, -1, points)
            out = out + (sampled * weight).sum(-1)  # [M, D, Lq]
            start += h * w
        return out.reshape(1, m * d, -1).transpose(1, 2)
