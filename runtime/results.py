"""Result dataclasses returned by the pipeline; the CLI writes them as JSON with the same names."""
from dataclasses import dataclass, field, fields

import numpy as np


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def summary(part):
    """JSON-ready fields of a stage's result: its own ``to_json``, else every field but images (2-D+ arrays)."""
    if part is None:
        return None
    if hasattr(part, "to_json"):
        return part.to_json()
    return {f.name: _plain(getattr(part, f.name)) for f in fields(part)
            if not (isinstance(getattr(part, f.name), np.ndarray) and getattr(part, f.name).ndim >= 2)}


@dataclass
class SegmentResult:
    """One segmented object.

    ``mask`` is H x W bool in original pixels (the caller's ``out`` buffer when
    one was given); ``box`` is x1, y1, x2, y2 (exclusive right/bottom edge);
    ``point`` x, y (CFPG's or the caller's); ``sam_score`` SAM's predicted
    IoU; ``grounding`` / ``cfpg`` / ``mbo`` each stage's own result;
    ``timings_ms`` maps a stage name to milliseconds; ``image`` is the
    :class:`~pslg.runtime.pipeline.ImageHandle` the answer is for.
    """

    mask: np.ndarray
    box: np.ndarray
    mode: str
    box_source: str
    phrase: str = None
    point: np.ndarray = None
    point_source: str = None
    sam_score: float = None
    grounding: object = None
    cfpg: object = None
    mbo: object = None
    timings_ms: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    image: object = None

    def to_json(self):
        """Everything but the arrays too large for JSON (mask, diagnostics images)."""
        out = {"mode": self.mode, "phrase": self.phrase, "box": _plain(self.box), "box_source": self.box_source,
               "point": _plain(self.point), "point_source": self.point_source,
               "sam_score": _plain(self.sam_score), "mask_area": int(np.count_nonzero(self.mask)),
               "timings_ms": _plain(self.timings_ms), "warnings": list(self.warnings)}
        for name in ("grounding", "cfpg", "mbo"):
            out[name] = summary(getattr(self, name))
        return out
