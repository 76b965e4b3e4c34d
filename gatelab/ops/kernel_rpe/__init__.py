"""Kernelized attention with a relative positional encoding: the exactly causal FFT form and the quadratic one."""
from .fft import causal_toeplitz, fft_kernel_rpe
from .ref import quadratic_kernel_rpe

__all__ = ["causal_toeplitz", "fft_kernel_rpe", "quadratic_kernel_rpe"]
