"""The Legendre Memory Unit's memory (LMU, LMUFormer): the fixed Legendre delay system, its recurrence, the chunked
form and the parallel FFT form."""
from .chunk import chunk_lmu
from .fft import fft_lmu
from .ref import recurrent_lmu
from .system import legendre_decoder, legendre_delay_system, lmu_system, zoh_discretize

__all__ = ["chunk_lmu", "fft_lmu", "legendre_decoder", "legendre_delay_system", "lmu_system",
           "recurrent_lmu", "zoh_discretize"]
