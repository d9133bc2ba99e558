"""SAM in the runtime: each SAM family's predictor pre/post-processing in numpy, and the two graphs.

The model set's :class:`~.modelset.SamComponent` names the rules:

* ``resize="longest_side"`` (SAM, MobileSAM: ``SamPredictor``): the longest
  side is resized to the model set's image size (1024) with Pillow's
  bilinear filter on uint8 RGB (what ``ResizeLongestSide.apply_image`` does
  through torchvision), normalised with the 0..255 pixel mean/std, padded
  bottom/right with zeros; coordinates scale by resized / original size
  (float64, as ``apply_coords``). Postprocessing: bilinear (half-pixel)
  upsampling of the 256 x 256 logits to 1024, crop of the unpadded part,
  resize to the original size, threshold.
* ``resize="square"`` (SAM 2.x: ``SAM2Transforms``): each channel stretched
  to 1024 x 1024 by Pillow's bilinear filter in ``"F"`` mode, divided by 255
  in float32 (the predictor divides first; the filter is linear), then
  ImageNet mean/std. Pillow's float filter is the
  antialiased kernel torchvision's ``Resize`` uses: within 2e-6 of it after
  normalisation on the shipped images, shrinking and enlarging, where
  OpenCV's INTER_LINEAR is off by up to 0.85 when shrinking and INTER_AREA
  by up to 1.5 (marina, osbs_029, highway, soap_061, yell_road). Coordinates
  are normalised by the original size then scaled to 1024 in float32, as
  ``_prep_prompts``. Postprocessing: the logits resized straight to the
  original size (OpenCV bilinear, half-pixel: ``F.interpolate`` with
  ``align_corners=False``), threshold; no hole filling (the predictor's
  default ``max_hole_area=0``).

``prompt_layout`` orders each prompt's points as the family's prompt
encoder receives them, and ``mask_choice`` picks the mask when one is asked
for (SAM 2's dynamic multimask-via-stability rule, see :func:`choose_masks`).
"""
import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import cv2
import numpy as np
from PIL import Image

from . import checks
from .errors import BoxError, ImageError, ManifestError, ParameterError, PointError

LOW_RES = 256
#: label codes of the decoder graph's points
PAD, NEGATIVE, POSITIVE, BOX_TL, BOX_BR = -1, 0, 1, 2, 3
#: the decoder inputs every family has; a family's extra encoder outputs follow them
DECODER_INPUTS = ("image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input")


@dataclass(frozen=True)
class SamTransform:
    """Original size, the resized (unpadded) size and the square it fills; maps coordinates between them."""

    original_size: tuple
    input_size: tuple
    size: int
    resize: str = "longest_side"

    @classmethod
    def for_image(cls, height, width, size, resize="longest_side"):
        if resize == "square":
            return cls((height, width), (size, size), size, resize)
        scale = size / max(height, width)
        return cls((height, width), (int(height * scale + 0.5), int(width * scale + 0.5)), size, resize)

    def check(self):
        """Refuse (ImageError) an image so elongated that the resize would give it a side of 0 pixels."""
        if min(self.input_size) < 1:
            h, w = self.original_size
            raise ImageError(f"a {w} x {h} image is too elongated for SAM: resized to {self.size} px, one side "
                             f"would be 0 pixels")
        return self

    def to_input(self, xy):
        """Original-pixel (x, y) coordinates -> the model's input frame, in the family predictor's arithmetic."""
        if self.resize == "square":
            xy = np.array(xy, dtype=np.float32)
            xy[..., 0] /= np.float32(self.original_size[1])
            xy[..., 1] /= np.float32(self.original_size[0])
            return xy * np.float32(self.size)
        xy = np.array(xy, dtype=np.float64)
        xy[..., 0] *= self.input_size[1] / self.original_size[1]
        xy[..., 1] *= self.input_size[0] / self.original_size[0]
        return xy


