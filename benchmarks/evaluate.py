"""RRSIS-D metrics of the pipeline (``--models``) or of a folder of masks from any method (``--predictions``).

Every sentence of the split is one sample. Each finished sample is appended
as one JSON line to a file in the work folder and flushed at once; running the
same command again resumes there and redoes no finished sample. The file's
name holds a hash of the run's settings (data, split, source, mode,
protocol), so different runs can share one work folder.
"""
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pslg.runtime.commands.options import add_runner, runner_options
from pslg.runtime.errors import DatasetError, ImageError, InputError, ParameterError
from pslg.runtime.files import output_file, write_text
from pslg.runtime.image import load_image
from pslg.runtime.records import RecordLog

from . import metrics, rrsisd
from .timing import table

NAMING_TRAP = ("Metric names differ between papers: mIoU (the mean of per-sample IoU) is called 'gIoU' in "
               "some and oIoU (sum of intersections / sum of unions) 'cIoU'; one paper calls oIoU 'gIoU'. "
               "Compare numbers by definition, not by name. The table shows percent, --json fractions.")


def add_arguments(parser):
    parser.epilog = NAMING_TRAP
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--models", help="model-set folder: score the pipeline")
    source.add_argument("--predictions", help="folder of masks from any method, <sent_id>.png, nonzero = object; "
                                              "a missing file is scored as an empty mask and reported")
    parser.add_argument("--data", required=True, help="RRSIS-D root (rrsisd/refs(unc).p, rrsisd/instances.json, "
                                                      "images/rrsisd/JPEGImages/)")
    parser.add_argument("--split", default="test", help="split to score (default: test)")
    parser.add_argument("--limit", type=int, help="score only the split's first N sentences")
    parser.add_argument("--mode", help="pipeline mode with --models: box, box+point, full or classical "
                                       "(default: full)")
    parser.add_argument("--protocol", default="native", choices=tuple(metrics.PROTOCOLS),
                        help="native: score at the ground truth's resolution (default); "
                             "480: resize prediction and ground truth to 480x480 nearest first, as RMSIN does")
    parser.add_argument("--json", help="write the numbers, settings and problems to this JSON file")
    parser.add_argument("--work", default="pslg-eval-work",
                        help="folder for the per-sample results a rerun resumes from (default: ./pslg-eval-work)")
    parser.add_argument("--engine", default="local", choices=("local", "ray"),
                        help="with --models: local runs the pipeline in this process; ray runs the samples as a "
                             "pslg batch on Ray workers (the [ray] extra) and scores their masks")
    parser.add_argument("--workers", type=int, default=1, help="Ray workers (with --engine ray)")
    parser.add_argument("--address", help="Ray cluster to join (with --engine ray); default: start one here")
    add_runner(parser)


class ResultStore(RecordLog):
    """The per-sample records of one run: a header line with the run's settings, then one JSON line per sample.

    A partial last line (a crash mid-write) is cut off on opening.
    """

    def __init__(self, work, run):
        key = hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()[:12]
        super().__init__(Path(work) / f"{run['split']}-{key}.jsonl", "sent_id", ParameterError, "sample record",
                         header={"run": run})


def _score(sample, predict, protocol):
    """One sample's record: I and U of the prediction, or ``excluded`` when its ground truth cannot be decoded."""
    record = {"sent_id": sample.sent_id, "image": sample.image_path.name, "category": sample.category}
    try:
        gt = sample.mask()
    except DatasetError as e:
        return {**record, "excluded": True, "problems": [f"excluded from the metrics: {e.message}"]}
    mask, extra, problems = predict(sample)
    if mask is None:
        mask = np.zeros(gt.shape, bool)
    elif mask.shape[:2] != gt.shape:
        problems.append(f"prediction is {mask.shape[0]}x{mask.shape[1]}, ground truth {gt.shape[0]}x{gt.shape[1]}"
                        " (scored after nearest resizing)")
    i, u = metrics.intersection_union(mask, gt, protocol)
    return {**record, "I": i, "U": u, "iou": metrics.iou(i, u), "problems": problems, **extra}


