"""The one fixture system: shipped data, and model sets and reference models built once per test session."""
import os
from pathlib import Path

import numpy as np
import pytest

from tests import lqvg_support as support

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
    """A model set with the small SAM test configuration (seeded random weights) and the same model in PyTorch."""
    pytest.importorskip("segment_anything")
    from pslg.export.sam import export_sam, load_sam
    out = tmp_path_factory.mktemp("sam_tiny")
    export_sam(out, "vit_test", random_weights=True, seed=0)
    model, _ = load_sam("vit_test", random_weights=True, seed=0)
    return out, model


#: the SAM model types whose exported sets the family tests run on, one session fixture each
SAM_FAMILY_TYPES = ["vit_test", "mobile_sam", "sam2.1_hiera_t", pytest.param("sam2.1_hiera_s", marks=pytest.mark.slow)]
#: extra ``pslg export sam`` flags per family fixture (SAM 2's CPU variant and onnxslim are tested on Hiera-T; this
#: keeps both flags tested and the suite short)
EXPORT_FLAGS = {"sam2.1_hiera_s": ("--no-cpu-variant", "--no-simplify")}


@pytest.fixture(scope="session", params=SAM_FAMILY_TYPES)
def sam_family(request, tmp_path_factory):
    """``(model_type, model-set folder, checkpoint, reference model)`` of one SAM family: seeded random weights
    saved as the official checkpoint file, exported from that file by ``pslg export sam``, and loaded into the
    model by the family's own loader."""
    from pslg.runtime.cli import main
    from tests import sam_support
    model_type = request.param
    pytest.importorskip({"vit_test": "segment_anything", "mobile_sam": "mobile_sam"}.get(model_type, "sam2"))
    folder = tmp_path_factory.mktemp(model_type.replace(".", "_"))
    checkpoint = sam_support.random_checkpoint(model_type, folder, seed=4)
    out = folder / "set"
    assert main(["export", "sam", "--model-type", model_type, "--checkpoint", str(checkpoint), "--out", str(out),
                 *EXPORT_FLAGS.get(model_type, ())]) == 0
    return model_type, out, checkpoint, sam_support.official_model(model_type, checkpoint)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    """A small RoBERTa-shaped tokenizer (roberta-base's files cannot be downloaded here)."""
    return support.make_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def pslg_small(tmp_path_factory, tokenizer_dir):
    """A full model set, small configurations of the real classes with seeded random weights:
    SAM's test configuration and LQVG with one RoBERTa layer (800 px, up to 12 tokens)."""
    pytest.importorskip("segment_anything")
    from pslg.export.lqvg.export import export_lqvg
    from pslg.export.sam import export_sam
    out = tmp_path_factory.mktemp("pslg_small")
    export_sam(out, "vit_test", random_weights=True, seed=0)
    export_lqvg(out, tokenizer_dir, random_weights=True, seed=3, image_size=800, max_tokens=12, text_layers=1)
    return out


@pytest.fixture(scope="session")
def lqvg_small(tmp_path_factory, tokenizer_dir):
    """LQVG's test configuration exported by the command line: random weights (seed 3), one RoBERTa layer, 1024 px,
    without onnxslim (``--no-simplify``; the slim pass is tested on ``pslg_small`` and the fixture set)."""
    out = tmp_path_factory.mktemp("lqvg_small")
    assert support.export_cli("--random-weights", "--seed", 3, "--text-layers", 1, "--max-tokens", 12,
                              "--image-size", 1024, "--tokenizer", tokenizer_dir, "--no-simplify", "--out", out) == 0
    return out


@pytest.fixture(scope="session")
def lqvg_fixture():
    """The official implementation's outputs on the seed-7 weights (see tests/fixtures/lqvg/README.md)."""
    with np.load(support.FIXTURE) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="session")
def lqvg_fixture_state(lqvg_fixture):
    """The fixture's official-layout weights as torch tensors; alias keys share one tensor."""
    import torch

    from tests.fixtures.lqvg.lqvg_weights import lqvg_weights
    arrays = lqvg_weights(support.SPEC, seed=int(lqvg_fixture["seed"]))
    tensors = {}
    return {k: tensors.setdefault(id(a), torch.from_numpy(a)) for k, a in arrays.items()}


@pytest.fixture(scope="session")
def lqvg_fixture_model(lqvg_fixture, lqvg_fixture_state):
    """Our LQVG at the fixture's image size with the fixture weights, strictly loaded."""
    from pslg.export.lqvg.checkpoint import load_checkpoint_state
    from pslg.export.lqvg.model import LQVG, Config
    model = LQVG(Config(int(lqvg_fixture["image_size"])))
    return load_checkpoint_state(model, lqvg_fixture_state, "fixture weights").eval()


@pytest.fixture(scope="session")
def lqvg_fixture_set(tmp_path_factory, lqvg_fixture, lqvg_fixture_model, tokenizer_dir):
    """Model set exported from the fixture model with the test tokenizer (the default export path without
    onnxslim, a third of this export; ``pslg_small``'s LQVG is slimmed, and every export checks its final graph)."""
    from pslg.export.lqvg.export import write_modelset
    from pslg.export.lqvg.tokenizer import load_tokenizer
    out = tmp_path_factory.mktemp("lqvg_fixture")
    weights = {"random": False, "generated": f"tests/fixtures/lqvg/lqvg_weights.py, seed {int(lqvg_fixture['seed'])}"}
    write_modelset(out, lqvg_fixture_model, load_tokenizer(tokenizer_dir), weights, simplify=False)
    return out


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster of 2 CPUs, started by the tests and stopped after them."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def osbs_tif(data_dir):
    """The shipped GeoTIFF (EPSG:32617, 0.1 m; the pixels of osbs_029.png) and its 61 crown boxes (pixels)."""
    from tests.kernel_cases import boxes
    return data_dir / "osbs_029.tif", np.array(boxes("osbs_029", smallest=0))


@pytest.fixture(scope="session")
def large_raster(tmp_path_factory):
    """A 13440 x 12960 tiled GeoTIFF with overviews (1/4, 1/8, 1/16), EPSG:32612, 0.1 m: 7 x 12 mirrored tiles of
    the real drone photograph marina.png; and a 1000 x 1000 raster of the same imagery on the same grid origin."""
    pytest.importorskip("rasterio")
    from tests.geo_support import build_large, north_up, read_rgb, write_raster
    folder = tmp_path_factory.mktemp("large_raster")
    image = read_rgb(DATA / "marina.png")
    large = build_large(folder / "large.tif", image, tiles=(7, 12))
    small = write_raster(folder / "small.tif", np.ascontiguousarray(image[:1000, :1000]), crs="EPSG:32612",
                         transform=north_up(528000.0, 4980000.0, 0.1))
    return large, small