def preprocess(image, meta, out=None, pool=None):
    """HxWx3 uint8 RGB -> (1 x 3 x S x S float32, SamTransform) by the rules of ``meta`` (a SamComponent).

    ``pool``: an executor whose ``map`` runs the three channels at once (Pillow's filter and numpy release the
    GIL); the result does not depend on it.
    """
    size = meta.image_size
    transform = SamTransform.for_image(*image.shape[:2], size, meta.resize).check()
    h, w = transform.input_size
    if out is None:
        out = np.empty((1, 3, size, size), np.float32)
    if meta.resize == "square":   # the filter is linear: resizing the 0..255 values first costs one pass less
        def fill(c):
            channel = Image.fromarray(np.ascontiguousarray(image[..., c])).convert("F")
            np.copyto(out[0, c], np.asarray(channel.resize((size, size), Image.BILINEAR)))
    else:
        out[:, :, h:, :] = 0
        out[:, :, :h, w:] = 0
        resized = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))

        def fill(c):
            np.copyto(out[0, c, :h, :w], resized[..., c], casting="unsafe")

    def channel(c):
        fill(c)
        plane = out[0, c, :h, :w]
        if meta.pixel_divisor != 1:
            plane /= np.float32(meta.pixel_divisor)
        plane -= np.float32(meta.pixel_mean[c])
        plane /= np.float32(meta.pixel_std[c])

    list((map if pool is None else pool.map)(channel, range(3)))
    return out, transform


def upscale_logits(low_res, transform, full=None, out=None):
    """One 256x256 logit map -> original-size logits, as the family's predictor postprocesses them.

    ``full`` (S x S, used by ``longest_side`` only) and ``out`` (original
    size) float32 buffers are written into when given, so a caller can reuse them.
    """
    oh, ow = transform.original_size
    if transform.resize == "square":
        return cv2.resize(low_res, (ow, oh), dst=out, interpolation=cv2.INTER_LINEAR)
    h, w = transform.input_size
    full = cv2.resize(low_res, (transform.size, transform.size), dst=full, interpolation=cv2.INTER_LINEAR)
    return cv2.resize(full[:h, :w], (ow, oh), dst=out, interpolation=cv2.INTER_LINEAR)


