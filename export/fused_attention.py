"""Attention exported as ONNX Runtime's fused ``com.microsoft.MultiHeadAttention``, for CPU graph variants.

The portable graphs spell ``scaled_dot_product_attention`` out as MatMul,
Softmax and MatMul (what TensorRT parses). On the CPU that materialises the
whole attention matrix: SAM 2's Hiera has global-attention blocks over 4096
tokens, where ONNX Runtime's fused operator (tiled, never holding the matrix)
takes about 0.6x the time. While :func:`onnxruntime_attention` is active, every
plain call (no mask, no dropout, not causal, default scale) traces to that
operator; anything else keeps PyTorch's own decomposition.
"""
import contextlib

import torch
import torch.nn.functional as F

DOMAIN = "com.microsoft"
OP = "MultiHeadAttention"
_SDPA = F.scaled_dot_product_attention


class _FusedAttention(torch.autograd.Function):
    """SDPA on [B, heads, S, head_dim] tensors; exported as one MultiHeadAttention node on [B, S, heads x dim]."""

    @staticmethod
    def forward(ctx, query, key, value, heads):
        return _SDPA(query, key, value)

    @staticmethod
    def symbolic(g, query, key, value, heads):
        flat = g.op("Constant", value_t=torch.tensor([0, 0, -1], dtype=torch.int64))
        split = g.op("Constant", value_t=torch.tensor([0, 0, heads, -1], dtype=torch.int64))

        def tokens(x):  # [B, N, S, H] -> [B, S, N*H]
            return g.op("Reshape", g.op("Transpose", x, perm_i=[0, 2, 1, 3]), flat)

        fused = g.op(f"{DOMAIN}::{OP}", tokens(query), tokens(key), tokens(value), num_heads_i=heads)
        return g.op("Transpose", g.op("Reshape", fused, split), perm_i=[0, 2, 1, 3])


@contextlib.contextmanager
def onnxruntime_attention():
    """Trace plain ``F.scaled_dot_product_attention`` calls as fused attention; yields ``{"calls": n}``.

    The numbers computed while tracing are PyTorch's own (the forward calls
    the original function), so the export's parity check compares the fused
    graph with the unchanged model.
    """
    previous, seen = F.scaled_dot_product_attention, {"calls": 0}

    def traced(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kwargs):
        if attn_mask is not None or dropout_p or is_causal or scale is not None or kwargs or query.dim() != 4:
            return _SDPA(query, key, value, attn_mask, dropout_p, is_causal, scale=scale, **kwargs)
        seen["calls"] += 1
        return _FusedAttention.apply(query, key, value, int(query.shape[1]))

    F.scaled_dot_product_attention = traced
    try:
        yield seen
    finally:
        F.scaled_dot_product_attention = previous
