"""LQVG in PyTorch: the model, official-checkpoint loading and its export."""
