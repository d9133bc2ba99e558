"""Per-stage latency of the pipeline (p50/p90/p99), cold start and peak memory, for one or two backends.

Each backend runs in a fresh process of its own (:mod:`.frames`), so its
peak RSS and cold start are its own; both run in the same invocation so
their ratio is measured under the same load.
"""
import json
import subprocess
import sys
from dataclasses import asdict

from pslg import data
from pslg.runtime import modelset
from pslg.runtime.commands.options import add_kernel_threads, add_models, add_runner, runner_options
from pslg.runtime.errors import BackendRuntimeError, ParameterError
from pslg.runtime.files import output_file, write_text
from pslg.runtime.image import load_image
from pslg.runtime.pipeline import MODES
from pslg.runtime.prompts import parse_numbers

from .timing import summary

STAGES = ("letterbox", "tokenise", "text_encoder", "grounding", "sam_encoder", "sam_decoder", "cfpg", "mbo", "total")
DEFAULT_TEXT = "the white boat at the end of the pier"


def add_arguments(parser):
    add_models(parser)
    parser.add_argument("--image", default=str(data.path("marina.png")),
                        help="image file (default: the shipped marina.png)")
    parser.add_argument("--text", default=DEFAULT_TEXT, help="phrase (ignored with --box)")
    parser.add_argument("--box", help="x1,y1,x2,y2: skip grounding (needed when the set has no LQVG)")
    parser.add_argument("--mode", default="full", choices=MODES)
    parser.add_argument("--runs", type=int, default=20, help="timed frames after warm-up")
    parser.add_argument("--warmup", type=int, default=2, help="untimed frames first")
    add_runner(parser)
    add_runner(parser, prefix="compare-", default=None)
    add_kernel_threads(parser)
    parser.add_argument("--no-cold-start", action="store_true", help="skip the fresh-process cold-start measurement")
    parser.add_argument("--json", help="write the results here")


def query_kwargs(args):
    box = parse_numbers(args.box, 4, "box") if args.box else None
    return {"text": None if box else args.text, "box": box, "mode": args.mode}


def child(mode, config):
    """Run :mod:`.frames` in a fresh process and return its JSON report."""
    proc = subprocess.run([sys.executable, "-m", "pslg.benchmarks.frames", mode, json.dumps(config)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        raise BackendRuntimeError(f"the {mode} benchmark process failed: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(config, cold):
    steady = child("steady", config)
    stages = {s: summary([f[s] for f in steady["frames"] if s in f]) for s in STAGES
              if any(s in f for f in steady["frames"])}
    report = {"runner": config["runner"], "backends": steady["backends"], "stages": stages,
              "peak_rss_mb": steady["peak_rss_mb"]}
    if cold:
        report["cold_start"] = child("cold", config)
    return report


def render(report):
    lines = []
    for name, r in report["runs"].items():
        lines.append(f"{name}: {', '.join(sorted(set(r['backends'].values())))}  "
                     f"(p50/p90/p99 ms over {report['runs_per_backend']} frames)")
        lines.append(f"  {'stage':14s}{'p50':>10s}{'p90':>10s}{'p99':>10s}")
        for s, v in r["stages"].items():
            lines.append(f"  {s:14s}{v['p50']:10.1f}{v['p90']:10.1f}{v['p99']:10.1f}")
        cold = r.get("cold_start")
        if cold:
            lines.append(f"  cold start: import {cold['import_ms']:.0f} ms, open {cold['open_ms']:.0f} ms, "
                         f"first query {cold['first_query_ms']:.0f} ms, peak RSS {cold['peak_rss_mb']:.0f} MB")
        lines.append(f"  peak RSS (steady state, its own process): {r['peak_rss_mb']:.0f} MB")
    if "total_p50_ratio" in report:
        lines.append(f"total p50 {report['baseline']} / {report['compared']}: {report['total_p50_ratio']:.2f}x")
    return "\n".join(lines)


def run(args):
    if args.runs < 1 or args.warmup < 0:
        raise ParameterError("--runs must be >= 1 and --warmup >= 0")
    report_path = output_file(args.json) if args.json else None
    modelset.open(args.models, verify=False)  # a bad model set or image is refused here, not in a child process
    load_image(args.image)
    targets = [runner_options(args)] + ([runner_options(args, prefix="compare-")] if args.compare_backend else [])
    report = {"image": args.image, "mode": args.mode, "query": query_kwargs(args), "runs_per_backend": args.runs,
              "runs": {}}
    for options in targets:
        config = {"models": args.models, "image": args.image, "runner": asdict(options), "query": query_kwargs(args),
                  "runs": args.runs, "warmup": args.warmup, "kernel_threads": args.kernel_threads}
        name = f"{options.backend}@{options.device}"
        report["runs"][name if name not in report["runs"] else f"{name} (again)"] = measure(config,
                                                                                          not args.no_cold_start)
    if len(targets) == 2:
        (a, ra), (b, rb) = report["runs"].items()
        report.update(baseline=a, compared=b,
                      total_p50_ratio=ra["stages"]["total"]["p50"] / rb["stages"]["total"]["p50"])
    print(render(report))
    if report_path:
        write_text(report_path, json.dumps(report, indent=2) + "\n")
    return 0
