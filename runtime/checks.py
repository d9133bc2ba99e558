"""Argument checks at the entry of public functions (kernels, stages, the pipeline, engines).

Each returns the value in the type the kernels want, or raises a
``ParameterError`` that names the argument and what it got. Bools are not
numbers here (``True`` is no iteration count), numpy scalars are.
"""
import math
import numbers

import numpy as np

from .errors import ParameterError

#: Largest graph or sample the kernels accept (about 250 bytes a node: 16 GB).
MAX_NODES = 1 << 26


def fail(name, need, value):
    shown = f"an array of shape {value.shape} and dtype {value.dtype}" if isinstance(value, np.ndarray) else repr(value)
    raise ParameterError(f"{name} must be {need}, got {shown}")


def _bounds(low, high):
    if high is None:
        return f">= {low}"
    return f"in [{low}, {high}]"


def count(name, value, low=0, high=None):
    """An integer (not a bool) in ``[low, high]``, as int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        fail(name, f"an integer {_bounds(low, high)}", value)
    value = int(value)
    if value < low or (high is not None and value > high):
        fail(name, f"an integer {_bounds(low, high)}", value)
    return value


def seed(name, value):
    """A seed: any integer (not a bool), as int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        fail(name, "an integer", value)
    return int(value)


def real(name, value, low=-math.inf, high=math.inf, *, open_low=False, open_high=False):
    """A finite real number (int or float, not a bool) between ``low`` and ``high``, as float."""
    lo, hi = "(" if open_low else "[", ")" if open_high else "]"
    need = f"a finite number in {lo}{low}, {high}{hi}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        fail(name, need, value)
    try:
        v = float(value)
    except OverflowError:
        fail(name, need, value)
    if not math.isfinite(v) or v < low or v > high or (open_low and v == low) or (open_high and v == high):
        fail(name, need, value)
    return v


def flag(name, value):
    """A bool (or numpy bool), as bool."""
    if not isinstance(value, (bool, np.bool_)):
        fail(name, "True or False", value)
    return bool(value)


def choice(name, value, options):
    """One of ``options`` (compared with ==, types must match: 8.0 is not 8)."""
    if not any(type(value) is type(o) and value == o for o in options):
        fail(name, "one of " + ", ".join(repr(o) for o in options), value)
    return value


def instance(name, value, cls, allow_none=True):
    """``value`` itself when it is a ``cls`` (or None where allowed)."""
    if (value is None and not allow_none) or (value is not None and not isinstance(value, cls)):
        fail(name, f"a {cls.__name__}{' or None' if allow_none else ''}", value)
    return value


def capacities(name, values, shape, low=0.0):
    """A real array of ``shape``, finite and >= ``low``, as C-contiguous float64."""
    if not isinstance(values, np.ndarray) or values.dtype == np.bool_ or not (
            np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        fail(name, f"a real numpy array of shape {shape}", values)
    if values.shape != tuple(shape):
        fail(name, f"an array of shape {tuple(shape)}", values)
    values = np.ascontiguousarray(values, np.float64)
    if values.size and not (values.min() >= low and values.max() < np.inf):
        fail(name, "finite" + (f" and >= {low}" if low > -np.inf else ""), values)
    return values


def samples(name, values):
    """An (n, d) real array with n >= 1, d >= 1 and finite values (uint8 pixels or floats)."""
    need = "an (n, d) real numpy array with n, d >= 1 and finite values"
    if not isinstance(values, np.ndarray) or values.ndim != 2 or values.size == 0 or values.dtype == np.bool_ \
            or not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        fail(name, need, values)
    if len(values) > MAX_NODES:
        fail(name, f"at most {MAX_NODES} rows", values)
    if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
        fail(name, need, values)
    return values


def mask(name, value, shape):
    """An array of ``shape``, bool or integer (non-zero = True), returned as it is."""
    if not isinstance(value, np.ndarray) or value.shape != tuple(shape) or not (
            value.dtype == np.bool_ or np.issubdtype(value.dtype, np.integer)):
        fail(name, f"a bool or integer array of shape {tuple(shape)} (non-zero = True)", value)
    return value


def out_array(name, out, shape, dtypes):
    """A caller's output buffer: a writable C-contiguous array of ``shape`` and one of ``dtypes``;
    None: a new one of ``dtypes[0]``."""
    if out is None:
        return np.empty(shape, dtypes[0])
    if not isinstance(out, np.ndarray) or out.shape != tuple(shape) or out.dtype not in dtypes \
            or not out.flags.writeable or not out.flags.c_contiguous:
        fail(name, f"a writable C-contiguous {' or '.join(np.dtype(d).name for d in dtypes)} array of shape "
                   f"{tuple(shape)}", out)
    return out
