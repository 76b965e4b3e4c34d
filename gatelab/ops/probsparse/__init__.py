"""ProbSparse self-attention (Informer): the fast form, the readable reference and the key sampling."""
from .fast import probsparse_attention, select_informer, select_online, sparsity_measure
from .ref import measure_reference, probsparse_reference
from .sampling import n_active, n_samples, sample_keys

__all__ = ["measure_reference", "n_active", "n_samples", "probsparse_attention", "probsparse_reference",
           "sample_keys", "select_informer", "select_online", "sparsity_measure"]
