"""The ``pslg`` command: a dispatcher over the ``pslg.commands`` entry-point group.

Each package registers its sub-commands in setup.cfg (``name = module
[extra]``), so this module names none of them: the runtime does not depend on
the export or benchmark packages. A sub-command module offers
``add_arguments(parser)`` and ``run(args) -> int``; its docstring's first line
is its help. A module is imported only when its command runs, so ``pslg
export`` on a runtime-only install ends with an install hint naming the extra.

Every failure ends with one line on stderr and a non-zero exit: a
:class:`~pslg.runtime.errors.PslgError` exits with its code, a filesystem
error with :class:`~pslg.runtime.errors.PathError`'s, anything else (a bug)
with 70 (``PSLG_TRACEBACK=1`` shows where it happened).
"""
import argparse
import ast
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys

from .errors import INTERNAL_ERROR, MissingDependency, PathError, PslgError

GROUP = "pslg.commands"


def commands():
    """``{name: entry point}`` of every installed sub-command."""
    try:
        found = importlib.metadata.entry_points(group=GROUP)
    except TypeError:  # Python 3.9
        found = importlib.metadata.entry_points().get(GROUP, ())
    return {ep.name: ep for ep in sorted(found, key=lambda ep: ep.name)}


def _summary(module):
    """A module's docstring's first line, read from its source without importing it (its extra may be missing)."""
    try:
        spec = importlib.util.find_spec(module)
        with open(spec.origin, encoding="utf-8") as f:
            doc = ast.get_docstring(ast.parse(f.read())) or ""
    except (ImportError, AttributeError, OSError, SyntaxError, TypeError):
        return ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


class _Stderr(logging.Handler):
    """``warning: ...`` lines on whatever ``sys.stderr`` is at the time of the message."""

    def emit(self, record):
        print(f"{record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)


def _configure_logging():
    """Library messages of WARNING and above go to stderr; the library itself only logs."""
    logger = logging.getLogger("pslg")
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        logger.addHandler(_Stderr(logging.WARNING))
        logger.setLevel(logging.WARNING)


def _dispatch(name, entry, argv):
    module = importlib.import_module(entry.module)
    parser = argparse.ArgumentParser(prog=f"pslg {name}", description=(module.__doc__ or "").strip() or None,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(argv)) or 0)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    table = commands()
    parser = argparse.ArgumentParser(prog="pslg", description="PSLG-SAM: text-guided segmentation of aerial images.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, entry in table.items():
        sub.add_parser(name, help=_summary(entry.module), add_help=False)
    if not argv or argv[0] not in table:
        parser.parse_args(argv or ["--help"])
        return 2
    _configure_logging()
    name = argv[0]
    try:
        return _dispatch(name, table[name], argv[1:])
    except PslgError as e:
        error = e
    except ModuleNotFoundError as e:
        if not e.name or e.name.startswith("pslg"):
            error = _internal(e)
        else:
            extras = ",".join(table[name].extras)
            hint = f"pip install 'pslg-sam[{extras}]'" if extras else "pip install pslg-sam"
            error = MissingDependency(f"'pslg {name}' needs the package '{e.name}', which is not installed: {hint}")
    except OSError as e:
        error = PathError.from_os_error(e)
    except KeyboardInterrupt:
        print(f"pslg {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not bad input: one line, and the traceback on request
        error = _internal(e)
    if isinstance(error, PslgError):
        print(f"pslg {name}: error: {error}", file=sys.stderr)
        return error.code
    print(f"pslg {name}: internal error: {error} (this is a bug; set PSLG_TRACEBACK=1 to see where)", file=sys.stderr)
    return INTERNAL_ERROR


def _internal(error):
    if os.environ.get("PSLG_TRACEBACK"):
        raise error
    return f"{type(error).__name__}: {error}"


if __name__ == "__main__":
    sys.exit(main())
