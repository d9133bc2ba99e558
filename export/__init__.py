"""PyTorch side: checkpoints, ONNX export, TensorRT engine builds."""
