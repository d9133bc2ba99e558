"""Model-set folders: the manifest schema, file names, and their validation.

A model set is one folder (``engines/<name>/``) holding exported graphs,
TensorRT engines, ``tokenizer.json`` and ``manifest.json``. This module is the
only code that reads or writes manifest dictionaries or knows file names:
everyone else gets typed entries (:class:`~.specs.GraphSpec`,
:class:`~.specs.EngineSpec`, :class:`SamComponent`, :class:`LqvgComponent`).

A set is complete or refused: :func:`open` checks the schema version, every
component's fields, every listed file and its sha256 before anything runs.
"""
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

from .errors import ComponentMissing, ManifestError, ModelFileError, ModelSetNotFound, ParameterError
from .specs import EngineSpec, GraphSpec, ShapeRange, TensorSpec

log = logging.getLogger(__name__)

FORMAT = "pslg-modelset"
SCHEMA_VERSION = 2
MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"

#: component -> the graphs it exports, in call order.
COMPONENTS = {
    "sam": ("sam_encoder", "sam_decoder"),
    "lqvg": ("lqvg_text", "lqvg_grounding"),
}


def graph_file(graph: str) -> str:
    """File name of a graph's ONNX file inside a model set."""
    return f"{graph}.onnx"


def cpu_graph_file(graph: str) -> str:
    """File name of a graph's CPU variant (ONNX Runtime's fused operators)."""
    return f"{graph}.cpu.onnx"


def engine_file(graph: str, precision: str) -> str:
    """File name of a graph's TensorRT engine."""
    return f"{graph}.{precision}.engine"


def timing_cache_file(compute_capability: str, tensorrt_version: str) -> str:
    """TensorRT timing cache of one GPU kind and TensorRT version (a cache from another device is useless)."""
    return f"timing.sm{compute_capability.replace('.', '')}.trt{tensorrt_version}.cache"


def calibration_cache_file(graph: str, onnx_sha256: str) -> str:
    """INT8 calibration cache of one exact graph (a changed graph gets a new cache)."""
    return f"{graph}.{onnx_sha256[:16]}.calib"


def sha256(path, chunk=1 << 22) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- typed component entries

def _field(d, key, kinds, where):
    """``d[key]`` checked for presence and type, else ManifestError naming both."""
    if not isinstance(d, dict) or key not in d:
        raise ManifestError(f"{where} has no '{key}' field: the manifest is incomplete (re-export the model set)")
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ManifestError(f"{where}: '{key}' is {value!r}, not of the expected type")
    return value


def _triple(d, key, where):
    value = _field(d, key, list, where)
    if len(value) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ManifestError(f"{where}: '{key}' must be three numbers, got {value!r}")
    return tuple(float(v) for v in value)


@dataclass(frozen=True)
class Provenance:
    """Where a component's graphs came from; written into every result so nothing is hidden.

    ``weights``: ``{"random": True, "seed": N}`` or ``{"random": False,
    "checkpoint": {"file", "sha256"}, ...}``; ``parity``: the largest ONNX
    Runtime vs PyTorch difference per graph and output at export time.
    """

    weights: dict
    parity: dict
    versions: dict
    command: str
    exporter: str
    opset: int

    @property
    def random_weights(self) -> bool:
        return bool(self.weights.get("random"))

    @classmethod
    def from_json(cls, d, where):
        return cls(_field(d, "weights", dict, where), _field(d, "parity", dict, where),
                   _field(d, "versions", dict, where), _field(d, "command", str, where),
                   _field(d, "exporter", str, where), _field(d, "opset", int, where))


