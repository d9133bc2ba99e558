"""Optional dependencies (extras), imported only by the rooms that use them."""
import importlib

from .errors import MissingDependency


def require(module: str, extra: str, what: str):
    """Import ``module`` or raise MissingDependency naming the extra that installs it.

    ``what`` says who needs it (``"GeoTIFF input"``, ``"the Ray engine"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependency(f"{what} needs the package '{e.name or module}', which is not installed: "
                                f"pip install 'pslg-sam[{extra}]'") from None
