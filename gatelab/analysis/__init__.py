"""Measurements of trained models, read through hooks and probes: attention sinks, massive activations, gate
scores, outliers, simulated quantization, length extrapolation, decoding state."""
from ..tasks.text.windows import windows
from ..train.tasks import perplexity
from .analyze import AnalysisConfig, analyze, analyze_run
from .measure import measure
from .metrics import inf_norm, kurtosis
from .quant import quantize_asymmetric, quantize_symmetric, quantized

__all__ = ["AnalysisConfig", "analyze", "analyze_run", "inf_norm", "kurtosis", "measure", "perplexity",
           "quantize_asymmetric", "quantize_symmetric", "quantized", "windows"]