@dataclass(frozen=True)
class SamComponent:
    """The SAM graphs' contract: the family's pre/post-processing rules, normalisation and mask choice.

    ``family``: ``sam`` (ViT-B/L/H), ``mobile_sam`` or ``sam2`` (SAM 2 and
    2.1). ``resize``: ``longest_side`` (resize the longest side to
    ``image_size``, pad bottom/right, upsample the logits through the padded
    square) or ``square`` (stretch to ``image_size`` x ``image_size``, resize
    the logits straight to the original size). RGB values 0..255 are divided
    by ``pixel_divisor``, then ``pixel_mean`` / ``pixel_std`` apply.
    ``prompt_layout``: ``points_then_box`` (a padding point only without a
    box) or ``box_then_points_padded`` (always one padding point).
    ``mask_choice`` with one mask asked for: ``first_token``, or ``stability``
    (token 0 unless its stability score, the IoU of the logits above
    ``+stability_delta`` and above ``-stability_delta``, is below
    ``stability_threshold``: then the best-scored of tokens 1..3).
    ``encoder_outputs``: encoder outputs besides ``image_embeddings`` that the
    decoder takes as inputs.
    """

    family: str
    model_type: str
    image_size: int
    mask_threshold: float
    pixel_mean: Tuple[float, float, float]
    pixel_std: Tuple[float, float, float]
    provenance: Provenance
    resize: str = "longest_side"
    pixel_divisor: float = 1.0
    prompt_layout: str = "points_then_box"
    mask_choice: str = "first_token"
    stability_delta: float = 0.0
    stability_threshold: float = 0.0
    encoder_outputs: Tuple[str, ...] = ()

    RULES = {"resize": ("longest_side", "square"), "prompt_layout": ("points_then_box", "box_then_points_padded"),
             "mask_choice": ("first_token", "stability")}

    @classmethod
    def from_json(cls, d, where="component 'sam'"):
        rules = {}
        for key, choices in cls.RULES.items():  # absent in sets exported before the SAM families: SAM's rules
            rules[key] = _field(d, key, str, where) if key in d else getattr(cls, key)
            if rules[key] not in choices:
                raise ManifestError(f"{where}: '{key}' is {rules[key]!r}; this pslg knows {', '.join(choices)}")
        for key in ("pixel_divisor", "stability_delta", "stability_threshold"):
            rules[key] = float(_field(d, key, (int, float), where)) if key in d else getattr(cls, key)
        if not rules["pixel_divisor"] > 0:
            raise ManifestError(f"{where}: 'pixel_divisor' must be positive, got {rules['pixel_divisor']!r}")
        outputs = _field(d, "encoder_outputs", list, where) if "encoder_outputs" in d else []
        if not all(isinstance(o, str) for o in outputs):
            raise ManifestError(f"{where}: 'encoder_outputs' must be a list of output names, got {outputs!r}")
        return cls(_field(d, "family", str, where), _field(d, "model_type", str, where),
                   _field(d, "image_size", int, where), float(_field(d, "mask_threshold", (int, float), where)),
                   _triple(d, "pixel_mean", where), _triple(d, "pixel_std", where),
                   Provenance.from_json(_field(d, "provenance", dict, where), where + " provenance"),
                   encoder_outputs=tuple(outputs), **rules)


@dataclass(frozen=True)
class LetterboxRule:
    """LQVG's letterbox: resize filter, pad colour (0..255) and the normalisation of 0..1 values."""

    interpolation: str
    pad_color: Tuple[float, float, float]
    pixel_mean: Tuple[float, float, float]
    pixel_std: Tuple[float, float, float]

    @classmethod
    def from_json(cls, d, where):
        return cls(_field(d, "interpolation", str, where), _triple(d, "pad_color", where),
                   _triple(d, "pixel_mean", where), _triple(d, "pixel_std", where))


@dataclass(frozen=True)
class LqvgComponent:
    """The LQVG graphs' contract: letterbox square and rule, token limits, caption rule, special tokens."""

    image_size: int
    max_tokens: int
    vocab_size: int
    text_layers: int
    caption_rule: str
    special_tokens: Dict[str, int]
    letterbox: LetterboxRule
    tokenizer: str
    provenance: Provenance

    @property
    def eos_id(self) -> int:
        return self.special_tokens["</s>"]

    @classmethod
    def from_json(cls, d, where="component 'lqvg'"):
        tokens = _field(d, "special_tokens", dict, where)
        if not isinstance(tokens.get("</s>"), int):
            raise ManifestError(f"{where}: 'special_tokens' lacks the id of '</s>'")
        return cls(_field(d, "image_size", int, where), _field(d, "max_tokens", int, where),
                   _field(d, "vocab_size", int, where), _field(d, "text_layers", int, where),
                   _field(d, "caption_rule", str, where), dict(tokens),
                   LetterboxRule.from_json(_field(d, "letterbox", dict, where), where + " letterbox"),
                   _field(d, "tokenizer", str, where),
                   Provenance.from_json(_field(d, "provenance", dict, where), where + " provenance"))


Component = Union[SamComponent, LqvgComponent]
_COMPONENT_TYPES = {"sam": SamComponent, "lqvg": LqvgComponent}


def _engine_from_json(path, graph, d):
    where = f"engine entry of {graph}"
    gpu = _field(d, "gpu", dict, where)
    profile = {name: ShapeRange(*(tuple(_field(r, k, list, f"{where} profile '{name}'"))
                                  for k in ("min", "opt", "max")))
               for name, r in _field(d, "profile", dict, where).items()}
    dla = d.get("dla_core")
    return EngineSpec(graph, path / _field(d, "file", str, where), _field(d, "precision", str, where),
                      _field(d, "tensorrt_version", str, where), _field(gpu, "name", str, where + " gpu"),
                      _field(gpu, "compute_capability", str, where + " gpu"), profile,
                      _field(d, "onnx_sha256", str, where), tuple(d.get("fp32_layers", ())),
                      bool(d.get("version_compatible", False)), bool(d.get("lean_runtime_embedded", False)),
                      dla if isinstance(dla, int) and not isinstance(dla, bool) else None)


