"""SAM families' latency: our ONNX Runtime path vs each family's PyTorch predictor, and every family vs ViT-B.

    python -m pslg.benchmarks.sam [--model-type T ...] [--baseline vit_b] [--checkpoint T=PATH ...]
                                  [--runs 5] [--json OUT] [--quick]

One invocation measures, on this CPU and the same image and box (each model
type in a fresh process of its own, whose allocator keeps freed memory: see
``ALLOCATOR``):

* the GEMM rate: the best of several float32 ``numpy`` matmuls of two
  2048 x 2048 matrices (multi-threaded BLAS), in FLOP/s;
* per model type: the encoder (a new image: preprocessing and encoder,
  ``set_image`` on the reference side; where the set has a CPU variant of the
  encoder, which ours runs, also the portable graph, as ``portable ratio``) and the decoder (one box prompt with
  upsampling to the image size, ``predict(box=..., multimask_output=False)``),
  ours and the family's own predictor interleaved run by run, so load on the
  machine hits both alike; medians are reported;
* per encoder: its FLOPs counted by ``torch.utils.flop_counter`` on the
  PyTorch encoder graph (one multiply-add = 2 FLOP), so ``fraction of GEMM`` =
  FLOPs / (our encoder seconds x GEMM rate) shows the distance to the limit;
* per encoder: its linear layers alone (``linear ms``), each of its
  ``nn.Linear`` shapes run as PyTorch's ``F.linear`` and as one ONNX Runtime
  Gemm, medians times calls, summed: which side's GEMMs are
  faster on this CPU, apart from the rest of the graph;
* each of our encoders against our encoder of the ``--baseline`` type (ViT-B).

Without a checkpoint a model type is exported from seeded random weights
(latency does not depend on the weights). ``--quick``: the test configuration
only, one run, a small GEMM (the smoke test's mode).
"""
import argparse
import collections
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from pslg import data
from pslg.runtime import backends
from pslg.runtime.backends import RunnerOptions
from pslg.runtime.errors import PslgError
from pslg.runtime.image import load_image
from pslg.runtime.sam import SamModel

from .timing import interleaved, measure, summary, table

DEFAULT_IMAGE = data.path("marina.png")
DEFAULT_BOX = (1238.0, 756.0, 1347.0, 806.0)
DEFAULT_TYPES = ("mobile_sam", "sam2.1_hiera_t", "sam2.1_hiera_s")
CPU = RunnerOptions("onnxruntime", "cpu")


