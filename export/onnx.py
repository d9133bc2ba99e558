"""ONNX export, simplification, signatures and the parity check against PyTorch."""
import warnings

import numpy as np
import onnx
import torch

from pslg.runtime import backends
from pslg.runtime.errors import ParityError
from pslg.runtime.specs import GraphSpec, TensorSpec, check_signature

#: Opset 17 keeps LayerNorm one node; GridSample (LQVG) needs >= 16.
OPSET = 17

_ONNX_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16",
                onnx.TensorProto.INT64: "int64", onnx.TensorProto.INT32: "int32",
                onnx.TensorProto.BOOL: "bool", onnx.TensorProto.UINT8: "uint8",
                onnx.TensorProto.DOUBLE: "float64"}


def export_graph(module, args, path, inputs, outputs, opset=OPSET, simplify=True):
    """Export ``module(*args)`` to ``path`` with the declared TensorSpec signature, simplify and check it.

    The written graph's inputs and outputs are checked against the declared
    ones (GraphSignatureError), so a manifest never describes another graph.

    String dimensions become dynamic axes. The TorchScript-based exporter is
    used: it needs no onnxscript and emits plain opset-17 graphs that
    TensorRT 8.6+ and ONNX Runtime both take.
    """
    axes = {t.name: {i: d for i, d in enumerate(t.shape) if isinstance(d, str)} for t in inputs + outputs}
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=[t.name for t in inputs],
                          output_names=[t.name for t in outputs], dynamic_axes={k: v for k, v in axes.items() if v},
                          opset_version=opset, do_constant_folding=True, dynamo=False)
    model = onnx.load(str(path))
    if simplify:
        import onnxslim
        model = onnxslim.slim(model)
    _declare_outputs(model, outputs)
    onnx.save(model, str(path))
    onnx.checker.check_model(str(path))
    check_signature(GraphSpec(path.stem, path, tuple(inputs), tuple(outputs)), signature(path))


def _declare_outputs(model, outputs):
    """Write the declared output shapes into the graph (the exporter leaves some dims symbolic)."""
    by_name = {t.name: t for t in outputs}
    for value in model.graph.output:
        dims = value.type.tensor_type.shape.dim
        for dim, want in zip(dims, by_name[value.name].shape):
            if isinstance(want, int):
                dim.dim_value = want
            else:
                dim.dim_param = want


def signature(path):
    """``(inputs, outputs)`` TensorSpec lists read from an ONNX file (dynamic axes by name)."""
    model = onnx.load(str(path), load_external_data=False)

    def specs(values):
        out = []
        for v in values:
            t = v.type.tensor_type
            dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim)
            out.append(TensorSpec(v.name, _ONNX_DTYPES[t.elem_type], dims))
        return out

    initializers = {i.name for i in model.graph.initializer}
    return specs([i for i in model.graph.input if i.name not in initializers]), specs(model.graph.output)


def graph_spec(name, path):
    inputs, outputs = signature(path)
    return GraphSpec(name, path, tuple(inputs), tuple(outputs))


def check_parity(name, path, feeds, reference, tolerances):
    """Run the ONNX file on ONNX Runtime (CPU) and compare with PyTorch's outputs.

    Returns ``{output: max_abs_diff}``; raises ParityError when any output is
    off by more than its tolerance.
    """
    options = backends.RunnerOptions("onnxruntime", "cpu")
    with backends.open_runner(graph_spec(name, path), options) as runner:
        got = runner.run(feeds)
        shapes = {k: (got[k].shape, reference[k].shape) for k in reference if got[k].shape != reference[k].shape}
        if shapes:
            raise ParityError(f"{name}: output shapes differ (ONNX Runtime, PyTorch): {shapes}")
        diffs = {k: float(np.max(np.abs(got[k].astype(np.float64) - reference[k]))) for k in reference}
    bad = {k: d for k, d in diffs.items() if not d <= tolerances[k]}
    if bad:
        raise ParityError(
            f"{name}: ONNX Runtime differs from PyTorch by {bad} (tolerances {tolerances}); nothing was written")
    return diffs
