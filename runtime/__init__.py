"""pslg.runtime: the lean, torch-free side of PSLG-SAM."""
from .errors import PslgError

__all__ = ["PslgError"]
