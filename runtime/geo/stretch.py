"""16-bit (and other non-8-bit integer) bands to 8 bits by one stated rule, fitted once per raster.

Rule: per band, the 2nd and 98th percentiles of the valid pixels of the sample (the whole raster when it is
read whole, else its overview of at most ``SAMPLE_SIDE`` px) map linearly to 0 and 255; values beyond are
clipped; a band whose two percentiles are equal maps ``low`` to 0 and anything above to 255. One fit serves
every read of the raster, so an overview and a full-resolution window show the same colours.
"""
from dataclasses import dataclass

import numpy as np

from ..errors import ImageError

LOW_PERCENTILE, HIGH_PERCENTILE = 2.0, 98.0
RULE = (f"per band: the {LOW_PERCENTILE:g}th and {HIGH_PERCENTILE:g}th percentiles of the valid pixels of the "
        f"sample map linearly to 0 and 255, clipped")


@dataclass(frozen=True)
class Stretch:
    """Per-band ``low``/``high`` (source values) and the sample they were fitted on."""

    low: tuple
    high: tuple
    sample: str

    @classmethod
    def fit(cls, data, valid, sample, name):
        """Fit on ``data`` (bands x h x w) where ``valid`` (h x w bool or None) holds."""
        if valid is not None and not valid.any():
            raise ImageError(f"{name} holds only nodata in {sample}: nothing to stretch or segment")
        pixels = data.reshape(data.shape[0], -1)
        if valid is not None:
            pixels = pixels[:, valid.reshape(-1)]
        low, high = np.percentile(pixels, [LOW_PERCENTILE, HIGH_PERCENTILE], axis=1)
        return cls(tuple(float(v) for v in low), tuple(float(v) for v in high), sample)

    def apply(self, data):
        """bands x h x w values -> h x w x bands uint8."""
        low = np.asarray(self.low, np.float32)[:, None, None]
        span = np.maximum(np.asarray(self.high, np.float32) - np.asarray(self.low, np.float32), 1e-6)[:, None, None]
        out = (data.astype(np.float32) - low) * (np.float32(255) / span)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8).transpose(1, 2, 0)

    def to_json(self):
        return {"rule": RULE, "sample": self.sample,
                "bands": [{"low": lo, "high": hi} for lo, hi in zip(self.low, self.high)]}
