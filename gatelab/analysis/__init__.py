"""Measurements of trained models, read through hooks and probes: attention sinks, massive activations, gate
scores, outliers, simulated quantization, length extrapolation, decoding state."""
from ..tasks.text.windows import windows
from ..train.tasks import perplexity
from .analyze import AnalysisConfig, analyze, analyze_run
from .measure import measure
from .metrics import inf_norm, kurtosis, uniform_f_attn
from .quant import quant_sites, quantize_asymmetric, quantize_symmetric, quantized

__all__ = ["AnalysisConfig", "analyze", "analyze_run", "inf_norm", "kurtosis", "measure", "perplexity", "quant_sites",
           "quantize_asymmetric", "quantize_symmetric", "quantized", "uniform_f_attn", "windows"]
