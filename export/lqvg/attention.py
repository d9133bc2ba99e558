"""Dot-product attention in plain ops, and ``nn.MultiheadAttention``'s parameters in batch-first form.

The batch is one image and one phrase: head reshapes use constant shapes
(``[1, -1, heads, head_dim]``), so the exported graphs carry no shape
arithmetic for the dynamic token axis.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


def split_heads(x, heads, head_dim):
    """[1, L, heads * head_dim] -> [1, heads, L, head_dim]."""
    return x.reshape(1, -1, heads, head_dim).transpose(1, 2)


def merge_heads(x, dim):
    """[1, heads, L, head_dim] -> [1, L, dim]."""
    return x.transpose(1, 2).reshape(1, -1, dim)


def attend(q, k, v, key_padding_mask=None):
    """softmax(q k^T / sqrt(d)) v on [1, H, L, d] heads; ``key_padding_mask`` [1, Lk] bool, True = ignored key."""
    scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if key_padding_mask is not None:
        scores = scores.masked_fill(key_padding_mask[:, None, None, :], torch.finfo(scores.dtype).min)
    return torch.matmul(scores.softmax(-1), v)


class MultiheadAttention(nn.Module):
    """``nn.MultiheadAttention(dim, heads)`` state-dict compatible (packed ``in_proj``), batch-first, no dropout."""

    def __init__(self, dim, heads):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, query, key, value, key_padding_mask=None):
        weights, biases = self.in_proj_weight.chunk(3), self.in_proj_bias.chunk(3)
        q, k, v = (split_heads(F.linear(x, w, b), self.heads, self.dim // self.heads)
                   for x, w, b in zip((query, key, value), weights, biases))
        return self.out_proj(merge_heads(attend(q, k, v, key_padding_mask), self.dim))
