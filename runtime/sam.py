"""SAM in the runtime: SamPredictor's pre/post-processing in numpy, and the two graphs.

Preprocessing is segment-anything's: resize the longest side to the model
set's image size (1024) with
Pillow's bilinear filter (what ``ResizeLongestSide.apply_image`` does through
torchvision), normalise with the pixel mean/std, pad bottom/right with zeros.
Postprocessing: bilinear (half-pixel) upsampling of the 256x256 logits to
1024, crop the unpadded part, resize to the original size, threshold at 0.
"""
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from .errors import ImageError, ParameterError, PointError

LOW_RES = 256
#: label codes of the decoder graph's points
PAD, NEGATIVE, POSITIVE, BOX_TL, BOX_BR = -1, 0, 1, 2, 3


@dataclass(frozen=True)
class SamTransform:
    """Original size, the resized (unpadded) size and the square it is padded to; maps coordinates between them."""

    original_size: tuple
    input_size: tuple
    size: int

    @classmethod
    def for_image(cls, height, width, size):
        scale = size / max(height, width)
        return cls((height, width), (int(height * scale + 0.5), int(width * scale + 0.5)), size)

    def check(self):
        """Refuse (ImageError) an image so elongated that the resize would give it a side of 0 pixels."""
        if min(self.input_size) < 1:
            h, w = self.original_size
            raise ImageError(f"a {w} x {h} image is too elongated for SAM: resized to {self.size} px, one side "
                             f"would be 0 pixels")
        return self

    def to_input(self, xy):
        """Original-pixel (x, y) coordinates -> the 1024 input frame (float64 math, as SamPredictor)."""
        xy = np.array(xy, dtype=np.float64)
        xy[..., 0] *= self.input_size[1] / self.original_size[1]
        xy[..., 1] *= self.input_size[0] / self.original_size[0]
        return xy


def preprocess(image, meta, out=None):
    """HxWx3 uint8 RGB -> (1 x 3 x S x S float32, SamTransform), S and normalisation from ``meta`` (SamComponent)."""
    transform = SamTransform.for_image(*image.shape[:2], meta.image_size).check()
    h, w = transform.input_size
    resized = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
    if out is None:
        out = np.empty((1, 3, meta.image_size, meta.image_size), np.float32)
    out[:, :, h:, :] = 0
    out[:, :, :h, w:] = 0
    chw = out[0, :, :h, :w]
    np.copyto(chw, resized.transpose(2, 0, 1), casting="unsafe")
    chw -= np.asarray(meta.pixel_mean, np.float32)[:, None, None]
    chw /= np.asarray(meta.pixel_std, np.float32)[:, None, None]
    return out, transform


def upscale_logits(low_res, transform, full=None, out=None):
    """One 256x256 logit map -> original-size logits, as ``Sam.postprocess_masks``.

    ``full`` (S x S) and ``out`` (original size) float32 buffers are written
    into when given, so a caller can reuse them.
    """
    h, w = transform.input_size
    oh, ow = transform.original_size
    full = cv2.resize(low_res, (transform.size, transform.size), dst=full, interpolation=cv2.INTER_LINEAR)
    return cv2.resize(full[:h, :w], (ow, oh), dst=out, interpolation=cv2.INTER_LINEAR)


def encode_prompts(transform, boxes=None, points=None, labels=None):
    """Boxes [N,4] and points [N,K,2] + labels [N,K] (original pixels) -> decoder coords and labels.

    Each prompt is its points then its box corners; a prompt without a box gets
    one padding point, exactly as SamPredictor's prompt encoder does.
    """
    if boxes is None and points is None:
        raise ParameterError("a SAM prompt needs a box, points, or both")
    n = len(boxes) if boxes is not None else len(points)
    parts_xy, parts_lab = [], []
    if points is not None:
        points = np.asarray(points, np.float64)
        labels = np.asarray(labels if labels is not None else np.ones(points.shape[:2]), np.float64)
        if points.ndim != 3 or points.shape[0] != n or points.shape[2] != 2 or labels.shape != points.shape[:2]:
            raise PointError(f"points must be [N={n}, K, 2] with labels [N, K]; got {points.shape} and {labels.shape}")
        if not np.isin(labels, (NEGATIVE, POSITIVE)).all():
            raise PointError("point labels must be 1 (foreground) or 0 (background)")
        parts_xy.append(transform.to_input(points))
        parts_lab.append(labels)
    if boxes is not None:
        corners = transform.to_input(np.asarray(boxes, np.float64).reshape(n, 2, 2))
        parts_xy.append(corners)
        parts_lab.append(np.tile([BOX_TL, BOX_BR], (n, 1)))
    else:
        parts_xy.append(np.zeros((n, 1, 2)))
        parts_lab.append(np.full((n, 1), PAD))
    return (np.concatenate(parts_xy, axis=1).astype(np.float32),
            np.concatenate(parts_lab, axis=1).astype(np.float32))


