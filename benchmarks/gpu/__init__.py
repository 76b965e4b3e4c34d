"""Parts of benchmarks/gpu_check.py: the backend equality checks, the op timings and the training-step timings."""
