"""The PSLG pipeline as one embeddable object with an explicit lifecycle.

    with Pipeline.open("engines/demo") as p:
        p.set_image(rgb)                           # the pipeline keeps its own copy
        r = p.segment(text="the white boat")       # SAM encodes the image once, on its first SAM query
        r.mask, r.box, r.timings_ms

Modes (the paper's ablations): ``box`` (SAM on the box), ``box+point`` (plus
the CFPG point), ``full`` (plus MBO refinement), and ``classical`` (CFPG point
and MBO from the box alone, no SAM: what runs without a SAM checkpoint).

Ownership: ``set_image`` copies the pixels into a buffer the pipeline owns
(reused while the size stays, so a camera loop allocates nothing), so the
caller may overwrite its frame at once. Threads: each thread has its own
current image; every public method holds the pipeline's lock, and a query
answers for the image its own thread set (or the :class:`ImageHandle` /
array it passes), never for another thread's. A handle is valid until its
thread sets another image; a stale handle is refused with StaleImageError.
"""
import itertools
import threading
import time
from contextlib import contextmanager
from typing import Optional, Union

import cv2
import numpy as np

from . import backends, checks, kernels
from . import modelset as modelsets
from . import sam
from .backends import RunnerOptions
from .cfpg import foreground_point
from .errors import ClosedError, ComponentMissing, ImageError, NoImageError, ParameterError, StaleImageError
from .image import to_rgb8
from .mbo import Workspace, refine
from .prompts import check_box, check_point
from .results import SegmentResult

MODES = ("box", "box+point", "full", "classical")
SAM_MODES = ("box", "box+point", "full")
#: default bound on an image's pixels (36 Mpx, e.g. 7360 x 4912 or 6000 x 6000); ``max_image_pixels`` changes it
MAX_IMAGE_PIXELS = 36_000_000
_keys = itertools.count(1)


def _ms(t0):
    return (time.perf_counter() - t0) * 1e3


class ImageHandle:
    """The image a query answers for: returned by :meth:`Pipeline.set_image`, carried by every result.

    ``shape`` is (H, W). ``current`` is False once the thread that set it has
    set another image (its buffer now holds other pixels).
    """

    __slots__ = ("_slot", "_key", "shape")

    def __init__(self, slot, key, shape):
        self._slot, self._key, self.shape = slot, key, shape

    @property
    def current(self) -> bool:
        return self._slot.key == self._key

    def __repr__(self):
        return f"ImageHandle({self.shape[1]}x{self.shape[0]}, {'current' if self.current else 'stale'})"


class _Slot:
    """One thread's image: the pipeline's copy of its pixels and valid-data mask, and its per-image timings."""

    def __init__(self):
        self.key, self.pixels, self.valid, self.timings = 0, None, None, {}

    def store(self, rgb, valid):
        if self.pixels is None or self.pixels.shape != rgb.shape:
            self.pixels = np.empty_like(rgb)
        np.copyto(self.pixels, rgb)
        if valid is None:
            self.valid = None
        else:
            if self.valid is None or self.valid.shape != valid.shape:
                self.valid = np.empty(valid.shape, bool)
            np.not_equal(valid, 0, out=self.valid)
        self.key, self.timings = next(_keys), {}
        return ImageHandle(self, self.key, rgb.shape[:2])


