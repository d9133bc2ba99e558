"""The PSLG pipeline as one embeddable object with an explicit lifecycle.

    with Pipeline.open("engines/demo") as p:
        p.set_image(rgb)                           # the image every following query runs on
        r = p.segment(text="the white boat")       # SAM encodes the image once, on its first SAM query
        r.mask, r.box, r.timings_ms

Modes (the paper's ablations): ``box`` (SAM on the box), ``box+point`` (plus
the CFPG point), ``full`` (plus MBO refinement), and ``classical`` (CFPG point
and MBO from the box alone, no SAM: what runs without a SAM checkpoint).

Thread-safety: every public method holds the pipeline's (re-entrant) lock, so
threads may share one pipeline: calls run one at a time and never mix buffers.
A thread that sets an image and then queries it holds ``exclusive()`` across
both calls. For parallel throughput, open one pipeline per thread.
"""
import threading
import time
from contextlib import contextmanager
from typing import Optional

import numpy as np

from . import backends, kernels
from . import modelset as modelsets
from . import sam
from .backends import RunnerOptions
from .cfpg import foreground_point
from .errors import ClosedError, ComponentMissing, NoImageError, ParameterError
from .image import to_rgb8
from .mbo import Workspace, refine
from .prompts import check_box, check_point
from .results import SegmentResult

MODES = ("box", "box+point", "full", "classical")
SAM_MODES = ("box", "box+point", "full")


def _ms(t0):
    return (time.perf_counter() - t0) * 1e3


