"""The jobs file: one JSON object per line, checked before anything runs, grouped by image into tasks.

A job is ``{"id": ..., "image": PATH, "text": PHRASE | "box": [x1, y1, x2,
y2], "point": [x, y], "mode": MODE, "box_crs": CRS}``; ``id`` (a string
or an integer) is required and unique, ``image`` is required, and one of
``text`` / ``box``. Image paths are relative to the jobs file's folder
unless absolute. What can only be found by running a job (a missing image
file, a box outside its image) fails that job alone, later.
"""
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from ..errors import JobsFileError, PathError

KEYS = ("id", "image", "text", "box", "point", "mode", "box_crs")
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Job:
    """One query of a batch; its id names its output folder."""

    id: str
    image: Path
    text: Optional[str] = None
    box: Optional[Tuple[float, ...]] = None
    point: Optional[Tuple[float, ...]] = None
    mode: Optional[str] = None
    box_crs: Optional[str] = None


def _job(entry, number, where, root):
    def bad(why):
        return JobsFileError(f"{where} line {number}: {why}")

    if not isinstance(entry, dict):
        raise bad(f"a job is a JSON object, got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(KEYS))
    if unknown:
        raise bad(f"unknown keys {unknown} (a job has {', '.join(KEYS)})")
    job_id = entry.get("id")
    if isinstance(job_id, bool) or not isinstance(job_id, (str, int)) or not _SAFE_ID.match(str(job_id)):
        raise bad(f"'id' must be a string or integer of letters, digits, '.', '_' or '-' (it names the job's "
                  f"output folder), got {job_id!r}")
    if not isinstance(entry.get("image"), str) or not entry["image"]:
        raise bad("'image' must be the path of an image file")
    if (entry.get("text") is None) == (entry.get("box") is None):
        raise bad("give exactly one of 'text' and 'box'")
    for key, size in (("box", 4), ("point", 2)):
        value = entry.get(key)
        if value is not None and (not isinstance(value, list) or len(value) != size):
            raise bad(f"'{key}' must be a list of {size} numbers, got {value!r}")
    for key in ("text", "mode", "box_crs"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise bad(f"'{key}' must be a string, got {entry[key]!r}")
    image = Path(entry["image"])
    return Job(str(job_id), image if image.is_absolute() else root / image, entry.get("text"),
               tuple(entry["box"]) if entry.get("box") is not None else None,
               tuple(entry["point"]) if entry.get("point") is not None else None,
               entry.get("mode"), entry.get("box_crs"))


def read_jobs(path) -> List[Job]:
    """Every job of a jobs file, in file order; JobsFileError naming the line of the first bad one."""
    path = Path(path)
    if not path.is_file():
        raise PathError(f"jobs file {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise PathError(f"cannot read jobs file {path}: {e}") from None
    jobs, seen = [], {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as e:
            raise JobsFileError(f"{path} line {number}: not JSON ({e})") from None
        job = _job(entry, number, path, path.parent)
        if job.id in seen:
            raise JobsFileError(f"{path} line {number}: id {job.id!r} is already the id of line {seen[job.id]}")
        seen[job.id] = number
        jobs.append(job)
    if not jobs:
        raise JobsFileError(f"{path} holds no job")
    return jobs


def tasks(jobs: List[Job], chunk: int) -> List[List[Job]]:
    """Jobs grouped by image (first-seen order), each group cut into tasks of at most ``chunk`` jobs.

    A worker keeps its last image, so consecutive tasks of one image read and
    encode it once per worker.
    """
    by_image = {}
    for job in jobs:
        by_image.setdefault(job.image, []).append(job)
    return [group[i:i + chunk] for group in by_image.values() for i in range(0, len(group), chunk)]
