"""Runner options the tests use: everything on ONNX Runtime's CPU provider."""
from pslg.runtime import RunnerOptions

CPU = RunnerOptions(device="cpu")