def gemm_rate(n=2048, repeats=5):
    """This CPU's float32 matmul rate in FLOP/s: the best of ``repeats`` n x n x n products."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best


def encoder_profile(encoder, image_size):
    """One forward of a PyTorch encoder graph on a 1 x 3 x S x S image (on the encoder's device: a model built on
    the ``meta`` device is counted without computing): ``(FLOPs, {(M, K, N): calls})``, the second for its
    ``nn.Linear`` layers (M rows of K inputs to N outputs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    shapes = collections.Counter()

    def count(module, inputs, output):
        x = inputs[0]
        shapes[(int(x.numel() // x.shape[-1]), module.in_features, module.out_features)] += 1

    hooks = [m.register_forward_hook(count) for m in encoder.modules() if isinstance(m, torch.nn.Linear)]
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            encoder(torch.zeros(1, 3, image_size, image_size, device=next(encoder.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    return int(counter.get_total_flops()), dict(shapes)


def _gemm_session(m, k, n):
    """ONNX Runtime running one Linear layer as it exports (Gemm, weights transposed, as initialisers) on the CPU,
    with our runner's session options."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from pslg.runtime.backends.onnxruntime import session_options
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape, dtype=np.float32), name)
               for name, shape in (("w", (n, k)), ("b", (n,)))]
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], "linear",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return ort.InferenceSession(model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])


def linear_ms(shapes, runs):
    """The encoder's linear layers alone, in milliseconds a forward: per (M, K, N) shape the median of ``runs``
    runs of PyTorch's ``F.linear``, then of ONNX Runtime's Gemm (in turn, not interleaved: neither side's idle
    threads then spin beside the other's run), times its calls, summed."""
    import torch
    total = {"pytorch": 0.0, "onnxruntime": 0.0}
    for (m, k, n), calls in shapes.items():
        x = np.random.default_rng(1).standard_normal((m, k), dtype=np.float32)
        xt, w, b = torch.from_numpy(x), torch.randn(n, k), torch.randn(n)
        session = _gemm_session(m, k, n)
        for side, fn in (("pytorch", lambda: torch.nn.functional.linear(xt, w, b)),
                         ("onnxruntime", lambda: session.run(None, {"x": x}))):
            total[side] += calls * float(np.median(measure(fn, runs)))
    return total


def measure_type(model_type, checkpoint, image, box, runs, seed=0):
    """Encoder and decoder milliseconds of ours and the reference, and the encoder's FLOPs, for one model type."""
    import torch

    from pslg.export import sam_families
    from pslg.export.sam import export_sam, load_sam
    family = sam_families.model_type(model_type).family.load_module()
    random = checkpoint is None
    with tempfile.TemporaryDirectory() as models_dir:
        models = export_sam(models_dir, model_type, checkpoint=checkpoint, random_weights=random, seed=seed)
        reference, _ = load_sam(model_type, checkpoint=checkpoint, random_weights=random, seed=seed)
        encoder_spec = models.graph("sam_encoder")
        encoder, decoder = (backends.open_runner(s, CPU) for s in (encoder_spec, models.graph("sam_decoder")))
        runners = [encoder, decoder]
        portable = None                          # ours runs a CPU variant where there is one; the portable graph
        if encoder_spec.cpu_path is not None:    # is timed beside it
            portable = backends.open_runner(encoder_spec.portable(), CPU)
            runners.append(portable)
    try:
        ours = SamModel(encoder, decoder, models.sam)
        predictor = family.predictor(reference)
        flops, shapes = encoder_profile(family.graphs(reference)[0].eval(), models.sam.image_size)
        mask = np.empty(image.shape[:2], bool)
        state = {}                  # the encoder's warm-up call fills it before the decoder runs
        encoders = {"pytorch": lambda: predictor.set_image(image),
                    "onnxruntime": lambda: state.update(encoding=ours.encode(image))}
        if portable is not None:
            plain = SamModel(portable, decoder, models.sam)
            encoders["onnxruntime_portable"] = lambda: plain.encode(image)
        with torch.inference_mode():
            enc, _ = interleaved(encoders, runs)
            dec, _ = interleaved({"pytorch": lambda: predictor.predict(box=box, multimask_output=False),
                                  "onnxruntime": lambda: ours.segment(state["encoding"], box, out=mask)}, runs)
            linear = linear_ms(shapes, runs)
    finally:
        for r in runners:
            r.close()
    result = {"model_type": model_type, "family": models.sam.family, "encoder_gflop": flops / 1e9,
              "weights": "checkpoint" if checkpoint else f"random, seed {seed}",
              "encoder_ms": {k: summary(v) for k, v in enc.items()},
              "decoder_ms": {k: summary(v) for k, v in dec.items()},
              "encoder_linear_ms": linear}
    for stage in ("encoder_ms", "decoder_ms"):
        s = result[stage]
        s["speedup_p50"] = s["pytorch"]["p50"] / s["onnxruntime"]["p50"]
    return result


def _portable(enc):
    """The portable graph's encoder ratio, where ours ran a CPU variant."""
    p = enc.get("onnxruntime_portable")
    return "-" if p is None else f"{enc['pytorch']['p50'] / p['p50']:.2f}x"


#: glibc keeps freed memory in its heap instead of unmapping it, so PyTorch's large CPU tensors are not faulted in
#: afresh on every run (MobileSAM's predictor, fresh process: 1.8 s a run without this, 0.9 s with it); ONNX
#: Runtime's arena does the same for its side. Without it, PyTorch's figure depends on what ran before it.
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(2 ** 31 - 1), "MALLOC_TRIM_THRESHOLD_": str(2 ** 31 - 1)}


def _fresh_process(fn, *args):
    """``fn(*args)`` in a new interpreter started with :data:`ALLOCATOR`: one model type's heap and threads never
    touch the next one's timing."""
    saved = {k: os.environ.get(k) for k in ALLOCATOR}
    os.environ.update(ALLOCATOR)
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            future = pool.submit(fn, *args)
    finally:
        for k, v in saved.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v
    return future.result()


def run_benchmark(model_types=DEFAULT_TYPES, baseline="vit_b", checkpoints=None, image_path=DEFAULT_IMAGE,
                  box=DEFAULT_BOX, runs=5, gemm_n=2048):
    """The whole comparison in one run (see the module docstring); returns a JSON-ready dict."""
    import torch

    from pslg.export import sam_families
    types = [baseline] + [t for t in model_types if t != baseline]
    for t in types:                      # an unknown type is named before anything is exported or timed
        sam_families.model_type(t)
    checkpoints = checkpoints or {}
    image = load_image(image_path)
    box = np.asarray(box, np.float64)
    rate = gemm_rate(gemm_n)
    results = [_fresh_process(measure_type, t, checkpoints.get(t), image, box, runs) for t in types]
    base_ms = results[0]["encoder_ms"]["onnxruntime"]["p50"]
    for r in results:
        ms = r["encoder_ms"]["onnxruntime"]["p50"]
        r["encoder_fraction_of_gemm"] = r["encoder_gflop"] * 1e9 / (ms / 1e3 * rate)
        r["encoder_speedup_vs_baseline"] = base_ms / ms
    return {"image": str(image_path), "image_size": list(image.shape[:2]), "box": box.tolist(), "runs": runs,
            "torch_threads": torch.get_num_threads(), "gemm": {"n": gemm_n, "gflops": rate / 1e9},
            "baseline": baseline, "results": results}


def report(r):
    """The human table of a :func:`run_benchmark` result."""
    rows = []
    for x in r["results"]:
        enc, dec = x["encoder_ms"], x["decoder_ms"]
        rows.append([x["model_type"], enc["pytorch"]["p50"], enc["onnxruntime"]["p50"], f"{enc['speedup_p50']:.2f}x",
                     _portable(enc), f"{x['encoder_gflop']:.0f}", f"{x['encoder_fraction_of_gemm']:.2f}",
                     f"{x['encoder_speedup_vs_baseline']:.2f}x", x["encoder_linear_ms"]["pytorch"],
                     x["encoder_linear_ms"]["onnxruntime"], dec["pytorch"]["p50"], dec["onnxruntime"]["p50"],
                     f"{dec['speedup_p50']:.2f}x"])
    head = (f"SAM families, image {r['image_size'][1]}x{r['image_size'][0]}, median of {r['runs']} interleaved runs, "
            f"fp32 GEMM {r['gemm']['gflops']:.0f} GFLOP/s, torch threads {r['torch_threads']}")
    return head + "\n" + table(rows, ["model type", "enc pytorch ms", "enc ours ms", "ratio", "portable ratio",
                                      "GFLOP", "of GEMM",
                                      f"vs {r['baseline']}", "linear pytorch ms", "linear ours ms",
                                      "dec pytorch ms", "dec ours ms", "ratio"])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pslg.benchmarks.sam", description=__doc__.splitlines()[0])
    parser.add_argument("--model-type", action="append", help=f"model type to measure (repeatable; default "
                        f"{', '.join(DEFAULT_TYPES)})")
    parser.add_argument("--baseline", default="vit_b", help="model type every encoder is compared with")
    parser.add_argument("--checkpoint", action="append", default=[], metavar="TYPE=PATH",
                        help="official checkpoint of a type (default: seeded random weights)")
    parser.add_argument("--image", default=str(DEFAULT_IMAGE))
    parser.add_argument("--runs", type=int, default=5, help="interleaved timed runs per stage after one warm-up")
    parser.add_argument("--quick", action="store_true", help="the test configuration only, one run, small GEMM")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)
    if any("=" not in c for c in args.checkpoint):
        parser.error("--checkpoint takes TYPE=PATH")
    checkpoints = dict(c.split("=", 1) for c in args.checkpoint)
    try:
        r = measure_all(args, checkpoints)
    except PslgError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.code
    print(report(r))
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2) + "\n")
    return 0


def measure_all(args, checkpoints):
    if args.quick:
        return run_benchmark(("vit_test",), "vit_test", checkpoints, args.image, runs=1, gemm_n=512)
    return run_benchmark(tuple(args.model_type or DEFAULT_TYPES), args.baseline, checkpoints, args.image,
                         runs=args.runs)


if __name__ == "__main__":
    sys.exit(main())
