"""LQVG export: the text and grounding graphs, checked against PyTorch, into a model set.

* ``lqvg_text``: input_ids, attention_mask [1, tokens] int64 -> text_features
  [1, tokens, 256] (RoBERTa + resizer), dynamic ``tokens`` from 1 to
  ``max_tokens``: the runtime caches it per phrase;
* ``lqvg_grounding``: image [1, 3, S, S] (letterboxed, normalised),
  text_features, attention_mask -> pred_logits [1, 10] and pred_boxes
  [1, 10, 4] (cx, cy, w, h in [0, 1] of the square) of all queries. Query
  selection and the way back to original pixels are the runtime's.
"""

import numpy as np
import torch
from torch import nn

from pslg.runtime import grounding as rt
from pslg.runtime import modelset
from pslg.runtime.errors import ParameterError, TokenizerError
from pslg.runtime.modelset import LetterboxRule, LqvgComponent
from pslg.runtime.specs import TensorSpec

from ..exporter import GraphExport, export_component
from ..weights import file_record
from . import text
from .checkpoint import load_checkpoint_state, read_checkpoint
from .model import LQVG, NUM_QUERIES, Config
from .tokenizer import SPECIAL_TOKENS, load_tokenizer, standin_tokenizer
from .transformer import D_MODEL

#: Letterbox squares of the released checkpoints: 800 (DIOR-RSVG), 1024 (RSVG-HR).
IMAGE_SIZES = (800, 1024)
DEFAULT_MAX_TOKENS = 40
TEXT_INPUTS = (TensorSpec("input_ids", "int64", (1, "tokens")), TensorSpec("attention_mask", "int64", (1, "tokens")))
TEXT_OUTPUTS = (TensorSpec("text_features", "float32", (1, "tokens", D_MODEL)),)
GROUNDING_OUTPUTS = (TensorSpec("pred_logits", "float32", (1, NUM_QUERIES)),
                     TensorSpec("pred_boxes", "float32", (1, NUM_QUERIES, 4)))
#: Max abs difference ONNX Runtime vs PyTorch accepted at export time.
TOLERANCES = {"text_features": 1e-4, "pred_logits": 1e-3, "pred_boxes": 1e-4}
#: Phrase of the export-time check (any phrase does; this one is RSVG-like).
SAMPLE_PHRASE = "the large white storage tank at the bottom left of the image"
#: The official letterbox (util/transforms.py): INTER_AREA resize, this pad colour, ImageNet normalisation.
LETTERBOX = LetterboxRule("area", (123.7, 116.3, 103.5), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def grounding_inputs(image_size):
    return (TensorSpec("image", "float32", (1, 3, image_size, image_size)),
            TensorSpec("text_features", "float32", (1, "tokens", D_MODEL)),
            TensorSpec("attention_mask", "int64", (1, "tokens")))


class TextGraph(nn.Module):
    """What ``lqvg_text.onnx`` holds: :meth:`LQVG.encode_text`."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model.encode_text(input_ids, attention_mask)


class GroundingGraph(nn.Module):
    """What ``lqvg_grounding.onnx`` holds: :meth:`LQVG.ground`."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image, text_features, attention_mask):
        return self.model.ground(image, text_features, attention_mask)


def check_options(image_size, max_tokens, text_layers, random_weights):
    if image_size not in IMAGE_SIZES:
        raise ParameterError(f"image size {image_size} is not supported: LQVG is exported at "
                             f"{' or '.join(map(str, IMAGE_SIZES))} (its checkpoints' letterbox squares)")
    if not 2 <= max_tokens <= text.MAX_TOKENS:
        raise ParameterError(f"max tokens must be 2..{text.MAX_TOKENS} (<s> and </s> included), got {max_tokens}")
    if not 1 <= text_layers <= text.LAYERS:
        raise ParameterError(f"text layers must be 1..{text.LAYERS}, got {text_layers}")
    if text_layers != text.LAYERS and not random_weights:
        raise ParameterError("fewer text layers is a test configuration: it exists with --random-weights only")


def build_lqvg(image_size=800, checkpoint=None, random_weights=False, seed=0, text_layers=text.LAYERS):
    """Our LQVG in eval mode, and the weights record for the manifest.

    Either an official ``checkpoint`` (strictly loaded) or, when asked,
    seeded random weights; never a silent mix.
    """
    if random_weights == (checkpoint is not None):
        raise ParameterError("give exactly one of --checkpoint PATH or --random-weights")
    if random_weights:
        torch.manual_seed(seed)
        return LQVG(Config(image_size, text_layers)).eval(), {"random": True, "seed": seed}
    state = read_checkpoint(checkpoint)
    model = load_checkpoint_state(LQVG(Config(image_size, text_layers)), state, f"checkpoint {checkpoint}")
    return model.eval(), {"random": False, "checkpoint": file_record(checkpoint)}


def example_inputs(tokenizer, image_size, max_tokens):
    """The export-time check's inputs: a letterboxed synthetic image, the sample phrase, a full-length id row."""
    rng = np.random.default_rng(0)
    image = rt.letterbox_image(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), image_size, LETTERBOX).tensor
    ids = np.array([rt.truncate(tokenizer.encode(rt.caption(SAMPLE_PHRASE)).ids, max_tokens,
                                SPECIAL_TOKENS["</s>"])], np.int64)
    longest = rng.integers(4, tokenizer.get_vocab_size(), (1, max_tokens))
    longest[0, 0], longest[0, -1] = SPECIAL_TOKENS["<s>"], SPECIAL_TOKENS["</s>"]
    return image, ids, longest


