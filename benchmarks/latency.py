"""``pslg bench``: per-stage latency of the pipeline, cold start and peak memory, for one or two backends.

Each timed run is one drone frame: ``set_image`` (SAM encoder) then one
``segment`` with the text cache cleared, so every stage runs every time.
"""
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from pslg.runtime.image import load_image
from pslg.runtime.pipeline import MODES, Pipeline
from pslg.runtime.prompts import parse_numbers

from .timing import summary

STAGES = ("tokenise", "text_encoder", "grounding", "sam_encoder", "sam_decoder", "cfpg", "mbo", "total")
DEFAULT_IMAGE = Path(__file__).resolve().parents[1] / "data" / "marina.png"
DEFAULT_TEXT = "the white boat at the end of the pier"


def add_arguments(parser):
    parser.add_argument("--models", required=True, help="model-set folder")
    parser.add_argument("--image", default=str(DEFAULT_IMAGE))
    parser.add_argument("--text", default=DEFAULT_TEXT, help="phrase (ignored with --box)")
    parser.add_argument("--box", help="x1,y1,x2,y2: skip grounding (needed when the set has no LQVG)")
    parser.add_argument("--mode", default="full", choices=MODES)
    parser.add_argument("--runs", type=int, default=20, help="timed runs after warm-up")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first")
    parser.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compare-backend", choices=("onnxruntime", "tensorrt"), help="a second backend, same run")
    parser.add_argument("--compare-device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)")
    parser.add_argument("--no-cold-start", action="store_true", help="skip the fresh-process cold-start measurement")
    parser.add_argument("--json", help="write the results here")


def query_kwargs(args):
    box = parse_numbers(args.box, 4, "box") if args.box else None
    return {"text": None if box else args.text, "box": box, "mode": args.mode}


def steady_state(args, backend, device, image):
    """Per-stage millisecond lists over ``args.runs`` frames, after ``args.warmup`` untimed ones."""
    times = {s: [] for s in STAGES}
    query = query_kwargs(args)
    with Pipeline.open(args.models, backend=backend, device=device, threads=args.threads) as pipeline:
        backends = pipeline.backends
        for i in range(args.warmup + args.runs):
            pipeline.clear_text_cache()
            t0 = time.perf_counter()
            pipeline.set_image(image)
            result = pipeline.segment(**query)
            total = (time.perf_counter() - t0) * 1e3
            if i < args.warmup:
                continue
            stages = dict(result.timings_ms, **pipeline.image_timings_ms, total=total)
            for s in STAGES:
                if s in stages:
                    times[s].append(stages[s])
    return {"backends": backends, "stages": {s: summary(v) for s, v in times.items() if v},
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def cold_start(args, backend, device):
    """Import + open + first query in a fresh process: what a drone pays at boot."""
    child = [sys.executable, "-m", "pslg.benchmarks.cold_start", args.models, args.image, backend, device,
             json.dumps(query_kwargs(args))]
    proc = subprocess.run(child, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def render(report):
    lines = []
    for name, r in report["runs"].items():
        lines.append(f"{name}: {', '.join(sorted(set(r['backends'].values())))} on {r['device']}  "
                     f"(p50/p90/p99 ms over {report['runs_per_backend']} frames)")
        lines.append(f"  {'stage':14s}{'p50':>10s}{'p90':>10s}{'p99':>10s}")
        for s, v in r["stages"].items():
            lines.append(f"  {s:14s}{v['p50']:10.1f}{v['p90']:10.1f}{v['p99']:10.1f}")
        cold = r.get("cold_start")
        if cold and "error" not in cold:
            lines.append(f"  cold start: import {cold['import_ms']:.0f} ms, open {cold['open_ms']:.0f} ms, "
                         f"first query {cold['first_query_ms']:.0f} ms, peak RSS {cold['peak_rss_mb']:.0f} MB")
        elif cold:
            lines.append(f"  cold start failed: {cold['error']}")
        lines.append(f"  peak RSS (steady state): {r['peak_rss_mb']:.0f} MB")
    if "total_p50_ratio" in report:
        lines.append(f"total p50 {report['baseline']} / {report['compared']}: {report['total_p50_ratio']:.2f}x")
    return "\n".join(lines)


def run(args):
    from pslg.runtime.errors import ParameterError
    if args.runs < 1 or args.warmup < 0:
        raise ParameterError("--runs must be >= 1 and --warmup >= 0")
    image = load_image(args.image)
    report = {"image": args.image, "mode": args.mode, "query": query_kwargs(args), "runs_per_backend": args.runs,
              "runs": {}}
    targets = [(args.backend, args.device)]
    if args.compare_backend:
        targets.append((args.compare_backend, args.compare_device))
    for backend, device in targets:
        r = steady_state(args, backend, device, image)
        r["device"] = device
        if not args.no_cold_start:
            r["cold_start"] = cold_start(args, backend, device)
        name = f"{backend}@{device}"
        report["runs"][name if name not in report["runs"] else f"{name} (again)"] = r
    if len(targets) == 2:
        (a, ra), (b, rb) = report["runs"].items()
        report.update(baseline=a, compared=b,
                      total_p50_ratio=ra["stages"]["total"]["p50"] / rb["stages"]["total"]["p50"])
    print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0
