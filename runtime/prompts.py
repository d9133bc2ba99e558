"""Validation of user prompts: boxes and points in original-image pixels.

Boxes are ``x1, y1, x2, y2`` floats with an exclusive right/bottom edge: the
box ``0, 0, W, H`` covers the whole W x H image. A box partly outside the
image is clipped to it (with a warning); one that is inverted, has zero area
or lies wholly outside is refused.
"""
import numbers

import numpy as np

from .errors import BoxError, PointError


def numbers_of(value, count, what, error):
    """``value`` (a sequence or array of ``count`` real numbers) as float64; ``error`` (a class) otherwise.

    Strings, bools, complex numbers, NaN, infinities and integers too large
    for a float are refused, not converted.
    """
    items = value.reshape(-1).tolist() if isinstance(value, np.ndarray) else value
    if isinstance(items, (str, bytes)) or not hasattr(items, "__len__") or len(items) != count or not all(
            isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in items):
        raise error(f"{what} must be {count} numbers, got {value!r}")
    try:
        out = np.array([float(v) for v in items], np.float64)
    except OverflowError:
        raise error(f"{what} holds a number too large for a float: {value!r}") from None
    if not np.isfinite(out).all():
        raise error(f"{what} must be {count} finite numbers, got {value!r}")
    return out


def check_box(box, image_shape, warnings=None):
    """Validated, clipped float64 box ``[x1, y1, x2, y2]`` for an image of ``image_shape`` (H, W, ...)."""
    b = numbers_of(box, 4, "box x1,y1,x2,y2", BoxError)
    x1, y1, x2, y2 = b
    if x2 <= x1 or y2 <= y1:
        what = "inverted" if (x2 < x1 or y2 < y1) else "of zero area"
        raise BoxError(f"box {b.tolist()} is {what}: need x1 < x2 and y1 < y2")
    h, w = image_shape[:2]
    clipped = np.array([max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))])
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        raise BoxError(f"box {b.tolist()} lies outside the {w}x{h} image")
    if not np.array_equal(clipped, b) and warnings is not None:
        warnings.append(f"box {b.tolist()} was clipped to the image: {clipped.tolist()}")
    return clipped


def check_point(point, image_shape):
    """Validated float64 point ``[x, y]`` inside the image."""
    p = numbers_of(point, 2, "point x,y", PointError)
    h, w = image_shape[:2]
    if not (0 <= p[0] < w and 0 <= p[1] < h):
        raise PointError(f"point {p.tolist()} lies outside the {w}x{h} image")
    return p


def parse_numbers(text, count, what):
    """``"1,2,3,4"`` -> list of floats, for command-line options."""
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        values = []
    if len(values) != count:
        error = BoxError if what == "box" else PointError
        raise error(f"--{what} must be {count} comma-separated numbers, got {text!r}")
    return values