def _engine_to_json(engine: EngineSpec) -> dict:
    return {"file": engine.path.name, "precision": engine.precision, "tensorrt_version": engine.tensorrt_version,
            "gpu": {"name": engine.gpu_name, "compute_capability": engine.compute_capability},
            "profile": {k: {"min": list(r.min), "opt": list(r.opt), "max": list(r.max)} for k, r in
                        engine.profile.items()},
            "onnx_sha256": engine.onnx_sha256, "fp32_layers": list(engine.fp32_layers),
            "version_compatible": engine.version_compatible, "lean_runtime_embedded": engine.lean_runtime_embedded,
            "dla_core": engine.dla_core}


# ---------------------------------------------------------------- the opened set

_warned = set()


@dataclass
class ModelSet:
    """A validated model-set folder. Use :func:`open`."""

    path: Path
    components: Dict[str, Component]
    _graphs: Dict[str, GraphSpec]
    _engines: Dict[str, EngineSpec]
    _files: Dict[str, Path]
    _builds: Dict[str, dict] = field(default_factory=dict)

    @property
    def sam(self) -> Optional[SamComponent]:
        return self.components.get("sam")

    @property
    def lqvg(self) -> Optional[LqvgComponent]:
        return self.components.get("lqvg")

    @property
    def random_weights(self) -> bool:
        return any(c.provenance.random_weights for c in self.components.values())

    @property
    def warnings(self):
        """The set's warnings (random weights of any component)."""
        return self.warnings_for(self.components)

    def warnings_for(self, used) -> list:
        """The warnings of a result made with the components ``used`` (names): random weights among them."""
        names = ", ".join(n for n in used if n in self.components and self.components[n].provenance.random_weights)
        if not names:
            return []
        return [f"model set {self.path} holds RANDOM weights ({names}): outputs are meaningless; "
                f"use it for tests and latency only"]

    def has(self, name: str) -> bool:
        return name in self.components

    def component(self, name: str) -> Component:
        """The typed entry of a component, or ComponentMissing saying how to add it."""
        if name not in self.components:
            raise ComponentMissing(
                f"model set {self.path} has no '{name}' component (has: {', '.join(self.components) or 'none'}); "
                f"run 'pslg export {name} --out {self.path}'")
        return self.components[name]

    @property
    def graph_names(self) -> Tuple[str, ...]:
        return tuple(self._graphs)

    def graph(self, name: str) -> GraphSpec:
        """The GraphSpec of a graph listed in the manifest."""
        if name not in self._graphs:
            raise ComponentMissing(f"model set {self.path} has no graph '{name}'")
        return self._graphs[name]

    def engine(self, graph: str) -> Optional[EngineSpec]:
        """The TensorRT engine built for ``graph``, or None."""
        return self._engines.get(graph)

    def file(self, key: str) -> Path:
        """Path of a non-graph file listed in the manifest (``tokenizer``)."""
        if key not in self._files:
            raise ComponentMissing(f"model set {self.path} lists no '{key}' file")
        return self._files[key]

    def summary(self) -> dict:
        """What made this set, for result files: each component's provenance and each engine's build."""
        return {"path": str(self.path),
                "components": {n: asdict(c) for n, c in self.components.items()},
                "engines": {g: {"precision": e.precision, "tensorrt_version": e.tensorrt_version, "gpu": e.gpu_name,
                                "fp32_layers": len(e.fp32_layers), **self._builds.get(g, {})}
                            for g, e in self._engines.items()}}


def _as_dir(path, what="model set"):
    if isinstance(path, (str, os.PathLike)) and str(path):
        return Path(path)
    raise ParameterError(f"{what} must be a folder path (str or pathlib.Path), got {type(path).__name__} {path!r}")


def read_manifest(path) -> dict:
    """Load and schema-check ``manifest.json`` of a model-set folder (the raw dict, for writers)."""
    path = _as_dir(path)
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
    for key in ("components", "graphs", "files", "engines"):
        if not isinstance(manifest.get(key), dict):
            raise ManifestError(f"{mpath} has no '{key}' table")
    return manifest


def _checked_file(path, key, entry, verify):
    name = _field(entry, "file", str, key)
    fpath = path / name
    if not fpath.is_file():
        raise ModelFileError(f"model set {path}: {key} file {name} is missing")
    if verify and sha256(fpath) != _field(entry, "sha256", str, key):
        raise ModelFileError(f"model set {path}: {name} does not match its recorded sha256 "
                             f"(truncated, corrupt or replaced); re-export or re-copy it")
    return fpath