class SamEncoder:
    """The image-encoder graph plus preprocessing; owns its input buffer."""

    def __init__(self, runner, meta):
        self.runner, self.meta = runner, meta
        self._input = np.empty((1, 3, meta.image_size, meta.image_size), np.float32)

    def __call__(self, image):
        """Embed an RGB uint8 image; returns ``(embedding copy, SamTransform)``."""
        tensor, transform = preprocess(image, self.meta, out=self._input)
        return self.runner.run({"image": tensor})["image_embeddings"].copy(), transform


class SamDecoder:
    """The prompt-encoder + mask-decoder graph: many prompts per call."""

    def __init__(self, runner):
        self.runner = runner
        self._no_mask = {}

    def __call__(self, embedding, coords, labels, mask_input=None):
        """Decoder inputs -> ``(low_res_masks [N,4,256,256], iou_predictions [N,4])`` (runner buffers)."""
        n = coords.shape[0]
        if mask_input is None:
            mask_input = self._no_mask.get(n)
            if mask_input is None:
                mask_input = self._no_mask[n] = np.zeros((n, 1, LOW_RES, LOW_RES), np.float32)
            has_mask = np.zeros(1, np.float32)
        else:
            mask_input = np.ascontiguousarray(mask_input, np.float32).reshape(n, 1, LOW_RES, LOW_RES)
            has_mask = np.ones(1, np.float32)
        out = self.runner.run({"image_embeddings": embedding, "point_coords": coords, "point_labels": labels,
                               "mask_input": mask_input, "has_mask_input": has_mask})
        return out["low_res_masks"], out["iou_predictions"]


def select_masks(scores, multimask):
    """Index of the mask each prompt keeps: token 0, or the best-scored of tokens 1..3."""
    if not multimask:
        return np.zeros(len(scores), np.intp)
    return 1 + np.argmax(scores[:, 1:], axis=1)


@dataclass(frozen=True, eq=False)
class Encoding:
    """What the encoder computed for one image: the embedding and the transform back to its pixels."""

    embedding: np.ndarray
    transform: SamTransform


class SamModel:
    """A model set's SAM: ``encode`` an image once, then ``segment`` any number of prompts on it.

    Owns the upsampling buffers of the last image size, so a fixed-size video
    stream allocates nothing per query.
    """

    def __init__(self, encoder_runner, decoder_runner, meta):
        self.meta = meta
        self._encoder, self._decoder = SamEncoder(encoder_runner, meta), SamDecoder(decoder_runner)
        self._full = np.empty((meta.image_size, meta.image_size), np.float32)
        self._logits = None

    def encode(self, image: np.ndarray) -> Encoding:
        """Encode an H x W x 3 uint8 RGB image."""
        return Encoding(*self._encoder(image))

    def segment(self, encoding: Encoding, box: np.ndarray, point=None, multimask: bool = False, out=None) -> float:
        """The mask of one prompt (``box`` x1, y1, x2, y2 and an optional foreground ``point`` x, y, original
        pixels) written into ``out`` (H x W bool); returns its predicted IoU score."""
        coords, labels = encode_prompts(encoding.transform, boxes=np.asarray(box)[None],
                                        points=None if point is None else np.asarray(point)[None, None])
        low_res, scores = self._decoder(encoding.embedding, coords, labels)
        keep = select_masks(scores, multimask)[0]
        shape = encoding.transform.original_size
        if self._logits is None or self._logits.shape != shape:
            self._logits = np.empty(shape, np.float32)
        logits = upscale_logits(low_res[0, keep], encoding.transform, self._full, self._logits)
        np.greater(logits, self.meta.mask_threshold, out=out)
        return float(scores[0, keep])
