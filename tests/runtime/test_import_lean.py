"""The runtime loads none of the PyTorch side, and its small pieces load none of its own heavy parts."""
import json
import subprocess
import sys

HEAVY = ("torch", "torchvision", "transformers", "segment_anything", "sam2", "mobile_sam")
MODULES = ["pslg.runtime", "pslg.runtime.pipeline", "pslg.runtime.sam", "pslg.runtime.modelset",
           "pslg.runtime.backends.onnxruntime", "pslg.runtime.cli", "pslg.runtime.image", "pslg.runtime.draw",
           "pslg.runtime.commands.run", "pslg.runtime.commands.verify"]


def loaded_after(code, names):
    """The modules of ``names`` that a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {names!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_runtime_imports_no_heavy_package():
    assert loaded_after(f"import importlib\nfor m in {MODULES!r}: importlib.import_module(m)", HEAVY) == []


def test_errors_and_the_package_face_are_cheap():
    assert loaded_after("import pslg.runtime.errors, pslg.runtime", ("numba", "cv2", "onnxruntime", "numpy")) == []
    assert loaded_after("from pslg.runtime import PslgError", ("numba", "cv2", "onnxruntime")) == []
    assert "numba" in loaded_after("from pslg.runtime import Pipeline", ("numba",))