def open(path, verify: bool = True) -> ModelSet:
    """Open a model-set folder: schema, component fields, files and their sha256 are checked.

    ``verify=False`` skips hashing (the files must still exist); each graph's
    signature is checked by the backend that opens it.
    """
    if not isinstance(verify, bool):
        raise ParameterError(f"verify must be True or False, got {verify!r}")
    manifest = read_manifest(path)
    path = _as_dir(path)
    components = {}
    for name, entry in manifest["components"].items():
        if name not in _COMPONENT_TYPES:
            raise ManifestError(f"{path / MANIFEST}: unknown component '{name}' (this pslg knows "
                                f"{', '.join(_COMPONENT_TYPES)})")
        components[name] = _COMPONENT_TYPES[name].from_json(entry)
    graphs = {}
    for name, entry in manifest["graphs"].items():
        where = f"graph entry of {name}"
        cpu = entry.get("cpu")
        if cpu is not None and not isinstance(cpu, dict):
            raise ManifestError(f"{path / MANIFEST}: 'cpu' of the {where} must be a table")
        graphs[name] = GraphSpec(name, _checked_file(path, f"graphs.{name}", entry, verify),
                                 tuple(TensorSpec.from_json(t) for t in _field(entry, "inputs", list, where)),
                                 tuple(TensorSpec.from_json(t) for t in _field(entry, "outputs", list, where)),
                                 entry["sha256"],
                                 None if cpu is None else _checked_file(path, f"graphs.{name}.cpu", cpu, verify))
    files = {key: _checked_file(path, f"files.{key}", entry, verify) for key, entry in manifest["files"].items()}
    engines = {}
    for graph, entry in manifest["engines"].items():
        _checked_file(path, f"engines.{graph}", entry, verify)
        engines[graph] = _engine_from_json(path, graph, entry)
    models = ModelSet(path, components, graphs, engines, files,
                      {g: e.get("build", {}) for g, e in manifest["engines"].items()})
    if models.random_weights and str(path.resolve()) not in _warned:
        _warned.add(str(path.resolve()))
        log.warning(models.warnings[0])
    return models


# ---------------------------------------------------------------- writing (the export and build side)

def _empty_manifest():
    return {"format": FORMAT, "schema_version": SCHEMA_VERSION, "components": {}, "graphs": {}, "files": {},
            "engines": {}}


def write_component(path, name: str, component: Component, graphs=None, files=None, cpu_graphs=()) -> ModelSet:
    """Add or replace one component and write the manifest atomically; returns the reopened set.

    Replacing a component drops its graphs' engines (they were built from the
    old graphs). ``graphs`` maps a graph name to ``(inputs, outputs)``
    TensorSpec lists (its file must already be in the folder under
    :func:`graph_file`; for the names in ``cpu_graphs`` also its CPU variant
    under :func:`cpu_graph_file`); ``files`` maps a key to a file name in the
    folder. Hashes are computed here.
    """
    if name not in _COMPONENT_TYPES or not isinstance(component, _COMPONENT_TYPES[name]):
        raise ParameterError(f"component '{name}' must be a {_COMPONENT_TYPES.get(name, 'known component')}")
    path = _as_dir(path)
    manifest = read_manifest(path) if (path / MANIFEST).exists() else _empty_manifest()
    for graph in COMPONENTS[name]:
        manifest["graphs"].pop(graph, None)
        manifest["engines"].pop(graph, None)
    manifest["components"][name] = asdict(component)
    for graph, (inputs, outputs) in (graphs or {}).items():
        fname = graph_file(graph)
        manifest["graphs"][graph] = {"file": fname, "sha256": sha256(path / fname),
                                     "inputs": [t.to_json() for t in inputs],
                                     "outputs": [t.to_json() for t in outputs]}
        if graph in cpu_graphs:
            cname = cpu_graph_file(graph)
            manifest["graphs"][graph]["cpu"] = {"file": cname, "sha256": sha256(path / cname)}
    for key, fname in (files or {}).items():
        manifest["files"][key] = {"file": fname, "sha256": sha256(path / fname)}
    _write_manifest(path, manifest)
    return open(path, verify=False)


def record_engine(path, engine: EngineSpec, build: dict) -> ModelSet:
    """Add the TensorRT engine ``engine`` (its file already in the folder) with its build record."""
    path = _as_dir(path)
    manifest = read_manifest(path)
    if engine.graph not in manifest["graphs"]:
        raise ComponentMissing(f"model set {path} has no graph '{engine.graph}' to record an engine for")
    manifest["engines"][engine.graph] = dict(_engine_to_json(engine), sha256=sha256(engine.path), build=dict(build))
    _write_manifest(path, manifest)
    return open(path, verify=False)


def _write_manifest(path, manifest):
    """Write ``manifest.json`` via a temporary file, so a crash never leaves half a manifest."""
    mpath = Path(path) / MANIFEST
    tmp = mpath.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, mpath)
