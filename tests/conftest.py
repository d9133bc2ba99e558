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


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    """A small RoBERTa-shaped tokenizer (roberta-base's files cannot be downloaded here)."""
    import sys
    sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "lqvg"))
    from lqvg_support import make_tokenizer
    return make_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def pslg_small(tmp_path_factory, tokenizer_dir):
    """A full model set, small configurations of the real classes with seeded random weights:
    SAM vit_t and LQVG with one RoBERTa layer (800 px, up to 12 tokens)."""
    pytest.importorskip("segment_anything")
    from pslg.export.lqvg.export import export_lqvg
    from pslg.export.sam import export_sam
    out = tmp_path_factory.mktemp("pslg_small")
    export_sam(out, "vit_t", random_weights=True, seed=0)
    export_lqvg(out, tokenizer_dir, random_weights=True, seed=3, image_size=800, max_tokens=12, text_layers=1)
    return out
