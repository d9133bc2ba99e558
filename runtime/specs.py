"""What a runner runs: graph signatures, engine descriptions and their checks.

Plain frozen dataclasses with no I/O. :mod:`.modelset` builds them from a
manifest; :mod:`.backends` runs them; neither needs the other.
"""
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np

from .errors import GraphSignatureError, ParameterError

Dim = Union[int, str]


@dataclass(frozen=True)
class TensorSpec:
    """Name, numpy dtype name and shape of one graph input or output.

    A dimension is an int (fixed) or a string naming a dynamic axis; the same
    name on an input and an output means the same size (``"prompts"``).
    """

    name: str
    dtype: str
    shape: Tuple[Dim, ...]

    @classmethod
    def from_json(cls, d: dict) -> "TensorSpec":
        return cls(d["name"], d["dtype"], tuple(d["shape"]))

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    def check(self, array: np.ndarray) -> None:
        """Raise ParameterError unless ``array`` fits this spec."""
        if not isinstance(array, np.ndarray):
            raise ParameterError(f"input '{self.name}' must be a numpy array, got {type(array).__name__}")
        if array.dtype != np.dtype(self.dtype):
            raise ParameterError(f"input '{self.name}' must be {self.dtype}, got {array.dtype}")
        if array.ndim != len(self.shape) or any(isinstance(w, int) and w != g for w, g in zip(self.shape, array.shape)):
            raise ParameterError(f"input '{self.name}' must have shape {self.shape}, got {array.shape}")


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX graph: its file, its recorded sha256 and its declared signature.

    ``cpu_path``: the same graph with ONNX Runtime's fused operators (its
    attention as ``com.microsoft.MultiHeadAttention``), which ONNX Runtime
    runs instead of ``path`` on the CPU; ``path`` is the portable graph (what TensorRT builds
    from, and every other device runs).
    """

    name: str
    path: Path
    inputs: Tuple[TensorSpec, ...]
    outputs: Tuple[TensorSpec, ...]
    sha256: Optional[str] = None
    cpu_path: Optional[Path] = None

    def portable(self) -> "GraphSpec":
        """This graph without its CPU variant."""
        return replace(self, cpu_path=None)

    def resolve_dims(self, feeds: Dict[str, np.ndarray]) -> Dict[str, int]:
        """Map each named dynamic axis to its size in ``feeds``."""
        dims = {}
        for spec in self.inputs:
            for want, got in zip(spec.shape, feeds[spec.name].shape):
                if isinstance(want, str) and dims.setdefault(want, got) != got:
                    raise ParameterError(f"axis '{want}' is {dims[want]} on one input and {got} on '{spec.name}'")
        return dims

    def output_shapes(self, feeds: Dict[str, np.ndarray]) -> Dict[str, Optional[tuple]]:
        """Output shapes implied by the inputs, or None where an axis is not named on any input."""
        dims = self.resolve_dims(feeds)
        shapes = {}
        for spec in self.outputs:
            shape = tuple(d if isinstance(d, int) else dims.get(d) for d in spec.shape)
            shapes[spec.name] = None if None in shape else shape
        return shapes


@dataclass(frozen=True)
class ShapeRange:
    """One input's optimization-profile shapes (TensorRT's min / opt / max)."""

    min: Tuple[int, ...]
    opt: Tuple[int, ...]
    max: Tuple[int, ...]

    def contains(self, shape) -> bool:
        return len(shape) == len(self.min) and all(a <= s <= b for s, a, b in zip(shape, self.min, self.max))


@dataclass(frozen=True)
class EngineSpec:
    """A TensorRT engine built from a graph, as its model set records it.

    ``path`` is the engine file; ``profile`` maps each input to its
    :class:`ShapeRange`; ``onnx_sha256`` is the graph it was built from;
    ``lean_runtime_embedded``: a version-compatible plan that carries its own
    lean runtime (the only kind whose host code may run); ``dla_core``: the
    DLA core it was built for, or None for the GPU.
    """

    graph: str
    path: Path
    precision: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    profile: Dict[str, ShapeRange]
    onnx_sha256: str
    fp32_layers: Tuple[str, ...] = ()
    version_compatible: bool = False
    lean_runtime_embedded: bool = False
    dla_core: Optional[int] = None

    @property
    def models_dir(self) -> Path:
        """The model-set folder the engine lies in (for the rebuild command in error messages)."""
        return self.path.parent


def check_signature(spec: GraphSpec, actual) -> None:
    """Compare a graph's declared spec with what the backend reports.

    ``actual`` is ``(inputs, outputs)`` as TensorSpec lists. Dynamic axes only
    need to be dynamic (any name) on both sides.
    """
    for kind, want, got in zip(("inputs", "outputs"), (spec.inputs, spec.outputs), actual):
        want_names, got_names = [t.name for t in want], [t.name for t in got]
        if sorted(want_names) != sorted(got_names):
            raise GraphSignatureError(
                f"{spec.path.name}: {kind} are {got_names} but the manifest says {want_names}; "
                f"the graph does not belong to this manifest (re-export the model set)")
        got_by_name = {t.name: t for t in got}
        for w in want:
            g = got_by_name[w.name]
            same_shape = len(w.shape) == len(g.shape) and all(
                (isinstance(a, str) and not isinstance(b, int)) or a == b for a, b in zip(w.shape, g.shape))
            if w.dtype != g.dtype or not same_shape:
                raise GraphSignatureError(
                    f"{spec.path.name}: {kind[:-1]} '{w.name}' is {g.dtype}{list(g.shape)} but the manifest says "
                    f"{w.dtype}{list(w.shape)}; re-export the model set")
