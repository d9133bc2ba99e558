"""``OUT/results.jsonl``: one line per job, written by one writer, never twice for a job.

A job's outputs are written into a temporary folder and renamed to
``OUT/<id>/`` whole, ``result.json`` last, so a folder with a
``result.json`` is complete and a crash leaves no half job that counts as
done. On opening, a cut last line (a crash mid-write) is dropped; a record
whose folder is gone, and with ``retry_failed`` every failed record, is
dropped too (the file is rewritten through a temporary name), so the jobs
they name run again and get one line each.
"""
from pathlib import Path

from ..errors import JobsFileError
from ..files import output_dir
from ..records import RecordLog

RESULTS = "results.jsonl"
COMPLETE = "result.json"


def job_folder(out, job_id) -> Path:
    return Path(out) / str(job_id)


def complete(out, job_id) -> bool:
    """True when the job's output folder was renamed into place (it holds its result.json)."""
    return (job_folder(out, job_id) / COMPLETE).is_file()


class ResultsFile(RecordLog):
    """The job records of earlier runs (``records``: id -> record) and the appending writer of this one."""

    def __init__(self, out, retry_failed=False):
        self.out = output_dir(out)

        def keep(record):
            return complete(self.out, record["id"]) if record["status"] == "ok" else not retry_failed

        super().__init__(self.out / RESULTS, "id", JobsFileError, "job record", keep=keep)
