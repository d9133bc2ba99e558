"""RoBERTa-base as LQVG uses it (``last_hidden_state`` only), with transformers' module names.

Written out in plain ops so that the text graph exports with a dynamic token
axis and nothing but the ids and the mask as inputs. State-dict keys and
shapes are those of ``transformers.RobertaModel`` with roberta-base's config
(514 positions, one token type, LayerNorm eps 1e-5, a pooler LQVG never runs).
"""
import torch
import torch.nn.functional as F
from torch import nn

from .attention import attend, merge_heads, split_heads

VOCAB_SIZE = 50265
POSITIONS = 514
HIDDEN = 768
HEADS = 12
INTERMEDIATE = 3072
LAYERS = 12
PAD_ID = 1
#: Longest token sequence the position table holds (positions start at PAD_ID + 1).
MAX_TOKENS = POSITIONS - PAD_ID - 1
LN_EPS = 1e-5


class Embeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB_SIZE, HIDDEN)
        self.position_embeddings = nn.Embedding(POSITIONS, HIDDEN)
        self.token_type_embeddings = nn.Embedding(1, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=LN_EPS)

    def forward(self, input_ids):
        """Positions count the non-padding ids from PAD_ID + 1, as fairseq/transformers do."""
        not_pad = input_ids.ne(PAD_ID).long()
        positions = torch.cumsum(not_pad, dim=1) * not_pad + PAD_ID
        x = self.word_embeddings(input_ids) + self.token_type_embeddings.weight[0] + self.position_embeddings(positions)
        return self.LayerNorm(x)


class Layer(nn.Module):
    """One post-norm BERT layer; submodule names follow transformers' ``RobertaLayer``."""

    def __init__(self):
        super().__init__()
        self.attention = nn.Module()
        self.attention.self = nn.ModuleDict({n: nn.Linear(HIDDEN, HIDDEN) for n in ("query", "key", "value")})
        self.attention.output = nn.ModuleDict({"dense": nn.Linear(HIDDEN, HIDDEN),
                                               "LayerNorm": nn.LayerNorm(HIDDEN, eps=LN_EPS)})
        self.intermediate = nn.ModuleDict({"dense": nn.Linear(HIDDEN, INTERMEDIATE)})
        self.output = nn.ModuleDict({"dense": nn.Linear(INTERMEDIATE, HIDDEN),
                                     "LayerNorm": nn.LayerNorm(HIDDEN, eps=LN_EPS)})

    def forward(self, x, padding):
        qkv = self.attention.self
        q, k, v = (split_heads(qkv[n](x), HEADS, HIDDEN // HEADS) for n in ("query", "key", "value"))
        att = self.attention.output
        x = att["LayerNorm"](x + att["dense"](merge_heads(attend(q, k, v, padding), HIDDEN)))
        out = self.output
        return out["LayerNorm"](x + out["dense"](F.gelu(self.intermediate["dense"](x))))


class RobertaEncoder(nn.Module):
    """input_ids, attention_mask [B, L] int64 -> last_hidden_state [B, L, 768].

    ``layers`` below 12 is a test configuration (random weights only).
    """

    def __init__(self, layers=LAYERS):
        super().__init__()
        self.embeddings = Embeddings()
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(Layer() for _ in range(layers))
        # In every LQVG checkpoint (from_pretrained keeps add_pooling_layer=True); never run.
        self.pooler = nn.ModuleDict({"dense": nn.Linear(HIDDEN, HIDDEN)})

    def forward(self, input_ids, attention_mask):
        padding = attention_mask.eq(0)
        x = self.embeddings(input_ids)
        for layer in self.encoder.layer:
            x = layer(x, padding)
        return x
