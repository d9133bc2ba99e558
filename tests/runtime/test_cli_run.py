"""``pslg run`` and ``pslg warmup``: outputs, several phrases and modes, and bad input as named exit codes."""
import json
import shutil

import cv2
import numpy as np
import pytest

from pslg.runtime import modelset
from pslg.runtime.cli import main
from pslg.runtime.errors import (BoxError, ImageError, ManifestError, ModelFileError, ModelSetNotFound,
                                 TextError)


def test_run_two_phrases_two_modes(pslg_small, data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", str(data_dir / "osbs_029.png"), "--models", str(pslg_small), "--text", "the tree",
                 "--text", "a dead tree", "--mode", "full", "--mode", "classical", "--out", str(out)]) == 0
    report = json.loads((out / "result.json").read_text())
    assert [r["mode"] for r in report["results"]] == ["full", "classical"] * 2
    assert report["results"][2]["grounding"]["text_cached"] is False
    assert "sam_encoder" in report["image_timings_ms"]
    for r in report["results"]:
        mask = cv2.imread(str(tmp_path / r["folder"] / "mask.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape == (400, 400) and int((mask > 0).sum()) == r["mask_area"]
    assert (out / "00-the-tree" / "compare.png").is_file()
    assert any("RANDOM" in w for w in report["warnings"]) and report["models"]["components"]["sam"]["provenance"]
    table = capsys.readouterr().out
    assert "sam_encoder" in table and "sam_decoder" in table and "mbo" in table


def test_run_single_query_writes_into_out(pslg_small, data_dir, tmp_path):
    assert main(["run", str(data_dir / "osbs_029.png"), "--models", str(pslg_small), "--text", "tree",
                 "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} >= {"mask.png", "overlay.png", "result.json"}


def test_long_phrase_is_truncated_not_fatal(pslg_small, data_dir, tmp_path):
    assert main(["run", str(data_dir / "osbs_029.png"), "--models", str(pslg_small), "--text", "tree " * 40,
                 "--mode", "box", "--out", str(tmp_path), "--no-warmup"]) == 0
    result = json.loads((tmp_path / "result.json").read_text())["results"][0]
    assert result["grounding"]["truncated"] and any("truncated" in w for w in result["warnings"])


def _float_image(tmp_path):
    path = tmp_path / "float.tiff"
    cv2.imwrite(str(path), np.zeros((8, 8, 3), np.float32))
    return path


@pytest.mark.parametrize("case, error", [
    ("missing_image", ImageError), ("float_image", ImageError), ("empty_phrase", TextError),
    ("blank_phrase", TextError), ("box_outside", BoxError), ("box_inverted", BoxError), ("box_zero", BoxError),
    ("no_models", ModelSetNotFound), ("other_version", ManifestError), ("truncated_graph", ModelFileError),
])
def test_run_bad_input(case, error, pslg_small, data_dir, tmp_path, capsys):
    image, models, extra = str(data_dir / "osbs_029.png"), pslg_small, ["--text", "tree"]
    if case == "missing_image":
        image = str(tmp_path / "none.png")
    elif case == "float_image":
        image = str(_float_image(tmp_path))
    elif case in ("empty_phrase", "blank_phrase"):
        extra = ["--text", "" if case == "empty_phrase" else "  \t "]
    elif case.startswith("box"):
        extra = ["--box", {"box_outside": "500,500,600,600", "box_inverted": "50,50,10,10",
                           "box_zero": "10,10,10,40"}[case]]
    elif case == "no_models":
        models = tmp_path / "missing"
    else:
        models = shutil.copytree(pslg_small, tmp_path / "set")
        if case == "other_version":
            m = json.loads((models / "manifest.json").read_text())
            m["schema_version"] = modelset.SCHEMA_VERSION + 1
            (models / "manifest.json").write_text(json.dumps(m))
        else:
            graph = models / "lqvg_grounding.onnx"
            graph.write_bytes(graph.read_bytes()[:4096])
    code = main(["run", image, "--models", str(models), "--out", str(tmp_path / "out"), "--no-warmup"] + extra)
    err = capsys.readouterr().err
    assert code == error.code and error.__name__ in err and "Traceback" not in err


def test_warmup_compiles_and_opens(pslg_small, capsys):
    assert main(["warmup", "--models", str(pslg_small), "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["kernels_ms"] >= 0 and {"kernels", "graphs"} <= set(report["pipeline_warmup_ms"])
