"""LQVG at run time: letterbox, tokenisation, the text and grounding graphs, the box in original pixels.

The preprocessing is the official one (``util/transforms.py:letterbox`` and
``datasets/rsvg_mm.py``), reproduced to the byte:

* the long side is scaled to the model set's square ``S`` (small images are
  upscaled) with the manifest's filter (``area``: ``cv2.INTER_AREA``); sizes
  use Python's half-to-even ``round``;
* the float half-paddings ``dw, dh`` are split as ``round(d - 0.1)`` before
  and ``round(d + 0.1)`` after, in the manifest's pad colour (officially
  (123.7, 116.3, 103.5), which uint8 stores as (124, 116, 104)); the border
  counts as image content;
* ``/255`` then the manifest's mean/std (ImageNet's), float32, NCHW.

The phrase goes through the manifest's caption rule (LQVG's: lower case,
whitespace collapsed) and is tokenised with the model set's
``tokenizer.json`` (RoBERTa: ``<s>`` ... ``</s>``). Phrases longer than the
model set's ``max_tokens`` keep their first ``max_tokens - 1`` tokens and
``</s>``, with a warning in the result. Text
features are cached per caption (LRU), so a repeated phrase runs the text
graph once. The best of the 10 queries (highest logit, no threshold) gives the
box: cx, cy, w, h of the square, back to original pixels as the official code
does it, ``(x - dw) / ratio`` with the float ``dw``, not clipped.
"""
import logging
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import List, Optional, Tuple, Union

import cv2
import numpy as np

from . import backends
from . import modelset as modelsets
from .errors import ImageError, ManifestError, ModelFileError, ParameterError, TextError
from .image import to_rgb8
from .modelset import LetterboxRule

log = logging.getLogger(__name__)

COMPONENT = "lqvg"
TEXT_GRAPH, GROUNDING_GRAPH = modelsets.COMPONENTS[COMPONENT]
#: the caption rule LQVG trains with, by the name a manifest records
CAPTION_RULE = "lower-collapse-whitespace"
#: resize filters a manifest may name for the letterbox
INTERPOLATIONS = {"area": cv2.INTER_AREA}


def caption(phrase: str) -> str:
    """LQVG's caption rule: lower case, whitespace runs collapsed to one space, no edge spaces.

    Refused (TextError): a non-string, a string that is not valid Unicode
    (a lone surrogate cannot be tokenised), and a phrase with nothing visible
    in it (only whitespace or format characters such as zero-width spaces).
    """
    if not isinstance(phrase, str):
        raise TextError(f"the phrase must be a string, got {type(phrase).__name__}")
    try:
        phrase.encode("utf-8")
    except UnicodeEncodeError as e:
        raise TextError(f"the phrase is not valid Unicode (character {e.start} is a lone surrogate "
                        f"{phrase[e.start]!r}): pass text decoded from UTF-8") from None
    text = " ".join(phrase.lower().split())
    if not any(not c.isspace() and unicodedata.category(c) != "Cf" for c in text):
        raise TextError("the phrase is empty (or only whitespace and invisible characters): say what to look for")
    return text


CAPTION_RULES = {CAPTION_RULE: caption}


def truncate(ids, max_tokens: int, eos_id: int) -> list:
    """RoBERTa ids cut to ``max_tokens``: the first ``max_tokens - 1`` and ``</s>`` (``eos_id``)."""
    return list(ids) if len(ids) <= max_tokens else list(ids[:max_tokens - 1]) + [eos_id]


@dataclass(frozen=True)
class Letterbox:
    """The official letterbox of an ``height x width`` image into a ``size`` square, and its inverse."""

    size: int
    height: int
    width: int
    ratio: float
    new_width: int
    new_height: int
    dw: float
    dh: float
    top: int
    bottom: int
    left: int
    right: int

    @classmethod
    def fit(cls, height, width, size):
        ratio = float(size) / max(height, width)
        new_w, new_h = round(width * ratio), round(height * ratio)
        if new_w < 1 or new_h < 1:
            raise ImageError(f"a {width} x {height} image is too elongated to letterbox into {size} x {size} "
                             f"(one side would shrink to 0 pixels)")
        dw, dh = (size - new_w) / 2, (size - new_h) / 2
        return cls(size, height, width, ratio, new_w, new_h, dw, dh,
                   round(dh - 0.1), round(dh + 0.1), round(dw - 0.1), round(dw + 0.1))

    def apply(self, rgb, rule: LetterboxRule):
        """Resize and pad an H x W x 3 uint8 image: ``size x size x 3`` uint8."""
        resized = cv2.resize(rgb, (self.new_width, self.new_height), interpolation=_interpolation(rule))
        return cv2.copyMakeBorder(resized, self.top, self.bottom, self.left, self.right,
                                  cv2.BORDER_CONSTANT, value=rule.pad_color)

    def to_original(self, xyxy):
        """Letterboxed-pixel ``x1, y1, x2, y2`` -> original-image pixels (float dw/dh, as officially)."""
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        return ((x1 - self.dw) / self.ratio, (y1 - self.dh) / self.ratio,
                (x2 - self.dw) / self.ratio, (y2 - self.dh) / self.ratio)


