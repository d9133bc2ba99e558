"""A JSON-lines file of records that one writer appends to and a rerun resumes from.

Each record is one line, flushed as it is written. On opening, a last line
cut by a crash is dropped, a file whose header names other settings is
refused, and records ``keep`` turns down are dropped; when anything was
dropped the file is rewritten through a temporary name, so it always holds
whole lines, each record once.
"""
import json
import os
from pathlib import Path


class RecordLog:
    """``records`` (key -> record) of earlier runs, and ``add`` for this one's.

    ``key``: the field that identifies a record; ``header``: a first line the
    file must start with (written when the file is new); ``keep(record)``:
    False drops a record on opening; ``error``: the PslgError class of a
    malformed file, named in ``what`` (e.g. "job record").
    """

    def __init__(self, path, key, error, what="record", header=None, keep=None):
        self.path, self.key = Path(path), key
        self.records = {}
        header_line = None if header is None else json.dumps(header, sort_keys=True) + "\n"
        text = self.path.read_text(encoding="utf-8") if self.path.is_file() else ""
        lines = text.splitlines(keepends=True)
        if header_line is not None and lines and lines[0] != header_line:
            raise error(f"{self.path} is not the file of this run (its first line names other settings); "
                        f"delete it or write elsewhere")
        kept = [header_line] if header_line is not None else []
        for number, line in enumerate(lines[len(kept):], start=len(kept) + 1):
            if not line.endswith("\n"):
                break
            try:
                record = json.loads(line)
                record_key = record[key]
            except (ValueError, KeyError, TypeError):
                raise error(f"{self.path} line {number} is not a {what}; delete the file to start over") from None
            if keep is None or keep(record):
                self.records[record_key] = record
                kept.append(line)
        if "".join(kept) != text:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            tmp.write_text("".join(kept), encoding="utf-8")
            os.replace(tmp, self.path)
        self._file = open(self.path, "a", encoding="utf-8")

    def add(self, record: dict) -> None:
        """Append one record and flush it to disk."""
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        self.records[record[self.key]] = record

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
