"""Numba kernels (placeholder until the kernels land)."""