@dataclass(frozen=True, eq=False)
class LetterboxedImage:
    """One image ready for the grounding graph: ``pixels`` (S x S x 3 uint8), ``tensor`` [1, 3, S, S] float32."""

    pixels: np.ndarray
    tensor: np.ndarray
    letterbox: Letterbox


def _interpolation(rule):
    if rule.interpolation not in INTERPOLATIONS:
        raise ManifestError(f"the letterbox filter {rule.interpolation!r} is unknown to this pslg "
                            f"(it knows {', '.join(INTERPOLATIONS)})")
    return INTERPOLATIONS[rule.interpolation]


def letterbox_image(image: np.ndarray, size: int, rule: LetterboxRule) -> LetterboxedImage:
    """Letterbox and normalise an image (any input :func:`~pslg.runtime.image.to_rgb8` accepts)."""
    rgb = to_rgb8(image)
    box = Letterbox.fit(rgb.shape[0], rgb.shape[1], size)
    pixels = box.apply(rgb, rule)
    mean, std = np.array(rule.pixel_mean, np.float32), np.array(rule.pixel_std, np.float32)
    x = (pixels.astype(np.float32) / np.float32(255) - mean) / std  # float32 throughout, as ToTensor + Normalize
    return LetterboxedImage(pixels, np.ascontiguousarray(x.transpose(2, 0, 1)[None]), box)


@dataclass(frozen=True, eq=False)
class TextFeatures:
    """The text graph's output for one token sequence (``caption`` is None for pre-tokenised ids)."""

    caption: object
    input_ids: np.ndarray
    attention_mask: np.ndarray
    features: np.ndarray
    truncated: bool
    warnings: tuple
    timings_ms: dict


