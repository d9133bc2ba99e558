"""The PSLG pipeline as one embeddable object with an explicit lifecycle.

    with Pipeline.open("engines/demo") as p:
        p.set_image(rgb)                       # SAM encoder runs once per image
        r = p.segment(box=(x1, y1, x2, y2))    # any number of prompts after it

Thread-safety: every public method takes the pipeline's internal lock, so
two threads may share one pipeline (their calls run one at a time and never
mix images or buffers); for parallel throughput open one pipeline per thread.
"""
import threading
import time
from contextlib import contextmanager

import numpy as np

from . import modelset as modelsets
from . import sam
from .errors import ClosedError, ComponentMissing, NoImageError, ParameterError
from .image import to_rgb8
from .prompts import check_box, check_point
from .results import SegmentResult

MODES = ("box", "box+point", "full", "classical")


class Pipeline:
    """Chains the stages of a model set; open it with :meth:`open`."""

    def __init__(self, models, backend, device, threads):
        self.models = models
        self.backend = backend
        self._lock = threading.RLock()
        self._closed = False
        self._runners = []
        self.sam_meta = models.component("sam") if models.has("sam") else None
        if self.sam_meta is not None:
            self._sam_encoder = sam.SamEncoder(self._open("sam_encoder", backend, device, threads), self.sam_meta)
            self._sam_decoder = sam.SamDecoder(self._open("sam_decoder", backend, device, threads))
        self._image = None
        self.image_timings_ms = {}

    @classmethod
    def open(cls, models_dir, backend="auto", device="auto", threads=0, verify=True):
        """Open a model set and every graph in it; refuses an incomplete or mismatched set."""
        models = modelsets.open(models_dir, verify=verify)
        pipeline = cls.__new__(cls)
        try:
            pipeline.__init__(models, backend, device, threads)
        except BaseException:
            pipeline.close()
            raise
        return pipeline

    def _open(self, graph, backend, device, threads):
        runner = self.models.open_runner(graph, backend=backend, device=device, threads=threads)
        self._runners.append(runner)
        return runner

    @property
    def warnings(self):
        """Model-set warnings (random weights, ...), also copied into every result."""
        return list(self.models.warnings)

    @contextmanager
    def _state(self, need_image=True):
        with self._lock:
            if self._closed:
                raise ClosedError("this pipeline is closed; open a new one")
            if need_image and self._image is None:
                raise NoImageError("no image set: call set_image(rgb) first")
            yield

    def set_image(self, image):
        """Set the image the next queries run on; SAM encodes it once here."""
        rgb = to_rgb8(image)
        with self._state(need_image=False):
            self._image = None
            timings = {}
            if self.sam_meta is not None:
                t0 = time.perf_counter()
                self._embedding, self._transform = self._sam_encoder(rgb)
                timings["sam_encoder"] = (time.perf_counter() - t0) * 1e3
            self._image = rgb
            self.image_timings_ms = timings

    def segment(self, box=None, point=None, mode="box+point", out=None, multimask=False):
        """Segment one object in the current image from a box (and optionally a point)."""
        if mode not in MODES:
            raise ParameterError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        with self._state():
            t_start = time.perf_counter()
            image = self._image
            warnings = self.warnings
            if box is None:
                raise ParameterError("segment needs box=(x1, y1, x2, y2)")
            box = check_box(box, image.shape, warnings)
            point_xy = check_point(point, image.shape) if point is not None else None
            mask = self._mask_buffer(out, image.shape)
            timings = {}
            if self.sam_meta is None:
                raise ComponentMissing(f"model set {self.models.path} has no SAM graphs; use mode='classical'")
            t0 = time.perf_counter()
            points = None if point_xy is None or mode == "box" else point_xy[None, None]
            coords, labels = sam.encode_prompts(self._transform, boxes=box[None], points=points)
            low_res, scores = self._sam_decoder(self._embedding, coords, labels)
            keep = sam.select_masks(low_res, scores, multimask)[0]
            logits = sam.upscale_logits(low_res[0, keep], self._transform)
            np.greater(logits, self.sam_meta["mask_threshold"], out=mask)
            timings["sam_decoder"] = (time.perf_counter() - t0) * 1e3
            timings["total"] = (time.perf_counter() - t_start) * 1e3
            return SegmentResult(mask=mask, box=box, mode=mode, box_source="user",
                                 point=point_xy if points is not None else None,
                                 point_source="user" if points is not None else None,
                                 sam_score=float(scores[0, keep]), timings_ms=timings, warnings=warnings)

    @staticmethod
    def _mask_buffer(out, shape):
        if out is None:
            return np.empty(shape[:2], bool)
        if not isinstance(out, np.ndarray) or out.shape != shape[:2] or out.dtype not in (np.bool_, np.uint8):
            raise ParameterError(f"out must be a bool or uint8 array of shape {shape[:2]}")
        return out.view(bool) if out.dtype == np.uint8 else out

    def close(self):
        """Free every graph and buffer; later calls raise ClosedError. Idempotent."""
        with self._lock:
            for runner in getattr(self, "_runners", ()):
                runner.close()
            self._runners = []
            self._image = self._embedding = None
            self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