def export_lqvg(out, tokenizer, checkpoint=None, random_weights=False, seed=0, image_size=800,
                max_tokens=DEFAULT_MAX_TOKENS, text_layers=text.LAYERS, simplify=True):
    """Export LQVG's two graphs and the tokenizer into the model set ``out``; checked before they land.

    ``tokenizer`` is the folder of roberta-base's files; ``None`` is allowed
    with random weights only, and then a stand-in byte-level tokenizer is used.
    """
    check_options(image_size, max_tokens, text_layers, random_weights)
    if tokenizer is None and not random_weights:
        raise TokenizerError("--tokenizer DIR (roberta-base's tokenizer files) is needed with a checkpoint")
    tok = load_tokenizer(tokenizer) if tokenizer is not None else standin_tokenizer()
    model, weights = build_lqvg(image_size, checkpoint, random_weights, seed, text_layers)
    source = "roberta-base files" if tokenizer is not None else "stand-in byte-level tokenizer (random weights)"
    return write_modelset(out, model, tok, weights, max_tokens, simplify, tokenizer_source=source)


def write_modelset(out, model, tokenizer, weights, max_tokens=DEFAULT_MAX_TOKENS, simplify=True,
                   tokenizer_source="roberta-base files"):
    """Export a built :class:`LQVG` (weights described by ``weights``) with its checked ``tokenizer``."""
    image_size = model.config.image_size
    text_graph, grounding_graph = TextGraph(model).eval(), GroundingGraph(model).eval()
    image, ids, longest = example_inputs(tokenizer, image_size, max_tokens)
    text_feeds = [{"input_ids": i, "attention_mask": np.ones_like(i)} for i in (ids, longest)]
    with torch.no_grad():
        features = text_graph(torch.from_numpy(ids), torch.from_numpy(text_feeds[0]["attention_mask"])).numpy()
    inputs = grounding_inputs(image_size)
    ground_feeds = {"image": image, "text_features": features, "attention_mask": text_feeds[0]["attention_mask"]}
    graphs = [GraphExport(rt.TEXT_GRAPH, text_graph, TEXT_INPUTS, TEXT_OUTPUTS, text_feeds, TOLERANCES),
              GraphExport(rt.GROUNDING_GRAPH, grounding_graph, inputs, GROUNDING_OUTPUTS, [ground_feeds], TOLERANCES)]

    def describe(provenance):
        return LqvgComponent(image_size, max_tokens, text.VOCAB_SIZE, model.config.text_layers, rt.CAPTION_RULE,
                             dict(SPECIAL_TOKENS), LETTERBOX, tokenizer_source, provenance)

    return export_component(out, rt.COMPONENT, graphs, describe, weights=weights, packages=("tokenizers",),
                            files={"tokenizer": (modelset.TOKENIZER, lambda path: tokenizer.save(str(path)))},
                            simplify=simplify)
