"""Deformable DETR transformer of LQVG: 4 encoder + 4 decoder layers, iterative box refinement.

Module and parameter names follow the official ``DeformableTransformer`` so
its state dict loads unchanged. For a fixed image size the level sizes, the
per-level position embeddings and the encoder reference points are
constants, held as non-persistent buffers. Only the last decoder layer's
logits and boxes are produced (the auxiliary outputs and the sampling-point
visualisation of the official code are not).
"""
import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiheadAttention
from .deformable import MSDeformAttn
from .position import sine_2d

D_MODEL = 256
HEADS = 8
FFN = 2048
LAYERS = 4


def inverse_sigmoid(x, eps=1e-5):
    """log(x / (1 - x)) with the official clamps (keep in fp32: eps is subnormal in fp16)."""
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


class MLP(nn.Module):
    """``layers`` Linear layers with ReLU between them (the official box head)."""

    def __init__(self, dim, hidden, out, layers):
        super().__init__()
        sizes = [dim] + [hidden] * (layers - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:] + [out]))

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


class EncoderLayer(nn.Module):
    def __init__(self, level_shapes):
        super().__init__()
        self.self_attn = MSDeformAttn(level_shapes, D_MODEL, HEADS)
        self.norm1 = nn.LayerNorm(D_MODEL)
        self.linear1 = nn.Linear(D_MODEL, FFN)
        self.linear2 = nn.Linear(FFN, D_MODEL)
        self.norm2 = nn.LayerNorm(D_MODEL)

    def forward(self, src, pos, reference_points):
        src = self.norm1(src + self.self_attn(src + pos, reference_points, src))
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class DecoderLayer(nn.Module):
    def __init__(self, level_shapes):
        super().__init__()
        self.cross_attn = MSDeformAttn(level_shapes, D_MODEL, HEADS)
        self.norm1 = nn.LayerNorm(D_MODEL)
        self.self_attn = MultiheadAttention(D_MODEL, HEADS)
        self.norm2 = nn.LayerNorm(D_MODEL)
        self.linear1 = nn.Linear(D_MODEL, FFN)
        self.linear2 = nn.Linear(FFN, D_MODEL)
        self.norm3 = nn.LayerNorm(D_MODEL)

    def forward(self, tgt, query_pos, reference_points, memory):
        q = tgt + query_pos
        tgt = self.norm2(tgt + self.self_attn(q, q, tgt))
        tgt = self.norm1(tgt + self.cross_attn(tgt + query_pos, reference_points, memory))
        return self.norm3(tgt + self.linear2(F.relu(self.linear1(tgt))))


class Encoder(nn.Module):
    def __init__(self, level_shapes):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(level_shapes) for _ in range(LAYERS))
        # pixel centres of every level, normalised to [0, 1] (valid ratios are all 1): [1, S, 1, 2]
        refs = []
        for h, w in level_shapes:
            y, x = torch.meshgrid(torch.linspace(0.5, h - 0.5, h, dtype=torch.float32),
                                  torch.linspace(0.5, w - 0.5, w, dtype=torch.float32), indexing="ij")
            refs.append(torch.stack((x.reshape(-1) / w, y.reshape(-1) / h), -1))
        self.register_buffer("reference_points", torch.cat(refs)[None, :, None], persistent=False)

    def forward(self, src, pos):
        for layer in self.layers:
            src = layer(src, pos, self.reference_points)
        return src


class Decoder(nn.Module):
    """Decoder layers with box refinement; ``bbox_embed`` is the model's box head (shared, as officially)."""

    def __init__(self, level_shapes, bbox_embed):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(level_shapes) for _ in range(LAYERS))
        self.bbox_embed = bbox_embed

    def forward(self, tgt, query_pos, reference_points, memory):
        """Returns the last layer's output and its refined boxes (cx, cy, w, h in [0, 1])."""
        out = tgt
        for layer, box_head in zip(self.layers, self.bbox_embed):
            out = layer(out, query_pos, reference_points[:, :, None], memory)
            delta = box_head(out)
            if reference_points.shape[-1] == 2:  # first layer: the reference is a point
                delta = torch.cat((delta[..., :2] + inverse_sigmoid(reference_points), delta[..., 2:]), -1)
            else:
                delta = delta + inverse_sigmoid(reference_points)
            reference_points = delta.sigmoid()
        return out, reference_points


class DeformableTransformer(nn.Module):
    """Encoder over the flattened levels, then the decoder from language queries."""

    def __init__(self, level_shapes, bbox_embed):
        super().__init__()
        self.level_shapes = tuple(level_shapes)
        self.level_embed = nn.Parameter(torch.empty(len(self.level_shapes), D_MODEL))
        self.encoder = Encoder(self.level_shapes)
        self.decoder = Decoder(self.level_shapes, bbox_embed)
        self.reference_points = nn.Linear(D_MODEL, 2)
        nn.init.normal_(self.level_embed)
        for level, (h, w) in enumerate(self.level_shapes):
            self.register_buffer(f"pos{level}", sine_2d(h, w, D_MODEL // 2).flatten(2).transpose(1, 2),
                                 persistent=False)

    def position(self, level):
        """Sine position embedding of a level, flattened: [1, H*W, C]."""
        return getattr(self, f"pos{level}")

    def forward(self, sources, tgt, query_embed):
        """sources: per-level [1, H*W, C]; tgt [1, Q, C] -> (decoder output [1, Q, C], boxes [1, Q, 4])."""
        pos = torch.cat([self.position(level) + self.level_embed[level].view(1, 1, -1)
                         for level in range(len(sources))], 1)
        memory = self.encoder(torch.cat(sources, 1), pos)
        query_pos = query_embed[None]
        reference_points = self.reference_points(query_pos).sigmoid()
        return self.decoder(tgt, query_pos, reference_points, memory)
