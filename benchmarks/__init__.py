"""Latency and kernel benchmarks, and the RRSIS-D evaluator."""
