"""Shared fixtures: shipped data, and model sets exported once per test session."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


@pytest.fixture(scope="session")
def data_dir():
    return DATA


@pytest.fixture(scope="session")
def artifacts_dir():
    """Where tests leave pictures a person can look at (git-ignored)."""
    path = Path(os.environ.get("PSLG_TEST_ARTIFACTS", ROOT / "tests" / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def sam_tiny(tmp_path_factory):
    """A model set with SAM vit_t (seeded random weights) and the same model in PyTorch."""
    pytest.importorskip("segment_anything")
    from pslg.export.sam import export_sam, load_sam
    out = tmp_path_factory.mktemp("sam_tiny")
    export_sam(out, "vit_t", random_weights=True, seed=0)
    model, _ = load_sam("vit_t", random_weights=True, seed=0)
    return out, model
