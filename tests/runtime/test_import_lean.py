"""The runtime must load without any of the heavy PyTorch-side packages."""
import json
import subprocess
import sys

HEAVY = ("torch", "torchvision", "transformers", "segment_anything")
MODULES = ["pslg.runtime", "pslg.runtime.pipeline", "pslg.runtime.sam", "pslg.runtime.modelset",
           "pslg.runtime.backends.onnxruntime", "pslg.runtime.cli", "pslg.runtime.image", "pslg.runtime.draw"]


def test_runtime_imports_no_heavy_package():
    code = ("import importlib, json, sys\n"
            f"for m in {MODULES!r}: importlib.import_module(m)\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
