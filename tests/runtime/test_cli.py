"""The ``pslg`` command: outputs, and bad input ending in a named error and its exit code."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from pslg.runtime.cli import main
from pslg.runtime.errors import (BoxError, ImageError, MissingDependency, ModelSetNotFound, ParameterError,
                                 PathError, PointError, TextError, all_errors)


def test_segment_writes_mask_overlay_and_json(sam_tiny, data_dir, tmp_path, capsys):
    code = main(["segment", str(data_dir / "osbs_029.png"), "--models", str(sam_tiny[0]),
                 "--box", "150,160,230,250", "--point", "190,205", "--out", str(tmp_path)])
    assert code == 0
    mask = cv2.imread(str(tmp_path / "mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (400, 400) and set(np.unique(mask)) <= {0, 255}
    assert cv2.imread(str(tmp_path / "overlay.png")).shape == (400, 400, 3)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["box"] == [150, 160, 230, 250] and result["point"] == [190, 205]
    assert {"sam_encoder", "sam_decoder"} <= set(result["timings_ms"])
    assert any("RANDOM" in w for w in result["warnings"])
    assert result["mask_area"] == int((mask > 0).sum())
    assert json.loads(capsys.readouterr().out) == result


@pytest.mark.parametrize("args, error", [
    (["IMAGE_MISSING", "--box", "1,1,5,5"], ImageError),
    (["NOT_AN_IMAGE", "--box", "1,1,5,5"], ImageError),
    (["IMAGE", "--box", "500,500,600,600"], BoxError),
    (["IMAGE", "--box", "50,50,10,10"], BoxError),
    (["IMAGE", "--box", "1,2,3"], BoxError),
    (["IMAGE", "--box", "10,10,50,50", "--point", "900,1"], PointError),
    (["IMAGE", "--box", "10,10,50,50", "MODELS_MISSING"], ModelSetNotFound),
])
def test_segment_bad_input_exits_with_its_code(args, error, sam_tiny, data_dir, tmp_path, capsys):
    (tmp_path / "junk.png").write_text("junk")
    paths = {"IMAGE": str(data_dir / "osbs_029.png"), "IMAGE_MISSING": str(tmp_path / "none.png"),
             "NOT_AN_IMAGE": str(tmp_path / "junk.png")}
    argv = ["segment"] + [paths.get(a, a) for a in args if a != "MODELS_MISSING"]
    argv += ["--models", str(tmp_path / "nothing") if "MODELS_MISSING" in args else str(sam_tiny[0]),
             "--out", str(tmp_path / "out")]
    assert main(argv) == error.code
    err = capsys.readouterr().err
    assert error.__name__ in err and "Traceback" not in err


def test_export_without_torch_ends_with_install_hint(tmp_path):
    code = ("import sys; sys.modules['torch'] = None\n"
            "from pslg.runtime.cli import main\n"
            f"sys.exit(main(['export', 'sam', '--random-weights', '--out', {str(tmp_path)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == MissingDependency.code
    assert "pip install 'pslg-sam[export]'" in proc.stderr and "Traceback" not in proc.stderr


def test_error_codes_are_unique_and_stable():
    codes = {cls.__name__: cls.code for cls in all_errors()}
    assert len(set(codes.values())) == len(codes)
    assert codes["PslgError"] == 1 and codes["ImageError"] == 11 and codes["ClosedError"] == 41


def _out_cases(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    return {"a file": afile, "under a file": afile / "sub", "cannot be created": "/proc/pslg-cannot-be-here"}


@pytest.mark.parametrize("where", ["a file", "under a file", "cannot be created"])
@pytest.mark.parametrize("command", ["segment", "run", "locate --draw", "verify --json", "bench --json",
                                     "export sam", "export lqvg"])
def test_every_command_names_an_unwritable_output(command, where, pslg_small, data_dir, tmp_path, capsys):
    out = str(_out_cases(tmp_path)[where])
    image, models = str(data_dir / "osbs_029.png"), str(pslg_small)
    argv = {
        "segment": ["segment", image, "--models", models, "--box", "10,10,50,50", "--out", out],
        "run": ["run", image, "--models", models, "--box", "10,10,50,50", "--mode", "box", "--no-warmup",
                "--out", out],
        "locate --draw": ["locate", image, "--models", models, "--text", "a tree", "--draw", f"{out}/box.png"],
        "verify --json": ["verify", "--models", models, "--backend", "onnxruntime", "--device", "cpu",
                          "--json", f"{out}/verify.json"],
        "bench --json": ["bench", "--models", models, "--box", "10,10,50,50", "--mode", "box", "--runs", "1",
                         "--warmup", "0", "--no-cold-start", "--device", "cpu", "--json", f"{out}/bench.json"],
        "export sam": ["export", "sam", "--model-type", "vit_test", "--random-weights", "--out", out],
        "export lqvg": ["export", "lqvg", "--random-weights", "--text-layers", "1", "--out", out],
    }[command]
    code = main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == PathError.code, err
    assert len(errors) == 1 and f"PathError [{PathError.code}]" in errors[0] and "Traceback" not in err
    assert str(out).split("/")[-1] in errors[0] or "pslg-cannot-be-here" in errors[0]


@pytest.mark.parametrize("argv, error", [
    (["warmup", "--models", "MISSING"], ModelSetNotFound),
    (["bench", "--models", "MODELS", "--image", "MISSING"], ImageError),
    (["bench", "--models", "MODELS", "--runs", "0"], ParameterError),
    (["run", "IMAGE", "--models", "MODELS", "--out", "OUT", "--device", "tpu:0", "--box", "1,1,9,9"], ParameterError),
    (["run", "IMAGE", "--models", "MODELS", "--out", "OUT", "--threads", "-1", "--box", "1,1,9,9"], ParameterError),
    (["segment", "IMAGE", "--models", "MODELS", "--out", "OUT", "--box", "1,1,9,9", "--backend", "tensorrt",
      "--device", "cpu"], ParameterError),
    (["verify", "--models", "MODELS", "--image", "MISSING", "--backend", "onnxruntime"], ImageError),
    (["locate", "IMAGE", "--models", "MODELS", "--text", "   "], TextError),
])
def test_bad_options_end_in_one_named_line(argv, error, pslg_small, data_dir, tmp_path, capsys):
    paths = {"MISSING": str(tmp_path / "missing"), "MODELS": str(pslg_small), "IMAGE": str(data_dir / "osbs_029.png"),
             "OUT": str(tmp_path / "out")}
    assert main([paths.get(a, a) for a in argv]) == error.code
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1 and "Traceback" not in err
    assert error.__name__ in err


def test_a_bug_is_one_line_and_exit_70(monkeypatch, capsys, data_dir, sam_tiny, tmp_path):
    from pslg.runtime.commands import segment
    monkeypatch.setattr(segment, "parse_numbers", lambda *a: 1 / 0)
    monkeypatch.delenv("PSLG_TRACEBACK", raising=False)
    code = main(["segment", str(data_dir / "osbs_029.png"), "--models", str(sam_tiny[0]), "--box", "1,1,9,9",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 70 and "internal error: ZeroDivisionError" in err and "Traceback" not in err
    monkeypatch.setenv("PSLG_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        main(["segment", str(data_dir / "osbs_029.png"), "--models", str(sam_tiny[0]), "--box", "1,1,9,9",
              "--out", str(tmp_path)])
