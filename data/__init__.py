"""Real aerial images shipped with pslg-sam for the demo, the tests and the benchmarks.

MIT-licensed; sources and attribution in ``README.md`` beside this file, the
licence texts in ``licenses/``. ``path("marina.png")`` finds one whether the
package is installed or run from a checkout.
"""
from pathlib import Path

FOLDER = Path(__file__).resolve().parent


def path(name: str) -> Path:
    """The shipped file ``name`` (FileNotFoundError naming what is shipped when it is not)."""
    found = FOLDER / name
    if not found.is_file():
        shipped = sorted(p.name for p in FOLDER.iterdir() if p.suffix in (".png", ".jpeg", ".tif", ".xml"))
        raise FileNotFoundError(f"{name} is not among the shipped data files: {', '.join(shipped)}")
    return found
