"""The one exporter skeleton every model family runs on.

A family module builds its PyTorch graphs and their check inputs, then calls
:func:`export_component`, which for every graph runs PyTorch on the check
inputs, exports it to ONNX in a staging folder, runs ONNX Runtime on the same
inputs and compares, writes the extra files (a tokenizer), and only when all
of it passed moves the files into the model set and records the component.
A failure at any step leaves the model set as it was.
"""
import contextlib
import importlib.metadata
import logging
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from pslg.runtime import modelset
from pslg.runtime.errors import ExportError
from pslg.runtime.modelset import Provenance
from pslg.runtime.specs import TensorSpec

from . import onnx as onnx_tools
from .fused_attention import onnxruntime_attention

log = logging.getLogger(__name__)
EXPORTER = "torch.onnx (TorchScript)"


@dataclass
class GraphExport:
    """One graph of a component: the module, its signature, the inputs it is checked on and the tolerances.

    ``checks`` are feeds (input name -> array); the first one is also what
    the exporter traces. ``references``: PyTorch's outputs on them, when the
    caller has computed them already (else :meth:`run_pytorch` does). ``tolerances`` maps each output to the largest
    accepted ONNX Runtime vs PyTorch absolute difference. ``cpu_variant``: also export the graph with its attention
    fused for ONNX Runtime on the CPU (:mod:`.fused_attention`), checked against PyTorch alike.
    """

    name: str
    module: torch.nn.Module
    inputs: Tuple[TensorSpec, ...]
    outputs: Tuple[TensorSpec, ...]
    checks: List[Dict[str, np.ndarray]]
    tolerances: Dict[str, float]
    references: List[Dict[str, np.ndarray]] = field(default_factory=list, repr=False)
    cpu_variant: bool = False

    def run_pytorch(self):
        """PyTorch's outputs on every check feed (what ONNX Runtime must reproduce), unless given already."""
        if self.references:
            return
        self.module.eval()
        with torch.no_grad():
            for feeds in self.checks:
                out = self.module(*self.tensors(feeds))
                out = out if isinstance(out, (tuple, list)) else (out,)
                self.references.append({t.name: o.numpy() for t, o in zip(self.outputs, out)})

    def tensors(self, feeds):
        return tuple(torch.from_numpy(feeds[t.name]) for t in self.inputs)


def versions(*packages):
    """Installed versions of the exporter's libraries, for the manifest."""
    found = {}
    for p in ("pslg-sam", "torch", "onnx", "onnxruntime", "onnxslim") + packages:
        try:
            found[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            found[p] = None
    return found


def command_line():
    return "pslg " + shlex.join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("pslg") else shlex.join(sys.argv)


@contextlib.contextmanager
def staging(out, component):
    """A scratch folder inside ``out``; what the export leaves in it moves into ``out`` only on success."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".staging-{component}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _Steps:
    """A tqdm bar over the export's steps; each finished step is also logged with its duration."""

    def __init__(self, component, total):
        self.bar = tqdm(total=total, desc=f"export {component}", unit="step", file=sys.stderr, leave=False)

    @contextlib.contextmanager
    def step(self, what):
        self.bar.set_postfix_str(what)
        t0 = time.perf_counter()
        yield
        log.info("%s: %.1f s", what, time.perf_counter() - t0)
        self.bar.update()

    def close(self):
        self.bar.close()


def export_component(out, name: str, graphs: Sequence[GraphExport], describe: Callable[[Provenance], object], *,
                     weights: dict, files: Dict[str, Tuple[str, Callable[[Path], None]]] = None,
                     packages: Sequence[str] = (), simplify: bool = True) -> modelset.ModelSet:
    """Export, check and record one component (``sam`` or ``lqvg``) of the model set ``out``.

    ``describe(provenance)`` returns the component's typed manifest entry;
    ``weights`` is the record of where the weights came from; ``files``
    maps a key to ``(file name, writer(path))`` for non-graph files;
    ``packages`` are extra libraries whose versions the manifest records.
    Returns the model set, reopened.
    """
    files = files or {}
    variants = [(g, g.name, modelset.graph_file(g.name), False) for g in graphs]
    variants += [(g, f"{g.name}.cpu", modelset.cpu_graph_file(g.name), True) for g in graphs if g.cpu_variant]
    steps = _Steps(name, 2 + 2 * len(variants) + len(files))
    parity = {}
    try:
        with steps.step("running PyTorch on the check inputs"):
            for g in graphs:
                g.run_pytorch()
        with staging(out, name) as tmp:
            for g, _, fname, fused in variants:
                with steps.step(f"exporting {fname}"):
                    _export(g, tmp / fname, simplify, fused)
            for g, key, fname, _ in variants:
                with steps.step(f"checking {fname} against PyTorch on ONNX Runtime"):
                    diffs = [onnx_tools.check_parity(key, tmp / fname, feeds, ref, g.tolerances)
                             for feeds, ref in zip(g.checks, g.references)]
                    parity[key] = {k: max(d[k] for d in diffs) for k in diffs[0]}
            for key, (fname, write) in files.items():
                with steps.step(f"writing {fname}"):
                    write(tmp / fname)
        with steps.step("writing manifest.json"):
            exporter = EXPORTER + (" + onnxslim" if simplify else "")
            provenance = Provenance(weights, parity, versions(*packages), command_line(), exporter,
                                    onnx_tools.OPSET)
            return modelset.write_component(out, name, describe(provenance),
                                            graphs={g.name: (g.inputs, g.outputs) for g in graphs},
                                            files={key: fname for key, (fname, _) in files.items()},
                                            cpu_graphs=[g.name for g in graphs if g.cpu_variant])
    finally:
        steps.close()


def _export(g, path, simplify, fused):
    """Export one graph, or its CPU variant (``fused``: which must have found attention to fuse)."""
    with onnxruntime_attention() if fused else contextlib.nullcontext() as seen:
        onnx_tools.export_graph(g.module, g.tensors(g.checks[0]), path, g.inputs, g.outputs, simplify=simplify)
    if fused and not seen["calls"]:
        raise ExportError(f"{g.name}: a CPU variant was asked for, but the graph has no attention to fuse")
