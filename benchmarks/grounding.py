"""LQVG latency on the CPU: our ONNX Runtime path vs our PyTorch model, same weights, same input.

    python -m pslg.benchmarks.grounding --models DIR [--checkpoint PATH] [--image IMG] [--text PHRASE]

The PyTorch model is rebuilt from what the manifest records: the seed of a
random-weights set, or ``--checkpoint`` (its sha256 must match the
manifest's). The text graph and the grounding (image) graph are timed
separately, each as the median of ``--runs`` (the engines alternate, so a
busy machine slows both alike) after ``--warmup`` runs, both engines on the
same number of threads; speed is reported as the ratio PyTorch / ONNX
Runtime of the same run, with the outputs' max abs difference to show both
computed the same thing.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from pslg import data
from pslg.export.lqvg.export import build_lqvg
from pslg.runtime import RunnerOptions, modelset
from pslg.runtime.errors import CheckpointError, ParameterError, PslgError
from pslg.runtime.grounding import COMPONENT, Grounder
from pslg.runtime.image import load_image

from .timing import interleaved

DEFAULT_IMAGE = data.path("osbs_029.png")
DEFAULT_TEXT = "the large white storage tank at the bottom left"


def pytorch_model(models, checkpoint):
    """Our PyTorch LQVG with the weights the model set was exported from."""
    meta = models.component(COMPONENT)
    weights = meta.provenance.weights
    if weights["random"]:
        model, _ = build_lqvg(meta.image_size, random_weights=True, seed=weights["seed"],
                              text_layers=meta.text_layers)
        return model
    if checkpoint is None:
        raise ParameterError(f"{models.path} was exported from {weights['checkpoint']['file']}: "
                             f"pass that file as --checkpoint")
    if modelset.sha256(checkpoint) != weights["checkpoint"]["sha256"]:
        raise CheckpointError(f"{checkpoint} is not the checkpoint {models.path} was exported from "
                              f"({weights['checkpoint']['file']}, sha256 {weights['checkpoint']['sha256'][:12]}...)")
    model, _ = build_lqvg(meta.image_size, checkpoint=checkpoint, text_layers=meta.text_layers)
    return model


def _timed(fns, runs, warmup):
    """Median ms and last output of each function; runs alternate between them, so load hits both alike."""
    times, outs = interleaved(dict(enumerate(fns)), runs, warmup)
    return [(statistics.median(times[i]), outs[i]) for i in range(len(fns))]


def _flat(arrays):
    return np.concatenate([np.asarray(a).ravel() for a in arrays])


def _outputs(result):
    """A grounding result's raw outputs in the PyTorch model's order (logits, then boxes), flattened."""
    return _flat((result.logits, result.boxes_cxcywh))


def benchmark(models_dir, checkpoint=None, image=DEFAULT_IMAGE, text=DEFAULT_TEXT, runs=3, warmup=1, threads=None):
    """Median milliseconds per graph for both engines, their ratio and their outputs' max abs difference."""
    if runs < 1 or warmup < 0:
        raise ParameterError(f"runs must be >= 1 and warmup >= 0, got {runs} and {warmup}")
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    models = modelset.open(models_dir)
    model = pytorch_model(models, checkpoint)
    report = {"models": str(models.path), "image": str(image), "text": text, "threads": threads, "runs": runs,
              "image_size": models.component(COMPONENT).image_size, "stages": {}}
    with Grounder(models, RunnerOptions(device="cpu", threads=threads), cache_size=0) as grounder, torch.no_grad():
        prepared = grounder.prepare_image(load_image(image))
        ids = np.array([grounder.tokenize(text)[1]], np.int64)
        mask = np.ones_like(ids)
        features = grounder.encode_tokens(ids, mask)
        t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)
        t_image, t_features = torch.from_numpy(prepared.tensor), torch.from_numpy(features.features)
        stages = {
            "text": (lambda: grounder.encode_tokens(ids, mask).features,
                     lambda: model.encode_text(t_ids, t_mask).numpy()),
            "grounding": (lambda: _outputs(grounder.ground(prepared, features)),
                          lambda: _flat(model.ground(t_image, t_features, t_mask))),
        }
        for name, (ort_fn, torch_fn) in stages.items():
            (ort_ms, ort_out), (torch_ms, torch_out) = _timed((ort_fn, torch_fn), runs, warmup)
            report["stages"][name] = {"onnxruntime_ms": ort_ms, "pytorch_ms": torch_ms,
                                      "pytorch_over_onnxruntime": torch_ms / ort_ms,
                                      "max_abs_diff": float(np.abs(ort_out - torch_out).max())}
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m pslg.benchmarks.grounding", description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, required=True, metavar="DIR", help="model set with an lqvg component")
    parser.add_argument("--checkpoint", type=Path, metavar="PATH", help="the checkpoint the set was exported from")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="image file (default: data/osbs_029.png)")
    parser.add_argument("--text", default=DEFAULT_TEXT, help="phrase")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per engine and graph (median; default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    parser.add_argument("--threads", type=int, help="threads of both engines (default: torch's)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the report here")
    args = parser.parse_args(argv)
    try:
        report = benchmark(args.models, args.checkpoint, args.image, args.text, args.runs, args.warmup, args.threads)
    except PslgError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return e.code
    print(f"LQVG {report['image_size']} px, CPU, {report['threads']} threads, median of {report['runs']} runs")
    for name, s in report["stages"].items():
        print(f"  {name:<9}  onnxruntime {s['onnxruntime_ms']:9.1f} ms   pytorch {s['pytorch_ms']:9.1f} ms   "
              f"pytorch/onnxruntime {s['pytorch_over_onnxruntime']:.2f}   max abs diff {s['max_abs_diff']:.2e}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
