"""The runtime's import graph, lazy imports (inside functions) included: no cycle, nothing above it."""
import ast
from pathlib import Path

import pslg.runtime

ROOT = Path(pslg.runtime.__file__).parent


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["pslg.runtime"] + parts)


def imports(path, modules):
    """The pslg modules ``path`` imports anywhere in its code (``from . import x`` resolved to module x)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pslg")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if not base.startswith("pslg"):
                continue
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in modules else base)
    return found - {name}


def graph():
    files = sorted(ROOT.rglob("*.py"))
    modules = {module_name(f) for f in files}
    return {module_name(f): imports(f, modules) for f in files}


def test_no_runtime_module_names_the_packages_above_it():
    for path in ROOT.rglob("*.py"):
        text = path.read_text()
        assert "pslg.export" not in text and "pslg.benchmarks" not in text, path
    assert all(not m.startswith(("pslg.export", "pslg.benchmarks")) for deps in graph().values() for m in deps)


def test_no_import_cycle_among_runtime_modules():
    edges = {m: {d for d in deps if d.startswith("pslg.runtime")} for m, deps in graph().items()}
    assert "pslg.runtime.backends" in edges["pslg.runtime.pipeline"]      # the walk sees real edges
    state = {}

    def visit(m, path):
        state[m] = "open"
        for d in sorted(edges.get(m, ())):
            assert state.get(d) != "open", " -> ".join(path + [d])
            if d not in state:
                visit(d, path + [d])
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
