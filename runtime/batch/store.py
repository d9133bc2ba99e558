"""``OUT/results.jsonl``: one line per job, written by one writer, never twice for a job.

A job's outputs are written into a temporary folder and renamed to
``OUT/<id>/`` whole, ``result.json`` last, so a folder with a
``result.json`` is complete and a crash leaves no half job that counts as
done. On opening, a cut last line (a crash mid-write) is dropped; a record
whose folder is gone, and with ``retry_failed`` every failed record, is
dropped too (the file is rewritten through a temporary name), so the jobs
they name run again and get one line each.
"""
import json
import os
from pathlib import Path

from ..errors import JobsFileError
from ..files import output_dir

RESULTS = "results.jsonl"
COMPLETE = "result.json"


def job_folder(out, job_id) -> Path:
    return Path(out) / str(job_id)


def complete(out, job_id) -> bool:
    """True when the job's output folder was renamed into place (it holds its result.json)."""
    return (job_folder(out, job_id) / COMPLETE).is_file()


class ResultsFile:
    """The records of earlier runs (``records``: id -> record) and the appending writer of this one."""

    def __init__(self, out, retry_failed=False):
        self.out = output_dir(out)
        self.path = self.out / RESULTS
        self.records = {}
        if self.path.is_file():
            self._load(retry_failed)
        self._file = open(self.path, "a", encoding="utf-8")

    def _load(self, retry_failed):
        text = self.path.read_text(encoding="utf-8")
        kept, dropped = [], False
        for number, line in enumerate(text.splitlines(keepends=True), start=1):
            if not line.endswith("\n"):       # cut by a crash mid-write
                dropped = True
                break
            try:
                record = json.loads(line)
                job_id, status = record["id"], record["status"]
            except (ValueError, KeyError, TypeError):
                raise JobsFileError(f"{self.path} line {number} is not a job record; delete the file (and the "
                                    f"job folders) to start over") from None
            if (status == "ok" and not complete(self.out, job_id)) or (status != "ok" and retry_failed):
                dropped = True
                continue
            self.records[str(job_id)] = record
            kept.append(line)
        if dropped:
            tmp = self.path.with_name(f".{RESULTS}.tmp")
            tmp.write_text("".join(kept), encoding="utf-8")
            os.replace(tmp, self.path)

    def add(self, record):
        """Append one job's record and flush it to disk."""
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        self.records[str(record["id"])] = record

    def close(self):
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
