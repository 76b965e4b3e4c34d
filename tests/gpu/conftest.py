"""GPU tests run only where CUDA and flash-linear-attention are available. fla's float32 dots are switched to IEEE
float32 (in a Triton cache of their own) before any kernel compiles, so the float32 comparisons hold the CPU tests'
tolerance; see benchmarks/gpu/equality.py."""
import torch

from benchmarks.gpu.equality import full_precision_fla

if torch.cuda.is_available():
    full_precision_fla()
