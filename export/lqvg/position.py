"""Sine position embeddings of LQVG (ReferFormer variant), in the official float32 op order.

The image is never padded inside the model (the letterbox border counts as
valid), so the 2-D embedding of each level depends only on its size: it is
computed once per image size, as a constant. The 1-D text embedding depends on
the attention mask and stays in the graph.
"""
import math

import torch

SCALE = 2 * math.pi
EPS = 1e-6


def _frequencies(num_feats, temperature=10000):
    dim_t = torch.arange(num_feats, dtype=torch.float32)
    return temperature ** (2 * (dim_t // 2) / num_feats)


def _sin_cos(angles):
    """sin of the even channels and cos of the odd ones, paired on a new last dim (flatten it to interleave)."""
    return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1)


def sine_2d(height, width, num_feats=128):
    """``PositionEmbeddingSine2D(num_feats, normalize=True)`` of an unpadded H x W map: [1, 2*num_feats, H, W].

    Note the ``- 0.5`` of the ReferFormer variant; channels are ``[pos_y, pos_x]``.
    """
    valid = torch.ones(1, height, width)
    y = valid.cumsum(1, dtype=torch.float32)
    x = valid.cumsum(2, dtype=torch.float32)
    y = (y - 0.5) / (y[:, -1:, :] + EPS) * SCALE
    x = (x - 0.5) / (x[:, :, -1:] + EPS) * SCALE
    dim_t = _frequencies(num_feats)
    pos_y = _sin_cos(y[:, :, :, None] / dim_t).flatten(3)
    pos_x = _sin_cos(x[:, :, :, None] / dim_t).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


def sine_1d(valid, num_feats=256):
    """``PositionEmbeddingSine1D(num_feats, normalize=True)``; ``valid`` is [1, L] float (1 = token): [1, L, C]."""
    x = valid.cumsum(1)
    x = x / (x[:, -1:] + EPS) * SCALE
    return _sin_cos(x[:, :, None] / _frequencies(num_feats)).reshape(1, -1, num_feats)
