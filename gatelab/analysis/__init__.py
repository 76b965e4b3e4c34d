"""Measurements of trained models, read through hooks and probes: attention sinks, massive activations, gate
scores, outliers, simulated quantization, length extrapolation, decoding state."""
from .analyze import AnalysisConfig, analyze, analyze_run
from .measure import measure, perplexity_of, windows
from .metrics import inf_norm, kurtosis
from .quant import quantize_asymmetric, quantize_symmetric, quantized

__all__ = ["AnalysisConfig", "analyze", "analyze_run", "inf_norm", "kurtosis", "measure", "perplexity_of",
           "quantize_asymmetric", "quantize_symmetric", "quantized", "windows"]