@dataclass(eq=False)
class GroundingResult:
    """The box for a phrase with every query's raw outputs.

    ``box``: x1, y1, x2, y2 of the best query in original-image pixels (not
    clipped); ``score``: sigmoid of its logit; ``logits`` [10] and
    ``boxes_cxcywh`` [10, 4] (normalised to the letterboxed square): all
    queries, as the grounding graph gave them; ``tokens``: the ids fed to
    RoBERTa; ``timings_ms``: letterbox (when done here), tokenise, text
    (0 when cached) and grounding.
    """

    box: tuple
    score: float
    query: int
    logits: np.ndarray
    boxes_cxcywh: np.ndarray
    phrase: object
    caption: object
    tokens: list
    truncated: bool
    text_cached: bool
    warnings: list = field(default_factory=list)
    timings_ms: dict = field(default_factory=dict)

    def to_json(self):
        return {"box": [float(v) for v in self.box], "score": float(self.score), "query": int(self.query),
                "logits": self.logits.tolist(), "boxes_cxcywh": self.boxes_cxcywh.tolist(),
                "phrase": self.phrase, "caption": self.caption, "tokens": list(self.tokens),
                "truncated": self.truncated, "text_cached": self.text_cached, "warnings": list(self.warnings),
                "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()}}


def cxcywh_to_xyxy(box, size):
    """A normalised cx, cy, w, h box of the square -> x1, y1, x2, y2 in its pixels."""
    cx, cy, w, h = (float(v) for v in box)
    return np.array([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h]) * size


def _ms(t0):
    return (time.perf_counter() - t0) * 1e3


class Grounder:
    """LQVG on a model set: ``locate(image, phrase)`` -> :class:`GroundingResult`.

    ``models``: a :class:`~pslg.runtime.modelset.ModelSet` (or its folder)
    with an ``lqvg`` component; ``options``: where the graphs run.
    ``cache_size`` text features are kept (least recently used dropped; 0
    disables the cache); ``text_runs`` counts the text graph's runs.
    ``max_tokens`` is the export's, or the smaller token profile of a
    TensorRT engine that runs a graph.
    """

    def __init__(self, models, options: Optional[backends.RunnerOptions] = None, cache_size: int = 32):
        self.models = models if isinstance(models, modelsets.ModelSet) else modelsets.open(models)
        self.meta = meta = self.models.component(COMPONENT)
        if meta.caption_rule not in CAPTION_RULES:
            raise ManifestError(f"model set {self.models.path}: caption rule {meta.caption_rule!r} is unknown to "
                                f"this pslg (it knows {', '.join(CAPTION_RULES)})")
        _interpolation(meta.letterbox)
        self._caption = CAPTION_RULES[meta.caption_rule]
        self.image_size, self.max_tokens, self.vocab_size = meta.image_size, meta.max_tokens, meta.vocab_size
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ParameterError(f"cache_size must be an integer >= 0, got {cache_size!r}")
        self.cache_size, self.text_runs = cache_size, 0
        self._cache = OrderedDict()
        self._tokenizer = self._load_tokenizer()
        self._text = self._open(TEXT_GRAPH, options)
        try:
            self._grounding = self._open(GROUNDING_GRAPH, options)
        except BaseException:
            self._text.close()
            raise
        self.max_tokens = self._token_limit()

    def _open(self, graph, options):
        return backends.open_runner(self.models.graph(graph), options, self.models.engine(graph))

    def _token_limit(self):
        """The export's ``max_tokens``, or a TensorRT engine's smaller token profile."""
        limit = self.max_tokens
        for graph, runner in ((TEXT_GRAPH, self._text), (GROUNDING_GRAPH, self._grounding)):
            engine = self.models.engine(graph) if runner.backend == "tensorrt" else None
            if engine:
                limit = min(limit, engine.profile["attention_mask"].max[1])
        return limit

    def _load_tokenizer(self):
        from tokenizers import Tokenizer
        path = self.models.file("tokenizer")
        try:
            return Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises plain Exceptions for malformed files
            raise ModelFileError(f"{path} is not a tokenizers file: {e}") from None

    def check_image(self, height: int, width: int) -> None:
        """Refuse (ImageError) an image the letterbox cannot take (a side that would shrink to 0 pixels)."""
        Letterbox.fit(height, width, self.image_size)

    def prepare_image(self, image: np.ndarray) -> LetterboxedImage:
        """Letterbox + normalise an H x W x 3 uint8 RGB image once; reuse the result for several phrases."""
        return letterbox_image(image, self.image_size, self.meta.letterbox)

    def tokenize(self, phrase: str) -> Tuple[str, List[int], tuple]:
        """Caption, token ids (truncated to ``max_tokens``, keeping ``</s>``) and the warnings it raised."""
        text = self._caption(phrase)
        encoded = self._tokenizer.encode(text)
        full = encoded.ids
        ids = truncate(full, self.max_tokens, self.meta.eos_id)
        if len(ids) == len(full):
            return text, ids, ()
        kept = text[:encoded.offsets[len(ids) - 2][1]]  # up to the end of the last kept word piece (whole characters)
        note = (f"the phrase has {len(full)} tokens and this model set takes {self.max_tokens}: "
                f"it was truncated to '{kept}'")
        log.warning(note)
        return text, ids, (note,)

    def text_features(self, phrase: str) -> TextFeatures:
        """Tokenise and run the text graph, or take the cached features of the same caption."""
        return self._text_features(phrase)[0]

    def _text_features(self, phrase):
        """``(features, cached)``."""
        text = self._caption(phrase)
        hit = self._cache.get(text)
        if hit is not None:
            self._cache.move_to_end(text)
            return hit, True
        t0 = time.perf_counter()
        text, ids, notes = self.tokenize(text)
        tokenise_ms = _ms(t0)
        ids = np.array([ids], np.int64)
        features = self._run_text(ids, np.ones_like(ids), text, notes, tokenise_ms)
        if self.cache_size:
            self._cache[text] = features
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return features, False

    def encode_tokens(self, input_ids, attention_mask=None) -> TextFeatures:
        """Text features of pre-tokenised RoBERTa ids ([L] or [1, L]; mask 1 = token, default all ones); not cached."""
        ids = np.asarray(input_ids)
        ids = ids[None] if ids.ndim == 1 else ids
        if ids.ndim != 2 or ids.shape[0] != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise TextError(f"input_ids must be integers of shape [L] or [1, L], got {ids.dtype}{list(ids.shape)}")
        if not 1 <= ids.shape[1] <= self.max_tokens:
            raise TextError(f"{ids.shape[1]} token ids given; this model set takes 1 to {self.max_tokens} "
                            f"(truncate them, or export with a larger --max-tokens)")
        if ids.min() < 0 or ids.max() >= self.vocab_size:
            raise TextError(f"token ids must lie in [0, {self.vocab_size}), got {ids.min()}..{ids.max()}")
        mask = np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask)
        mask = mask[None] if mask.ndim == 1 else mask
        if mask.shape != ids.shape or not np.isin(mask, (0, 1)).all() or not mask.any():
            raise TextError(f"attention_mask must be 0/1 of the ids' shape {list(ids.shape)} with at least one 1")
        return self._run_text(ids.astype(np.int64), mask.astype(np.int64), None, ())

    def _run_text(self, ids, mask, text, notes, tokenise_ms=0.0):
        t0 = time.perf_counter()
        out = self._text.run({"input_ids": ids, "attention_mask": mask})
        self.text_runs += 1
        return TextFeatures(text, ids, mask, out["text_features"].copy(), bool(notes), notes,
                            {"tokenise": tokenise_ms, "text": _ms(t0)})

    def ground(self, image: Union[np.ndarray, LetterboxedImage], text: TextFeatures) -> GroundingResult:
        """Run the grounding graph on an image (array or :class:`LetterboxedImage`) and :class:`TextFeatures`."""
        return self._ground(image, text, None, False)

    def _ground(self, image, text, phrase, text_cached):
        if not isinstance(text, TextFeatures):
            raise ParameterError(f"text must be the TextFeatures of encode_tokens/text_features, "
                                 f"got {type(text).__name__}")
        timings = {}
        if not isinstance(image, LetterboxedImage):
            t0 = time.perf_counter()
            image = self.prepare_image(image)
            timings["letterbox"] = _ms(t0)
        if image.tensor.shape != (1, 3, self.image_size, self.image_size):
            raise ImageError(f"the image was prepared for {image.letterbox.size} px; this model set "
                             f"takes {self.image_size} px: prepare it with this Grounder")
        timings.update({k: 0.0 for k in text.timings_ms} if text_cached else text.timings_ms)
        t0 = time.perf_counter()
        out = self._grounding.run({"image": image.tensor, "text_features": text.features,
                                   "attention_mask": text.attention_mask})
        logits, boxes = out["pred_logits"][0].copy(), out["pred_boxes"][0].copy()
        timings["grounding"] = _ms(t0)
        query = int(np.argmax(logits))
        box = image.letterbox.to_original(cxcywh_to_xyxy(boxes[query], self.image_size))
        return GroundingResult(
            box=box, score=float(1 / (1 + np.exp(-float(logits[query])))), query=query, logits=logits,
            boxes_cxcywh=boxes, phrase=phrase, caption=text.caption, tokens=text.input_ids[0].tolist(),
            truncated=text.truncated, text_cached=text_cached,
            warnings=list(self.models.warnings) + list(text.warnings), timings_ms=timings)

    def locate(self, image: Union[np.ndarray, LetterboxedImage], phrase: str) -> GroundingResult:
        """The box of ``phrase`` in ``image`` (H x W x 3 uint8 RGB, or a prepared image)."""
        text, cached = self._text_features(phrase)
        return self._ground(image, text, phrase, cached)

    def locate_tokens(self, image: Union[np.ndarray, LetterboxedImage], input_ids,
                      attention_mask=None) -> GroundingResult:
        """:meth:`locate` for pre-tokenised ids (your own tokenizer, parity checks)."""
        return self.ground(image, self.encode_tokens(input_ids, attention_mask))

    def clear_cache(self):
        """Forget every cached text feature (``text_runs`` keeps counting)."""
        self._cache.clear()

    @property
    def runners(self):
        """The text and grounding graphs' runners."""
        return self._text, self._grounding

    def close(self):
        self._text.close()
        self._grounding.close()
        self.clear_cache()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
