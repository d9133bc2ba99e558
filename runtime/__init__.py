"""pslg.runtime: the lean, torch-free side of PSLG-SAM (see ``Pipeline``)."""
from .errors import PslgError
from .pipeline import MODES, Pipeline

__all__ = ["MODES", "Pipeline", "PslgError"]