def score_samples(samples, predict, protocol, store, progress=None):
    """Score every sample not yet in ``store`` and add its record; ``predict(sample) -> (mask, extra, problems)``.

    Returns the records of ``samples`` in their order (resumed ones included).
    """
    for sample in samples:
        if sample.sent_id not in store.records:
            store.add(_score(sample, predict, protocol))
            if progress is not None:
                progress.update()
    return [store.records[s.sent_id] for s in samples]


class _PipelinePredictor:
    """``predict`` for :func:`score_samples` from a pipeline; sets each image once for consecutive samples."""

    def __init__(self, pipeline, mode):
        self.pipeline, self.mode = pipeline, mode
        self._path = self._error = None

    def __call__(self, sample):
        if sample.image_path != self._path:
            self._path, self._error = sample.image_path, None
            try:
                self.pipeline.set_image(load_image(sample.image_path))
            except ImageError as e:
                self._error = e.message
        if self._error:
            return None, {}, [f"no prediction ({self._error}): scored as an empty mask"]
        try:
            result = self.pipeline.segment(text=sample.phrase, mode=self.mode)
        except InputError as e:
            return None, {}, [f"no prediction ({e}): scored as an empty mask"]
        extra = {"box": np.asarray(result.box).tolist() if result.box is not None else None,
                 "timings_ms": {k: float(v) for k, v in result.timings_ms.items()},
                 "warnings": list(result.warnings)}
        return np.asarray(result.mask), extra, []


def evaluate_pipeline(samples, pipeline, mode, protocol, store, progress=None):
    """Score ``pipeline`` (any object with ``set_image(rgb)`` and ``segment(text=, mode=)``) on ``samples``.

    Samples are run grouped by image, so each image is set once; the records come back in ``samples``' order.
    """
    by_image = {}
    for sample in samples:
        by_image.setdefault(sample.image_path, []).append(sample)
    grouped = [s for group in by_image.values() for s in group]
    score_samples(grouped, _PipelinePredictor(pipeline, mode), protocol, store, progress)
    return [store.records[s.sent_id] for s in samples]


def _read_prediction(folder, sample):
    return _read_mask(Path(folder) / f"{sample.sent_id}.png")


def _read_mask(path):
    if not path.is_file():
        return None, {}, [f"prediction {path.name} is missing: scored as an empty mask"]
    data = np.fromfile(str(path), np.uint8)
    mask = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if mask is None:
        return None, {}, [f"prediction {path.name} is not a readable image: scored as an empty mask"]
    return (mask != 0).any(axis=2) if mask.ndim == 3 else mask != 0, {}, []


def evaluate_on_engine(samples, config, protocol, store, progress=None, **engine):
    """Run the samples not yet scored as a batch (``config``: its WorkerConfig) and score the masks it wrote.

    The batch resumes like any other, so an interrupted evaluation redoes no
    finished sample on either side.
    """
    from pslg.runtime.batch.batch import run_batch
    from pslg.runtime.batch.store import COMPLETE, ResultsFile, job_folder
    todo = [s for s in samples if s.sent_id not in store.records]
    if todo:
        jobs = Path(config.out) / "jobs.jsonl"
        write_text(jobs, "".join(json.dumps({"id": str(s.sent_id), "image": str(s.image_path.resolve()),
                                             "text": s.phrase}) + "\n" for s in todo))
        run_batch(jobs, config, progress=False, **engine)
    with ResultsFile(config.out) as results:
        done = results.records

    def predict(sample):
        record = done.get(str(sample.sent_id))
        if record is None or record["status"] != "ok":
            why = record["error"]["message"] if record else "the batch has no record of it"
            return None, {}, [f"no prediction ({why}): scored as an empty mask"]
        folder = job_folder(config.out, sample.sent_id)
        result = json.loads((folder / COMPLETE).read_text())
        mask, _, problems = _read_mask(folder / "mask.png")
        return mask, {"box": result.get("box"), "timings_ms": result.get("timings_ms", {}),
                      "warnings": result.get("warnings", [])}, problems

    return score_samples(samples, predict, protocol, store, progress)


def evaluate_predictions(samples, folder, protocol, store, progress=None):
    """Score the masks in ``folder`` (``<sent_id>.png``, nonzero = object) on ``samples``."""
    return score_samples(samples, lambda sample: _read_prediction(folder, sample), protocol, store, progress)