class Pipeline:
    """Chains the stages of a model set. Open it with :meth:`open`; close it (or use ``with``)."""

    def __init__(self, models: modelsets.ModelSet, runner: Optional[RunnerOptions] = None, text_cache: int = 32,
                 warmup: bool = True, max_image_pixels: int = MAX_IMAGE_PIXELS, kernel_threads: Optional[int] = None):
        if not isinstance(models, modelsets.ModelSet):
            raise ParameterError(f"models must be an opened ModelSet (use Pipeline.open(folder)), got "
                                 f"{type(models).__name__}")
        if runner is not None and not isinstance(runner, RunnerOptions):
            raise ParameterError(f"runner must be a RunnerOptions, got {type(runner).__name__}")
        checks.count("text_cache", text_cache, 0)
        checks.flag("warmup", warmup)
        self.max_image_pixels = checks.count("max_image_pixels", max_image_pixels, 1)
        if kernel_threads is not None:
            kernels.set_threads(kernel_threads)
            cv2.setNumThreads(kernel_threads)
        self.models = models
        self.runner_options = runner or RunnerOptions()
        self._lock = threading.RLock()
        self._local = threading.local()
        self._runners = []
        self._closed = False
        self._per_image = {}     # "sam_encoder" / "letterbox" -> (key, value) for the one image it was computed for
        self._mbo_workspace = Workspace()
        self.open_timings_ms = {}
        try:
            self.sam_meta = models.sam
            self._sam = None
            if self.sam_meta is not None:
                self._sam = sam.SamModel(self._open("sam_encoder"), self._open("sam_decoder"), self.sam_meta)
            self.grounder = None
            if models.has("lqvg"):
                from .grounding import Grounder
                self.grounder = Grounder(models, self.runner_options, cache_size=text_cache)
                self._runners += [self.grounder]
            if warmup:
                self.open_timings_ms = self._warmup()
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, models_dir, runner: Optional[RunnerOptions] = None, *, text_cache: int = 32, warmup: bool = True,
             verify: bool = True, max_image_pixels: int = MAX_IMAGE_PIXELS,
             kernel_threads: Optional[int] = None) -> "Pipeline":
        """Open a model set and load every graph and kernel; refuses an incomplete or mismatched set.

        ``runner``: where the graphs run (:class:`~pslg.runtime.backends.RunnerOptions`:
        backend, device, threads, cuda_graph; default ``auto`` everywhere).
        ``text_cache``: phrases whose text features are kept. ``warmup`` runs
        every stage once on a synthetic image so the first real query pays no
        compilation or lazy initialisation. ``verify`` hashes every file
        against the manifest. ``max_image_pixels``: larger images are refused
        (ImageError) rather than filling memory; the pipeline's buffers follow
        the current image's size and are released when it shrinks.
        ``kernel_threads``: threads of the CPU stages (CFPG, MBO) for the
        whole process: the Numba kernels' (``kernels.set_threads``; default:
        as set, 1 unless changed) and OpenCV's (``cv2.setNumThreads``;
        default: as set, OpenCV's own choice unless changed), so a worker
        given one CPU uses one.
        """
        checks.flag("verify", verify)
        return cls(modelsets.open(models_dir, verify=verify), runner, text_cache, warmup, max_image_pixels,
                   kernel_threads)

    def _open(self, graph):
        runner = backends.open_runner(self.models.graph(graph), self.runner_options, self.models.engine(graph))
        self._runners.append(runner)
        return runner

    def _warmup(self):
        timings = {"kernels": kernels.warmup() * 1e3}
        t0 = time.perf_counter()
        image = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
        modes = ("full", "classical") if self.sam_meta is not None else ("classical",)
        for mode in modes:
            self.segment(box=(20, 20, 100, 80), mode=mode, image=image)
        if self.grounder is not None:
            self.segment(text="warm-up", mode=modes[-1], image=image)
            self.grounder.clear_cache()
        self._local.slot = None
        self._per_image = {}
        timings["graphs"] = _ms(t0)
        return timings

    @property
    def backends(self):
        """``{graph: backend}`` of every graph this pipeline runs."""
        runners = [r for r in self._runners if r is not self.grounder]
        runners += list(self.grounder.runners) if self.grounder is not None else []
        return {r.spec.name: r.backend for r in runners}

    @property
    def warnings(self):
        """Model-set warnings (random weights, ...), also copied into every result."""
        return list(self.models.warnings)

    @property
    def image_timings_ms(self):
        """Per-image work done so far for this thread's current image (``sam_encoder``, ``letterbox``)."""
        slot = getattr(self._local, "slot", None)
        return dict(slot.timings) if slot is not None else {}

    @contextmanager
    def _state(self):
        with self._lock:
            if self._closed:
                raise ClosedError("this pipeline is closed; open a new one")
            yield

    # ---------------------------------------------------------------- images

    def _checked_image(self, image, valid):
        """``image`` as RGB uint8 that every stage can take, and ``valid`` as a mask of its shape (or None)."""
        rgb = to_rgb8(image)
        h, w = rgb.shape[:2]
        if h * w > self.max_image_pixels:
            raise ImageError(f"a {w} x {h} image has {h * w} pixels, over this pipeline's max_image_pixels "
                             f"({self.max_image_pixels}); downscale it, or open the pipeline with a larger bound")
        if self._sam is not None:
            sam.SamTransform.for_image(h, w, self.sam_meta.image_size, self.sam_meta.resize).check()
        if self.grounder is not None:
            self.grounder.check_image(h, w)
        if valid is not None:
            if not isinstance(valid, np.ndarray) or valid.shape != (h, w) or valid.dtype.kind not in "biu":
                raise ImageError(f"valid must be a bool (or integer) array of the image's shape {(h, w)}, got "
                                 f"{type(valid).__name__} {getattr(valid, 'shape', '')}")
            if not valid.any():
                raise ImageError("valid marks no pixel of the image as data (it is all nodata)")
        return rgb, valid

    def _slot(self):
        slot = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = _Slot()
        return slot

    def set_image(self, image: np.ndarray, valid: Optional[np.ndarray] = None) -> ImageHandle:
        """Set the image this thread's next queries run on; returns its :class:`ImageHandle`.

        ``image``: H x W x 3 uint8 RGB (or what :func:`~pslg.runtime.image.to_rgb8`
        converts); the pipeline copies it, so the caller may reuse its buffer.
        ``valid``: optional H x W bool, True where the image has data (a
        raster's nodata is False): nodata stays out of CFPG's clustering and
        MBO's colour models and is never part of a mask. Nothing is computed
        yet: SAM encodes on the image's first SAM-mode query, LQVG letterboxes
        on its first text query, each once. A refused image leaves the
        previous one in place.
        """
        with self._state():
            rgb, valid = self._checked_image(image, valid)
            return self._slot().store(rgb, valid)

    def _resolve(self, image):
        """The slot and key a query runs on: an explicit handle or array, else this thread's current image."""
        if isinstance(image, ImageHandle):
            if not image.current:
                raise StaleImageError(f"{image!r} was replaced by a later set_image of its thread; set it again")
            return image._slot, image._key
        if image is not None:
            if not isinstance(image, np.ndarray):
                raise ImageError(f"image must be an ImageHandle from set_image or a numpy array, got "
                                 f"{type(image).__name__}")
            handle = self._slot().store(*self._checked_image(image, None))
            return handle._slot, handle._key
        slot = getattr(self._local, "slot", None)
        if slot is None or slot.pixels is None:
            raise NoImageError("no image set in this thread: call set_image(rgb) first, or pass image=")
        return slot, slot.key

    def _per_image_work(self, stage, compute, slot, key, timings):
        """``compute(pixels)`` of the slot's image (the SAM encoding, the letterbox), done once per image.

        One result per stage is kept, for the last image it was computed for;
        the time it took goes into this query's and the image's timings.
        """
        held = self._per_image.get(stage)
        if held is None or held[0] != key:
            t0 = time.perf_counter()
            held = self._per_image[stage] = (key, compute(slot.pixels))
            timings[stage] = slot.timings[stage] = _ms(t0)
        return held[1]

    # ---------------------------------------------------------------- queries

    def locate(self, text: str, image: Union[ImageHandle, np.ndarray, None] = None):
        """The LQVG box for ``text`` (a :class:`~pslg.runtime.grounding.GroundingResult`, original pixels).

        ``image``: the handle or array to answer for (default: this thread's current image).
        """
        with self._state():
            slot, key = self._resolve(image)
            return self._locate(text, slot, key, {})

    def _locate(self, text, slot, key, timings):
        if self.grounder is None:
            raise ComponentMissing(f"model set {self.models.path} has no LQVG graphs: pass box=... instead of text, "
                                   f"or export LQVG into it ('pslg export lqvg --out {self.models.path}')")
        return self.grounder.locate(self._per_image_work("letterbox", self.grounder.prepare_image, slot, key, timings),
                                    text)

    def segment(self, text: Optional[str] = None, box=None, point=None, mode: str = "full",
                out: Optional[np.ndarray] = None, multimask: bool = False, seed: int = 0,
                image: Union[ImageHandle, np.ndarray, None] = None) -> SegmentResult:
        """Segment one object; returns a :class:`~pslg.runtime.results.SegmentResult`.

        ``text``: the phrase LQVG grounds (skipped when ``box`` is given: the
        box wins and the phrase is kept as the label). ``box``: x1, y1, x2, y2
        original pixels (floats, exclusive right/bottom edge). ``point``: x, y
        of a foreground point instead of CFPG's. ``mode``: one of
        :data:`MODES`. ``out``: a caller-owned, writable, C-contiguous H x W
        bool or uint8 array that receives the mask (else a new H x W bool
        array). ``multimask``: SAM predicts three masks and the best-scored is
        kept. ``seed``: CFPG's and MBO's k-means seed (0 <= seed < 2**63).
        ``image``: the :class:`ImageHandle` or H x W x 3 array to answer for
        (default: this thread's current image); ``result.image`` names it.
        """
        with self._state():
            checks.choice("mode", mode, MODES)
            checks.flag("multimask", multimask)
            checks.seed("seed", seed)
            if text is None and box is None:
                raise ParameterError("segment needs text='...' or box=(x1, y1, x2, y2)")
            slot, key = self._resolve(image)
            shape = slot.pixels.shape[:2]
            mask = checks.out_array("out", out, shape, (np.bool_, np.uint8)).view(bool)
            user_box = None if box is None else check_box(box, shape)
            user_point = None if point is None else check_point(point, shape)
            return self._segment(slot, key, text, user_box, user_point, mode, mask, multimask, seed)

    def _segment(self, slot, key, text, box, point, mode, mask, multimask, seed):
        t_start = time.perf_counter()
        used = ({"sam"} if mode in SAM_MODES else set()) | ({"lqvg"} if box is None else set())
        image, valid, warnings, timings = slot.pixels, slot.valid, self.models.warnings_for(sorted(used)), {}
        grounding = None
        if box is None:
            grounding = self._locate(text, slot, key, timings)
            timings.update({"text_encoder" if k == "text" else k: v for k, v in grounding.timings_ms.items()})
            warnings += [w for w in grounding.warnings if w not in warnings]
        box = check_box(grounding.box if grounding else box, image.shape, warnings)
        point_xy, point_source, cfpg = None, None, None
        if point is not None and mode == "box":
            warnings.append("mode 'box' uses no point: the given point was ignored")
        elif point is not None:
            point_xy, point_source = point, "user"
        elif mode != "box":
            t0 = time.perf_counter()
            cfpg = foreground_point(image, box, seed=seed, valid=valid)
            timings["cfpg"] = _ms(t0)
            point_xy, point_source = np.asarray(cfpg.point, np.float64), "cfpg"
            warnings += cfpg.warnings
        sam_score = None
        if mode in SAM_MODES:
            sam_score = self._decode(slot, key, box, point_xy if mode != "box" else None, mask, multimask, timings)
        mbo = None
        if mode in ("full", "classical"):
            t0 = time.perf_counter()
            mbo = refine(image, mask if mode == "full" else None, box, point=point_xy, seed=seed,
                         out=mask, workspace=self._mbo_workspace, valid=valid)   # SAM's mask refined in place
            timings["mbo"] = _ms(t0)
            warnings += mbo.warnings
        if valid is not None:
            np.logical_and(mask, valid, out=mask)
        timings["total"] = _ms(t_start)
        return SegmentResult(mask=mask, box=box, mode=mode, box_source="text" if grounding else "user",
                             phrase=text, point=point_xy, point_source=point_source, sam_score=sam_score,
                             grounding=grounding, cfpg=cfpg, mbo=mbo, timings_ms=timings, warnings=warnings,
                             image=ImageHandle(slot, key, image.shape[:2]))

    def _decode(self, slot, key, box, point, target, multimask, timings):
        if self._sam is None:
            raise ComponentMissing(f"model set {self.models.path} has no SAM graphs; use mode='classical' "
                                   f"or export SAM into it ('pslg export sam --out {self.models.path}')")
        encoding = self._per_image_work("sam_encoder", self._sam.encode, slot, key, timings)
        t0 = time.perf_counter()
        score = self._sam.segment(encoding, box, point, multimask, out=target)
        timings["sam_decoder"] = _ms(t0)
        return score

    def clear_text_cache(self) -> None:
        """Forget cached phrase features (benchmarks use it to time the text encoder every run)."""
        with self._state():
            if self.grounder is not None:
                self.grounder.clear_cache()

    def close(self) -> None:
        """Free every graph and buffer; later calls raise ClosedError. Safe to call twice."""
        with self._lock:
            for runner in self._runners:
                runner.close()
            self._runners = []
            self._local = threading.local()
            self._per_image = {}
            self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
