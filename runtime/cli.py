"""The ``pslg`` command: a dispatcher that imports a sub-command only when it runs.

Each sub-command module offers ``add_arguments(parser)`` and ``run(args) -> int``.
Export and benchmark commands live in their own packages, so ``pslg export``
on a runtime-only install ends with an install hint, not an ImportError.
A :class:`~pslg.runtime.errors.PslgError` ends the process with its code.
"""
import argparse
import importlib
import sys
import warnings

from .errors import MissingDependency, PslgError

#: name -> (module, one-line help, extra that provides the module's dependencies)
COMMANDS = {
    "segment": ("pslg.runtime.commands.segment", "segment inside a box with SAM (+ optional point)", None),
    "locate": ("pslg.runtime.commands.locate", "find the box for a phrase with LQVG", None),
    "run": ("pslg.runtime.commands.run", "the full chain: phrase -> box -> point -> mask -> refined mask", None),
    "warmup": ("pslg.runtime.commands.warmup", "compile the Numba kernels ahead of the first query", None),
    "verify": ("pslg.runtime.commands.verify", "compare a backend against ONNX Runtime fp32 on every graph", None),
    "export": ("pslg.export.cli", "export SAM or LQVG to an ONNX model set", "export"),
    "build": ("pslg.export.build", "build TensorRT engines for a model set", "tensorrt"),
    "bench": ("pslg.benchmarks.latency", "per-stage latency of the pipeline", None),
    "eval": ("pslg.benchmarks.evaluate", "RRSIS-D metrics of the pipeline or of a folder of masks", None),
}


def _missing(name, error):
    """The install hint for a sub-command whose dependency is not installed."""
    extra = COMMANDS[name][2]
    hint = f"pip install 'pslg-sam[{extra}]'" if extra else "pip install pslg-sam"
    return MissingDependency(f"'pslg {name}' needs the package '{error.name}', which is not installed: {hint}")


def _format_warning(message, category, *_args, **_kw):
    return f"warning: {message}\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="pslg", description="PSLG-SAM: text-guided segmentation of aerial images.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text, _) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv or ["--help"])
        return 2
    warnings.formatwarning = _format_warning
    name = argv[0]
    try:
        module = importlib.import_module(COMMANDS[name][0])
        cmd = argparse.ArgumentParser(prog=f"pslg {name}", description=COMMANDS[name][1])
        module.add_arguments(cmd)
        args = cmd.parse_args(argv[1:])
        return int(module.run(args) or 0)
    except ModuleNotFoundError as e:
        if not e.name or e.name.startswith("pslg"):
            raise
        error = _missing(name, e)
    except PslgError as e:
        error = e
    except KeyboardInterrupt:
        print(f"pslg {name}: interrupted", file=sys.stderr)
        return 130
    print(f"pslg {name}: error: {error}", file=sys.stderr)
    return error.code


if __name__ == "__main__":
    sys.exit(main())