def report(samples, records, run):
    """The run's settings, sample counts, the metrics overall and per category, problems and warnings."""
    scored = [r for r in records if not r.get("excluded")]
    by_id = {r["sent_id"]: r for r in records}
    problems = []
    for sample in samples:
        found = sample.problems + by_id.get(sample.sent_id, {}).get("problems", [])
        if sample.rles is None:
            found.append("excluded from the metrics: no usable ground truth")
        if found:
            problems.append({"sent_id": sample.sent_id, "image": sample.image_path.name, "problems": found})
    warnings = Counter(w for r in scored for w in r.get("warnings", ()))
    return {**run, "samples": len(samples), "scored": len(scored), "excluded": len(samples) - len(scored),
            **metrics.summarize_by_category((r["category"], r["I"], r["U"]) for r in scored),
            "problems": problems, "warnings": dict(warnings)}


def format_report(result, max_problems=10):
    """The report as text: a heading, the table (percent), then problems and warnings."""
    names = ["n", "mIoU", "oIoU"] + [f"P@{t}" for t in metrics.THRESHOLDS]
    rows = [[name] + [str(s["n"])] + ["-" if s[k] is None else f"{100 * s[k]:.2f}" for k in names[1:]]
            for name, s in [("overall", result["overall"]), *result["categories"].items()]]
    source = f"models {result['models']}, mode {result['mode']}" if "models" in result \
        else f"predictions {result['predictions']}"
    lines = [f"RRSIS-D {result['split']}, protocol {result['protocol']}, {source}: {result['scored']} of "
             f"{result['samples']} samples scored, {result['excluded']} excluded", "",
             table(rows, ["category"] + names), ""]
    lines += [f"problems in {len(result['problems'])} samples:"] if result["problems"] else []
    for p in result["problems"][:max_problems]:
        lines.append(f"  sent {p['sent_id']} ({p['image']}): {'; '.join(p['problems'])}")
    if len(result["problems"]) > max_problems:
        lines.append(f"  ... {len(result['problems']) - max_problems} more (all of them in --json)")
    lines += [f"warning ({count} samples): {text}" for text, count in result["warnings"].items()]
    lines.append(NAMING_TRAP)
    return "\n".join(lines)


def run(args):
    if args.limit is not None and args.limit < 1:
        raise ParameterError(f"--limit must be at least 1, got {args.limit}")
    if args.engine == "ray" and args.models is None:
        raise ParameterError("--engine ray runs a model set: it applies to --models only")
    if args.models is not None:
        from pslg.runtime.pipeline import MODES, Pipeline
        mode = args.mode or "full"
        if mode not in MODES:
            raise ParameterError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        source = {"models": str(Path(args.models).resolve()), "mode": mode}
    else:
        if args.mode is not None:
            raise ParameterError("--mode applies to --models only")
        if not Path(args.predictions).is_dir():
            raise ParameterError(f"--predictions folder {args.predictions} does not exist")
        source = {"predictions": str(Path(args.predictions).resolve()), "mode": None}
    report_path = output_file(args.json) if args.json else None
    samples = rrsisd.load_split(args.data, args.split)[:args.limit]
    run_info = {"data": str(Path(args.data).resolve()), "split": args.split, "protocol": args.protocol, **source}
    scorable = [s for s in samples if s.rles is not None]
    with ResultStore(args.work, run_info) as store, \
            tqdm(total=len(scorable), initial=sum(s.sent_id in store.records for s in scorable), desc="eval",
                 unit="sample", file=sys.stderr) as progress:
        if args.models is not None and args.engine == "ray":
            from pslg.runtime.batch.worker import WorkerConfig
            config = WorkerConfig(args.models, str(store.path.with_suffix("")) + "-batch", runner_options(args), mode)
            records = evaluate_on_engine(scorable, config, args.protocol, store, progress, engine="ray",
                                         workers=args.workers, address=args.address)
        elif args.models is not None:
            with Pipeline.open(args.models, runner_options(args)) as pipeline:
                records = evaluate_pipeline(scorable, pipeline, mode, args.protocol, store, progress)
        else:
            records = evaluate_predictions(scorable, args.predictions, args.protocol, store, progress)
    result = {**report(samples, records, run_info), "work": str(store.path)}
    print(format_report(result))
    if report_path:
        write_text(report_path, json.dumps(result, indent=2) + "\n")
    return 0
