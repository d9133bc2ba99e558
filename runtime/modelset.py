"""Model-set folders: the manifest schema, file names, and their validation.

A model set is one folder (``engines/<name>/``) holding exported graphs, engines,
``tokenizer.json`` and ``manifest.json``. This module is the one place that
knows the file names and the manifest schema. A set is complete or refused:
:func:`open` checks the schema version, every listed file's sha256, and (when
a graph is opened) that the graph's inputs and outputs match the manifest.
"""
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import (ComponentMissing, GraphSignatureError, ManifestError,
                     ModelFileError, ModelSetNotFound, ParameterError)

FORMAT = "pslg-modelset"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"

#: component -> the graphs it exports, in call order.
COMPONENTS = {
    "sam": ("sam_encoder", "sam_decoder"),
    "lqvg": ("lqvg_text", "lqvg_grounding"),
}


def graph_file(graph):
    """File name of a graph's ONNX file inside a model set."""
    return f"{graph}.onnx"


class RandomWeightsWarning(UserWarning):
    """The model set was exported from seeded random weights, not a checkpoint."""


_warned = set()


def sha256(path, chunk=1 << 22):
    """Hex sha256 of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class TensorSpec:
    """Name, numpy dtype name and shape of one graph input or output.

    A dimension is an int (fixed) or a string naming a dynamic axis; the same
    name on an input and an output means the same size (``"prompts"``).
    """

    name: str
    dtype: str
    shape: tuple

    @classmethod
    def from_json(cls, d):
        return cls(d["name"], d["dtype"], tuple(d["shape"]))

    def to_json(self):
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    def check(self, array):
        """Raise ParameterError unless ``array`` fits this spec."""
        if not isinstance(array, np.ndarray):
            raise ParameterError(f"input '{self.name}' must be a numpy array, got {type(array).__name__}")
        if array.dtype != np.dtype(self.dtype):
            raise ParameterError(f"input '{self.name}' must be {self.dtype}, got {array.dtype}")
        if array.ndim != len(self.shape):
            raise ParameterError(f"input '{self.name}' must have {len(self.shape)} dims {self.shape}, got {array.shape}")
        for want, got in zip(self.shape, array.shape):
            if isinstance(want, int) and want != got:
                raise ParameterError(f"input '{self.name}' must have shape {self.shape}, got {array.shape}")


@dataclass(frozen=True)
class GraphSpec:
    """One graph of a model set: its file and its declared signature."""

    name: str
    path: Path
    inputs: tuple
    outputs: tuple

    def resolve_dims(self, feeds):
        """Map each named dynamic axis to its size in ``feeds``."""
        dims = {}
        for spec in self.inputs:
            for want, got in zip(spec.shape, feeds[spec.name].shape):
                if isinstance(want, str):
                    if dims.setdefault(want, got) != got:
                        raise ParameterError(f"axis '{want}' is {dims[want]} on one input and {got} on '{spec.name}'")
        return dims

    def output_shapes(self, feeds):
        """Output shapes implied by the inputs, or None where an axis is not named on any input."""
        dims = self.resolve_dims(feeds)
        shapes = {}
        for spec in self.outputs:
            shape = tuple(d if isinstance(d, int) else dims.get(d) for d in spec.shape)
            shapes[spec.name] = None if None in shape else shape
        return shapes


class ModelSet:
    """A validated model-set folder. Use :func:`open`."""

    def __init__(self, path, manifest):
        self.path = Path(path)
        self.manifest = manifest
        self.warnings = []
        if self.random_weights:
            names = ", ".join(c for c, m in self.components.items() if m.get("random_weights"))
            msg = (f"model set {self.path} holds RANDOM weights ({names}): outputs are meaningless; "
                   f"use it for tests and latency only")
            self.warnings.append(msg)
            if str(self.path.resolve()) not in _warned:
                _warned.add(str(self.path.resolve()))
                warnings.warn(msg, RandomWeightsWarning, stacklevel=3)

    @property
    def components(self):
        return self.manifest["components"]

    @property
    def random_weights(self):
        return any(c.get("random_weights") for c in self.components.values())

    def has(self, component):
        return component in self.components

    def component(self, name):
        """The manifest entry of a component, or ComponentMissing."""
        if name not in self.components:
            raise ComponentMissing(
                f"model set {self.path} has no '{name}' component (has: {', '.join(self.components) or 'none'}); "
                f"run 'pslg export {name} --out {self.path}'")
        return self.components[name]

    def graph(self, name):
        """The GraphSpec of a graph listed in the manifest."""
        entry = self.manifest["graphs"].get(name)
        if entry is None:
            raise ComponentMissing(f"model set {self.path} has no graph '{name}'")
        return GraphSpec(name, self.path / entry["file"],
                         tuple(TensorSpec.from_json(t) for t in entry["inputs"]),
                         tuple(TensorSpec.from_json(t) for t in entry["outputs"]))

    def file(self, key):
        """Path of a non-graph file listed under ``files`` (e.g. ``tokenizer``)."""
        entry = self.manifest.get("files", {}).get(key)
        if entry is None:
            raise ComponentMissing(f"model set {self.path} lists no '{key}' file")
        return self.path / entry["file"]

    def engine(self, graph):
        """Manifest entry of a graph's TensorRT engine, or None."""
        return self.manifest.get("engines", {}).get(graph)

    def open_runner(self, graph, backend="auto", device="auto", **options):
        """Open ``graph`` on a backend and check its signature against the manifest."""
        from . import backends
        runner = backends.open_runner(self, self.graph(graph), backend=backend, device=device, **options)
        try:
            check_signature(runner.spec, runner.describe())
        except GraphSignatureError:
            runner.close()
            raise
        return runner