class Pipeline:
    """Chains the stages of a model set. Open it with :meth:`open`; close it (or use ``with``)."""

    def __init__(self, models: modelsets.ModelSet, runner: Optional[RunnerOptions] = None, text_cache: int = 32,
                 warmup: bool = True):
        if not isinstance(models, modelsets.ModelSet):
            raise ParameterError(f"models must be an opened ModelSet (use Pipeline.open(folder)), got "
                                 f"{type(models).__name__}")
        if runner is not None and not isinstance(runner, RunnerOptions):
            raise ParameterError(f"runner must be a RunnerOptions, got {type(runner).__name__}")
        self.models = models
        self.runner_options = runner or RunnerOptions()
        self._lock = threading.RLock()
        self._runners = []
        self._closed = False
        self._image = self._encoding = self._letterboxed = None
        self._sam_mask = None
        self._mbo_workspace = Workspace()
        self.image_timings_ms, self.open_timings_ms = {}, {}
        try:
            self.sam_meta = models.sam
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
             verify: bool = True) -> "Pipeline":
        """Open a model set and load every graph and kernel; refuses an incomplete or mismatched set.

        ``runner``: where the graphs run (:class:`~pslg.runtime.backends.RunnerOptions`:
        backend, device, threads, cuda_graph; default ``auto`` everywhere).
        ``text_cache``: phrases whose text features are kept. ``warmup`` runs
        every stage once on a synthetic image so the first real query pays no
        compilation or lazy initialisation. ``verify`` hashes every file
        against the manifest.
        """
        return cls(modelsets.open(models_dir, verify=verify), runner, text_cache, warmup)

    def _open(self, graph):
        runner = backends.open_runner(self.models.graph(graph), self.runner_options, self.models.engine(graph))
        self._runners.append(runner)
        return runner

    def _warmup(self):
        timings = {"kernels": kernels.warmup() * 1e3}
        t0 = time.perf_counter()
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
        self.set_image(image)
        modes = ("full", "classical") if self.sam_meta is not None else ("classical",)
        for mode in modes:
            self.segment(box=(20, 20, 100, 80), mode=mode)
        if self.grounder is not None:
            self.segment(text="warm-up", mode=modes[-1])
            self.grounder.clear_cache()
        self._image = self._encoding = self._letterboxed = None
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

    @contextmanager
    def _state(self, need_image=True):
        with self._lock:
            if self._closed:
                raise ClosedError("this pipeline is closed; open a new one")
            if need_image and self._image is None:
                raise NoImageError("no image set: call set_image(rgb) first")
            yield

    def set_image(self, image: np.ndarray) -> None:
        """Set the image the next queries run on (H x W x 3 uint8 RGB, or what ``image.to_rgb8`` converts).

        Nothing is computed yet: SAM encodes the image on its first SAM-mode
        query and LQVG letterboxes it on its first text query, each once per
        image (their times appear in that query's ``timings_ms`` and in
        ``image_timings_ms``), so a box-only or classical use never pays for them.
        """
        rgb = to_rgb8(image)
        with self._state(need_image=False):
            self._image = self._encoding = self._letterboxed = None
            if self._sam_mask is None or self._sam_mask.shape != rgb.shape[:2]:
                self._sam_mask = np.empty(rgb.shape[:2], bool)
            self._image = rgb
            self.image_timings_ms = {}

    def _embed(self, timings):
        """The SAM embedding of the current image, encoded now if no query has needed it yet."""
        if self._encoding is None:
            t0 = time.perf_counter()
            self._encoding = self._sam.encode(self._image)
            timings["sam_encoder"] = self.image_timings_ms["sam_encoder"] = _ms(t0)
        return self._encoding

    def locate(self, text: str):
        """The LQVG box for ``text`` in the current image (a :class:`~pslg.runtime.grounding.GroundingResult`)."""
        with self._state():
            return self._locate(text, {})

    def _locate(self, text, timings):
        if self.grounder is None:
            raise ComponentMissing(f"model set {self.models.path} has no LQVG graphs: pass box=... instead of text, "
                                   f"or export LQVG into it ('pslg export lqvg --out {self.models.path}')")
        if self._letterboxed is None:
            t0 = time.perf_counter()
            self._letterboxed = self.grounder.prepare_image(self._image)
            timings["letterbox"] = self.image_timings_ms["letterbox"] = _ms(t0)
        return self.grounder.locate(self._letterboxed, text)

    def segment(self, text=None, box=None, point=None, mode="full", out=None, multimask=False, seed=0):
        """Segment one object of the current image.

        ``text``: the phrase LQVG grounds (skipped when ``box`` is given: the
        box wins and the phrase is kept as the label). ``box``: x1, y1, x2, y2
        original pixels. ``point``: x, y of a foreground point instead of
        CFPG's. ``out``: a caller-owned H x W bool or uint8 array that receives
        the mask. Returns a :class:`~pslg.runtime.results.SegmentResult`.
        """
        if mode not in MODES:
            raise ParameterError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        if text is None and box is None:
            raise ParameterError("segment needs text='...' or box=(x1, y1, x2, y2)")
        with self._state():
            t_start = time.perf_counter()
            image, warnings, timings = self._image, self.warnings, {}
            mask = self._mask_buffer(out, image.shape)
            grounding = None
            if box is None:
                grounding = self._locate(text, timings)
                timings.update({"text_encoder" if k == "text" else k: v for k, v in grounding.timings_ms.items()})
                warnings += [w for w in grounding.warnings if w not in warnings]
            box = check_box(grounding.box if grounding else box, image.shape, warnings)
            point_xy, point_source, cfpg = None, None, None
            if point is not None and mode == "box":
                warnings.append("mode 'box' uses no point: the given point was ignored")
            elif point is not None:
                point_xy, point_source = check_point(point, image.shape), "user"
            elif mode != "box":
                t0 = time.perf_counter()
                cfpg = foreground_point(image, box, seed=seed)
                timings["cfpg"] = _ms(t0)
                point_xy, point_source = np.asarray(cfpg.point, np.float64), "cfpg"
                warnings += cfpg.warnings
            sam_score = None
            if mode in SAM_MODES:
                target = self._sam_mask if mode == "full" else mask
                sam_score = self._decode(box, point_xy if mode != "box" else None, target, multimask, timings)
            mbo = None
            if mode in ("full", "classical"):
                t0 = time.perf_counter()
                mbo = refine(image, self._sam_mask if mode == "full" else None, box, point=point_xy, seed=seed,
                             out=mask, workspace=self._mbo_workspace)
                timings["mbo"] = _ms(t0)
                warnings += mbo.warnings
            timings["total"] = _ms(t_start)
            return SegmentResult(mask=mask, box=box, mode=mode, box_source="text" if grounding else "user",
                                 phrase=text, point=point_xy, point_source=point_source, sam_score=sam_score,
                                 grounding=grounding, cfpg=cfpg, mbo=mbo, timings_ms=timings, warnings=warnings)

    def _decode(self, box, point, target, multimask, timings):
        if self.sam_meta is None:
            raise ComponentMissing(f"model set {self.models.path} has no SAM graphs; use mode='classical' "
                                   f"or export SAM into it ('pslg export sam --out {self.models.path}')")
        encoding = self._embed(timings)
        t0 = time.perf_counter()
        score = self._sam.segment(encoding, box, point, multimask, out=target)
        timings["sam_decoder"] = _ms(t0)
        return score

    @staticmethod
    def _mask_buffer(out, shape):
        if out is None:
            return np.empty(shape[:2], bool)
        if not isinstance(out, np.ndarray) or out.shape != shape[:2] or out.dtype not in (np.bool_, np.uint8) \
                or not out.flags.c_contiguous:
            raise ParameterError(f"out must be a C-contiguous bool or uint8 array of shape {shape[:2]}")
        return out.view(bool)

    def exclusive(self):
        """Hold the pipeline across several calls: ``with p.exclusive(): p.set_image(a); p.segment(...)``.

        Needed when threads share a pipeline and each must query the image it set.
        """
        return self._lock

    def clear_text_cache(self):
        """Forget cached phrase features (benchmarks use it to time the text encoder every run)."""
        with self._state(need_image=False):
            if self.grounder is not None:
                self.grounder.clear_cache()

    def close(self):
        """Free every graph and buffer; later calls raise ClosedError. Safe to call twice."""
        with self._lock:
            for runner in self._runners:
                runner.close()
            self._runners = []
            self._image = self._encoding = self._letterboxed = None
            self._sam_mask = None
            self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