def encode_prompts(transform, boxes=None, points=None, labels=None, layout="points_then_box"):
    """Boxes [N,4] and points [N,K,2] + labels [N,K] (original pixels) -> decoder coords and labels.

    ``points_then_box`` (SamPredictor): each prompt is its points then its
    box corners, and a prompt without a box gets one padding point.
    ``box_then_points_padded`` (SAM2ImagePredictor): box corners, then the
    points, then always one padding point.
    """
    if boxes is None and points is None:
        raise ParameterError("a SAM prompt needs a box, points, or both")
    if boxes is not None:
        boxes = np.asarray(boxes, np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or not np.isfinite(boxes).all():
            raise BoxError(f"boxes must be finite x1, y1, x2, y2 rows [N, 4]; got shape {boxes.shape}")
    n = len(boxes) if boxes is not None else len(points)
    point_part = None
    if points is not None:
        points = np.asarray(points, np.float64)
        labels = np.asarray(labels if labels is not None else np.ones(points.shape[:2]), np.float64)
        if points.ndim != 3 or points.shape[0] != n or points.shape[2] != 2 or labels.shape != points.shape[:2]:
            raise PointError(f"points must be [N={n}, K, 2] with labels [N, K]; got {points.shape} and {labels.shape}")
        if not np.isin(labels, (NEGATIVE, POSITIVE)).all():
            raise PointError("point labels must be 1 (foreground) or 0 (background)")
        point_part = (transform.to_input(points), labels)
    box_part = None
    if boxes is not None:
        box_part = (transform.to_input(boxes.reshape(n, 2, 2)), np.tile([BOX_TL, BOX_BR], (n, 1)))
    pad = (np.zeros((n, 1, 2)), np.full((n, 1), PAD))
    if layout == "box_then_points_padded":
        parts = [p for p in (box_part, point_part) if p is not None] + [pad]
    else:
        parts = [p for p in (point_part, box_part) if p is not None] + ([] if box_part else [pad])
    return (np.concatenate([p[0] for p in parts], axis=1).astype(np.float32),
            np.concatenate([p[1] for p in parts], axis=1).astype(np.float32))


def decoder_feeds(features: Dict[str, np.ndarray], coords, labels, mask_input=None, meta=None, zeros=None):
    """The decoder graph's inputs for prompts on one encoded image.

    ``features``: the encoder's outputs by name (the embedding and, for
    SAM 2, ``meta.encoder_outputs``); ``mask_input`` [N, 1, 256, 256] logits
    of a previous prediction, or None. ``zeros``: a dict the no-mask input
    of each prompt count is kept in, so a caller allocates it once.
    """
    n = coords.shape[0]
    if mask_input is None:
        zeros = {} if zeros is None else zeros
        if n not in zeros:
            zeros[n] = np.zeros((n, 1, LOW_RES, LOW_RES), np.float32)
        mask_input, has_mask = zeros[n], np.zeros(1, np.float32)
    else:
        mask_input = np.ascontiguousarray(mask_input, np.float32).reshape(n, 1, LOW_RES, LOW_RES)
        has_mask = np.ones(1, np.float32)
    feeds = {"image_embeddings": features["image_embeddings"], "point_coords": coords, "point_labels": labels,
             "mask_input": mask_input, "has_mask_input": has_mask}
    for name in (meta.encoder_outputs if meta is not None else ()):
        feeds[name] = features[name]
    return feeds


class SamEncoder:
    """The image-encoder graph plus preprocessing; owns its input buffer."""

    def __init__(self, runner, meta):
        self.runner, self.meta = runner, meta
        self._input = np.empty((1, 3, meta.image_size, meta.image_size), np.float32)
        self._pool, self._pool_pid = None, None

    def _threads(self):
        """This process's threads for preprocessing's three channels (None on one core), made on first use; a
        forked child makes its own, since its parent's threads did not come along. They end with the encoder."""
        if (os.cpu_count() or 1) < 2:
            return None
        if self._pool_pid != os.getpid():
            self._pool, self._pool_pid = ThreadPoolExecutor(3, thread_name_prefix="pslg-preprocess"), os.getpid()
            weakref.finalize(self, self._pool.shutdown, wait=False)
        return self._pool

    def __call__(self, image):
        """Encode an RGB uint8 image; returns ``({output: array copy}, SamTransform)``."""
        tensor, transform = preprocess(image, self.meta, out=self._input, pool=self._threads())
        outputs = self.runner.run({"image": tensor})
        return {k: outputs[k].copy() for k in ("image_embeddings",) + self.meta.encoder_outputs}, transform


class SamDecoder:
    """The prompt-encoder + mask-decoder graph: many prompts per call."""

    def __init__(self, runner, meta=None):
        self.runner, self.meta = runner, meta
        self._no_mask = {}

    def __call__(self, features, coords, labels, mask_input=None):
        """Decoder inputs -> ``(low_res_masks [N,4,256,256], iou_predictions [N,4])`` (runner buffers).

        ``features``: the encoder's outputs by name.
        """
        out = self.runner.run(decoder_feeds(features, coords, labels, mask_input, self.meta, self._no_mask))
        return out["low_res_masks"], out["iou_predictions"]


def stability_scores(low_res, delta):
    """IoU of the logits above ``+delta`` and above ``-delta`` per map ([N, 256, 256] -> [N] float32), as SAM 2."""
    flat = low_res.reshape(len(low_res), -1)
    inter = np.count_nonzero(flat > delta, axis=1).astype(np.float32)
    union = np.count_nonzero(flat > -delta, axis=1).astype(np.float32)
    return np.where(union > 0, inter / np.maximum(union, np.float32(1)), np.float32(1))


def choose_masks(low_res, scores, multimask, meta=None):
    """Index of the mask token each prompt keeps.

    ``multimask``: the best-scored of tokens 1..3. Else token 0, except
    under ``mask_choice="stability"`` (SAM 2's dynamic multimask): a prompt
    whose token-0 logits have a stability score below the threshold keeps
    the best of tokens 1..3 instead.
    """
    best = 1 + np.argmax(scores[:, 1:], axis=1)
    if multimask:
        return best
    keep = np.zeros(len(scores), np.intp)
    if meta is not None and meta.mask_choice == "stability":
        stable = stability_scores(low_res[:, 0], meta.stability_delta) >= np.float32(meta.stability_threshold)
        keep = np.where(stable, keep, best)
    return keep


@dataclass(frozen=True, eq=False)
class Encoding:
    """What the encoder computed for one image: its outputs by name and the transform back to its pixels."""

    features: Dict[str, np.ndarray]
    transform: SamTransform

    @property
    def embedding(self) -> np.ndarray:
        """The [1, 256, 64, 64] image embedding."""
        return self.features["image_embeddings"]


class SamModel:
    """A model set's SAM, of any family: ``encode`` an image once, then ``segment`` any number of prompts on it.

    Owns the upsampling buffers of the last image size, so a fixed-size video
    stream allocates nothing per query. Those buffers and the runners' are
    reused, so one ``SamModel`` serves one thread at a time (``Pipeline``
    holds a lock around it).
    """

    def __init__(self, encoder_runner, decoder_runner, meta):
        want = DECODER_INPUTS + tuple(meta.encoder_outputs)
        have = tuple(t.name for t in decoder_runner.spec.inputs)
        produced = {t.name for t in encoder_runner.spec.outputs}
        if set(have) != set(want) or not set(meta.encoder_outputs) <= produced:
            raise ManifestError(f"the {meta.family} SAM component needs a decoder taking {', '.join(want)} from "
                                f"an encoder giving {', '.join(want[:1] + tuple(meta.encoder_outputs))}; the "
                                f"graphs take {', '.join(have)} and give {', '.join(sorted(produced))}")
        self.meta = meta
        self._encoder, self._decoder = SamEncoder(encoder_runner, meta), SamDecoder(decoder_runner, meta)
        self._full = np.empty((meta.image_size, meta.image_size), np.float32)
        self._logits = None

    def encode(self, image: np.ndarray) -> Encoding:
        """Encode an H x W x 3 uint8 RGB image."""
        return Encoding(*self._encoder(image))

    def segment(self, encoding: Encoding, box: np.ndarray, point=None, multimask: bool = False, out=None) -> float:
        """The mask of one prompt (``box`` x1, y1, x2, y2 and an optional foreground ``point`` x, y, original
        pixels) written into ``out`` (H x W bool); returns its predicted IoU score."""
        masks = None if out is None else out[None]
        _, scores = self.segment_many(encoding, np.asarray(box, np.float64)[None],
                                      None if point is None else np.asarray(point, np.float64)[None, None],
                                      multimask=multimask, out=masks)
        return float(scores[0])

    def segment_many(self, encoding: Encoding, boxes: Optional[np.ndarray] = None,
                     points: Optional[np.ndarray] = None, labels: Optional[np.ndarray] = None,
                     multimask: bool = False, out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
        """N prompts in one decoder call: ``boxes`` [N, 4] and/or ``points`` [N, K, 2] with ``labels`` [N, K]
        (1 foreground, 0 background; default all 1), original pixels.

        Every prompt has the same K points: prompts with different point
        counts go in separate calls, since padding one changes its mask.
        Returns ``(masks [N, H, W] bool, scores [N] float32)``; ``masks`` is
        ``out`` when given (C-contiguous bool [N, H, W]).
        """
        transform = encoding.transform
        coords, codes = encode_prompts(transform, boxes, points, labels, self.meta.prompt_layout)
        n, shape = coords.shape[0], transform.original_size
        out = checks.out_array("out", out, (n,) + shape, (np.bool_,))
        low_res, scores = self._decoder(encoding.features, coords, codes)
        keep = choose_masks(low_res, scores, multimask, self.meta)
        if self._logits is None or self._logits.shape != shape:
            self._logits = np.empty(shape, np.float32)
        for i, k in enumerate(keep):
            logits = upscale_logits(low_res[i, k], transform, self._full, self._logits)
            np.greater(logits, self.meta.mask_threshold, out=out[i])
        return out, scores[np.arange(n), keep].astype(np.float32)
