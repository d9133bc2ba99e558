"""Run a jobs file (one JSON job per line) through pipelines on this machine or a Ray cluster, resumably."""
import json

from ..backends.base import BACKENDS
from .. import checks
from ..errors import JobsFailed, ParameterError
from ..pipeline import MODES
from .options import add_kernel_threads, add_models, add_runner, runner_options


def add_arguments(parser):
    add_models(parser)
    parser.add_argument("--jobs", required=True, metavar="JOBS.jsonl",
                        help='one job per line: {"id": ..., "image": PATH, "text": ... | "box": [x1, y1, x2, y2], '
                             '"mode": ..., "point": [x, y]}; ids unique')
    parser.add_argument("--out", required=True, help="output folder: OUT/<id>/ per job and OUT/results.jsonl")
    parser.add_argument("--mode", default="full", choices=MODES, help="mode of jobs that name none (default: full)")
    parser.add_argument("--engine", default="local", choices=("local", "ray"),
                        help="local: one worker in this process; ray: Ray actors (the [ray] extra)")
    parser.add_argument("--workers", type=int, default=1, help="workers (Ray actors), each with one pipeline")
    parser.add_argument("--address", help="Ray cluster to join (e.g. ray://head:10001 or auto); default: start one "
                                          "on this machine")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs each Ray worker asks for")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0,
                        help="GPUs each Ray worker asks for (0.5: two workers share a GPU)")
    parser.add_argument("--chunk", type=int, default=16, help="most jobs of one image sent to a worker at once")
    parser.add_argument("--overlay", action="store_true", help="also write each job's overlay.png")
    parser.add_argument("--retry-failed", action="store_true", help="run again the jobs an earlier run recorded "
                                                                    "as failed")
    parser.add_argument("--json", help="also write the summary here")
    add_runner(parser, backends=BACKENDS)
    add_kernel_threads(parser)


def run(args):
    from ..batch.batch import run_batch
    from ..batch.worker import WorkerConfig
    from ..files import output_file, write_text
    if args.engine == "local" and (args.address or args.workers != 1):
        raise ParameterError("--workers and --address are for --engine ray (local runs one worker in this process)")
    checks.count("--chunk", args.chunk, 1)
    summary_path = output_file(args.json) if args.json else None
    config = WorkerConfig(args.models, args.out, runner_options(args), args.mode, args.overlay, args.kernel_threads)
    options = {} if args.engine == "local" else {"address": args.address, "cpus_per_worker": args.cpus_per_worker,
                                                 "gpus_per_worker": args.gpus_per_worker}
    summary = run_batch(args.jobs, config, args.engine, args.workers, args.chunk, args.retry_failed, **options)
    print(summary.render())
    if summary_path:
        write_text(summary_path, json.dumps(summary.to_json(), indent=2) + "\n")
    failed = summary.failed + summary.failed_before
    if failed:
        raise JobsFailed(f"{failed} of {summary.total} jobs failed; their errors are in {args.out}/results.jsonl")
    return 0
