"""The ``pslg`` command: outputs, and bad input ending in a named error and its exit code."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from pslg.runtime.cli import main
from pslg.runtime.errors import (BoxError, ImageError, MissingDependency, ModelSetNotFound, PointError,
                                 all_errors)


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
