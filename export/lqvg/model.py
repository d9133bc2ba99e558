"""LQVG for inference at one image size, split where deployment wants it.

* :meth:`LQVG.encode_text`: token ids + mask -> RoBERTa -> resizer: the text
  features, which depend on the phrase only (the text graph);
* :meth:`LQVG.ground`: letterboxed normalised image + text features + mask ->
  backbone, four levels of bidirectional vision-language fusion, sentence
  feature as the content of the language queries, deformable transformer ->
  logits and boxes of all queries (the grounding graph).

Attribute names mirror the official ``models/LQVG.py`` so that its
checkpoint's state dict loads unchanged (see :mod:`.checkpoint`), including
the ``bbox_embed`` / ``transformer.decoder.bbox_embed`` alias of box refinement.
"""
from dataclasses import dataclass

import torch
from torch import nn

from .attention import MultiheadAttention
from .backbone import CHANNELS, Backbone, level_shapes
from .position import sine_1d
from .text import HIDDEN, LAYERS, RobertaEncoder
from .transformer import D_MODEL, HEADS, LAYERS as DECODER_LAYERS, MLP, DeformableTransformer

NUM_QUERIES = 10


@dataclass(frozen=True)
class Config:
    """What varies between LQVG builds: the letterbox square and (for tests only) the RoBERTa depth."""

    image_size: int = 800
    text_layers: int = LAYERS


class FeatureResizer(nn.Module):
    """Linear(768 -> 256) + LayerNorm(eps 1e-12); its dropout is inactive at inference."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(HIDDEN, D_MODEL)
        self.layer_norm = nn.LayerNorm(D_MODEL, eps=1e-12)

    def forward(self, x):
        return self.layer_norm(self.fc(x))


class Fusion(nn.Module):
    """``VisionLanguageFusionModule``: ``tgt * attention(tgt, memory + pos, memory)``, no residual, no norm."""

    def __init__(self):
        super().__init__()
        self.multihead_attn = MultiheadAttention(D_MODEL, HEADS)

    def forward(self, tgt, memory, pos, key_padding_mask=None):
        return tgt * self.multihead_attn(tgt, memory + pos, memory, key_padding_mask)


class Pooler(nn.Module):
    """Sentence feature: ``tanh(dense(text[:, 0]))``."""

    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(D_MODEL, D_MODEL)

    def forward(self, text):
        return torch.tanh(self.dense(text[:, 0]))


def _projection(in_channels, kernel_size=1, stride=1):
    return nn.Sequential(nn.Conv2d(in_channels, D_MODEL, kernel_size, stride=stride, padding=kernel_size // 2),
                         nn.GroupNorm(32, D_MODEL))


class LQVG(nn.Module):
    """LQVG (official test.sh configuration) for ``config.image_size`` square inputs, one image and phrase a call."""

    def __init__(self, config=Config()):
        super().__init__()
        self.config = config
        shapes = level_shapes(config.image_size)
        self.backbone = nn.ModuleList([Backbone()])  # keys backbone.0.body.*, as the official Joiner's
        self.text_encoder = RobertaEncoder(config.text_layers)
        self.resizer = FeatureResizer()
        self.fusion_module = Fusion()
        self.fusion_module_text = Fusion()
        self.poolout_module = Pooler()
        self.input_proj = nn.ModuleList([_projection(c) for c in CHANNELS] + [_projection(CHANNELS[-1], 3, 2)])
        self.query_embed = nn.Embedding(NUM_QUERIES, D_MODEL)
        self.class_embed = nn.ModuleList(nn.Linear(D_MODEL, 1) for _ in range(DECODER_LAYERS))
        self.bbox_embed = nn.ModuleList(MLP(D_MODEL, D_MODEL, 4, 3) for _ in range(DECODER_LAYERS))
        self.transformer = DeformableTransformer(shapes, self.bbox_embed)

    def encode_text(self, input_ids, attention_mask):
        """[1, L] int64 ids and mask (1 = token) -> text features [1, L, 256]."""
        return self.resizer(self.text_encoder(input_ids, attention_mask))

    def ground(self, image, text_features, attention_mask):
        """image [1, 3, S, S] normalised; text features [1, L, 256]; mask [1, L] ->
        (logits [1, Q], boxes [1, Q, 4] cx, cy, w, h in [0, 1] of the S x S image)."""
        text_padding = attention_mask.eq(0)
        text_pos = sine_1d((~text_padding).to(text_features.dtype), D_MODEL)
        text = text_features
        layer2, layer3, layer4 = self.backbone[0](image)
        sources = []
        for level, feature in enumerate((layer2, layer3, layer4, layer4)):
            src = self.input_proj[level](feature).reshape(1, D_MODEL, -1).transpose(1, 2)  # [1, H*W, C]
            pos = self.transformer.position(level)
            text = self.fusion_module_text(text, src, pos)  # attends the unfused level
            sources.append(self.fusion_module(src, text_features, text_pos, text_padding))
        sentence = self.poolout_module(text)
        tgt = sentence[:, None].expand(1, NUM_QUERIES, D_MODEL)
        out, boxes = self.transformer(sources, tgt, self.query_embed.weight)
        return self.class_embed[-1](out)[..., 0], boxes

    def forward(self, image, input_ids, attention_mask):
        return self.ground(image, self.encode_text(input_ids, attention_mask), attention_mask)