def check_signature(spec, actual):
    """Compare a graph's declared spec with what the backend reports.

    ``actual`` is ``(inputs, outputs)`` as TensorSpec lists. Dynamic axes only
    need to be dynamic (any name) on both sides.
    """
    declared = (spec.inputs, spec.outputs)
    for kind, want, got in zip(("inputs", "outputs"), declared, actual):
        want_names = [t.name for t in want]
        got_names = [t.name for t in got]
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


def read_manifest(path):
    """Load and schema-check ``manifest.json`` of a model-set folder."""
    path = Path(path)
    if not path.is_dir():
        raise ModelSetNotFound(f"model set folder {path} does not exist; export one with 'pslg export sam --out {path}'")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise ModelSetNotFound(f"{path} is not a model set: it has no {MANIFEST}")
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as e:
        raise ManifestError(f"{mpath} is not readable JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ManifestError(f"{mpath} is not a pslg model-set manifest (no \"format\": \"{FORMAT}\")")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ManifestError(
            f"{mpath} has schema_version {version!r}; this pslg reads version {SCHEMA_VERSION}: "
            f"re-export the model set with this version of pslg")
    for key in ("components", "graphs"):
        if not isinstance(manifest.get(key), dict):
            raise ManifestError(f"{mpath} has no '{key}' table")
    return manifest


def _listed_files(manifest):
    for table in ("graphs", "files", "engines"):
        for key, entry in manifest.get(table, {}).items():
            yield f"{table}.{key}", entry


def open(path, verify=True):
    """Open a model-set folder: schema, files and their sha256 are checked.

    ``verify=False`` skips hashing (the files must still exist); the signature
    of each graph is checked when it is opened.
    """
    manifest = read_manifest(path)
    path = Path(path)
    for key, entry in _listed_files(manifest):
        fpath = path / entry["file"]
        if not fpath.is_file():
            raise ModelFileError(f"model set {path}: {key} file {entry['file']} is missing")
        if verify and sha256(fpath) != entry["sha256"]:
            raise ModelFileError(
                f"model set {path}: {entry['file']} does not match its recorded sha256 "
                f"(truncated, corrupt or replaced); re-export or re-copy it")
    return ModelSet(path, manifest)


def _empty_manifest():
    return {"format": FORMAT, "schema_version": SCHEMA_VERSION, "components": {}, "graphs": {}, "files": {}}


def update(path, component, meta, graphs=None, files=None):
    """Add or replace one component of a model set and write the manifest atomically.

    ``graphs`` maps a graph name to ``(inputs, outputs)`` TensorSpec lists (its
    file must already be in the folder under :func:`graph_file`); ``files`` maps
    a key to a file name in the folder. Hashes are computed here.
    """
    path = Path(path)
    mpath = path / MANIFEST
    manifest = read_manifest(path) if mpath.exists() else _empty_manifest()
    for name in COMPONENTS.get(component, ()):
        manifest["graphs"].pop(name, None)
        manifest.get("engines", {}).pop(name, None)
    manifest["components"][component] = meta
    for name, (inputs, outputs) in (graphs or {}).items():
        fname = graph_file(name)
        manifest["graphs"][name] = {
            "file": fname, "sha256": sha256(path / fname), "component": component,
            "inputs": [t.to_json() for t in inputs], "outputs": [t.to_json() for t in outputs]}
    for key, fname in (files or {}).items():
        manifest.setdefault("files", {})[key] = {"file": fname, "sha256": sha256(path / fname)}
    write_manifest(path, manifest)
    return manifest


def write_manifest(path, manifest):
    """Write ``manifest.json`` via a temporary file, so a crash never leaves half a manifest."""
    mpath = Path(path) / MANIFEST
    tmp = mpath.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, mpath)


def record_engine(path, graph, meta):
    """Add the TensorRT engine of ``graph`` (file ``meta["file"]`` in the folder) to the manifest."""
    path = Path(path)
    manifest = read_manifest(path)
    if graph not in manifest["graphs"]:
        raise ComponentMissing(f"model set {path} has no graph '{graph}' to record an engine for")
    manifest.setdefault("engines", {})[graph] = dict(meta, sha256=sha256(path / meta["file"]))
    write_manifest(path, manifest)
    return manifest
