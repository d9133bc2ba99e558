"""Argument checks at the entry of public functions: each failure is a ParameterError naming the argument.

``bool`` is not accepted where a number is asked for (``True`` is an int
in Python, never a count, a seed or a size here).
"""
import numbers

import numpy as np

from .errors import ParameterError


def integer(value, name, low=None, high=None):
    """``value`` as an int in ``[low, high]`` (either bound may be None)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"<= {high}" if low is None else f"in {low}..{high}"
        raise ParameterError(f"{name} must be {bounds}, got {value}")
    return value


def real(value, name, low=None, high=None, low_open=False):
    """``value`` as a finite float in ``[low, high]`` (``low_open``: ``value > low``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    try:
        value = float(value)
    except OverflowError:
        raise ParameterError(f"{name} is too large for a float: {value!r}") from None
    if not np.isfinite(value):
        raise ParameterError(f"{name} must be finite, got {value}")
    below = low is not None and (value <= low if low_open else value < low)
    if below or (high is not None and value > high):
        bounds = [f"{'>' if low_open else '>='} {low}"] if low is not None else []
        bounds += [f"<= {high}"] if high is not None else []
        raise ParameterError(f"{name} must be {' and '.join(bounds)}, got {value}")
    return value


def flag(value, name):
    """``value`` as a bool; only True/False (and numpy bools) are flags."""
    if not isinstance(value, (bool, np.bool_)):
        raise ParameterError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def seed(value, name="seed"):
    """A k-means seed: an integer 0 <= seed < 2**63."""
    return integer(value, name, 0, 2 ** 63 - 1)


def choice(value, name, options):
    if not isinstance(value, str) or value not in options:
        raise ParameterError(f"{name} must be one of {', '.join(options)}, got {value!r}")
    return value


def mask_buffer(out, shape, name="out"):
    """A caller-owned H x W bool or uint8 buffer, viewed as bool; it must be writable and C-contiguous."""
    if not isinstance(out, np.ndarray):
        raise ParameterError(f"{name} must be a numpy array, got {type(out).__name__}")
    if out.shape != tuple(shape) or out.dtype not in (np.bool_, np.uint8) or not out.flags.c_contiguous:
        raise ParameterError(f"{name} must be a C-contiguous bool or uint8 array of shape {tuple(shape)}, "
                             f"got {out.dtype}{list(out.shape)}")
    if not out.flags.writeable:
        raise ParameterError(f"{name} is read-only: pass a writable array")
    return out.view(bool)
