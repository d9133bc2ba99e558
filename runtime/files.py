"""Output files and folders: every filesystem failure becomes a PathError that names the path."""
import os
from contextlib import contextmanager
from pathlib import Path

from .errors import PathError


def output_dir(path, create=True) -> Path:
    """Make ``path`` (and its parents) a writable folder, or raise PathError saying why it cannot be.

    ``create=False`` only checks that it could be made: the folder or its
    nearest existing parent is a writable folder, and nothing on the way is a file.
    """
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor or "."))
    if existing.exists() and not existing.is_dir():
        raise PathError(f"output folder {path}: {existing} is a file, not a folder")
    if not create:
        if not os.access(existing, os.W_OK | os.X_OK):
            raise PathError(f"output folder {path} cannot be created: {existing} is not writable")
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PathError(f"cannot create output folder {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise PathError(f"output folder {path} is not writable")
    return path


def output_file(path) -> Path:
    """Check, before any work is done, that ``path`` can be written: its folder is made; a folder there is refused."""
    path = Path(path)
    if path.is_dir():
        raise PathError(f"output file {path} is a folder")
    output_dir(path.parent)
    return path


@contextmanager
def writing(path):
    """Context for writing one output file: its folder is made, and an OSError inside becomes a PathError."""
    path = Path(path)
    output_dir(path.parent)
    try:
        yield path
    except OSError as e:
        raise PathError(f"cannot write {path}: {e.strerror or e}") from None


def write_text(path, text: str) -> Path:
    """Write a text file through a temporary name, so a crash never leaves half a file."""
    with writing(path) as path:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path
