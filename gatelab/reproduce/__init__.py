"""``gatelab reproduce``: small-scale, end-to-end reproductions of the papers' claims with verdicts."""
from . import (
    channel_gates,
    gated_attention,
    informer_ett,
    initial_state,
    liger,
    lr_stability,
    lra_listops,
    mamba_synthetic,
    quantizable,
)

REPRODUCTIONS = {"gated-attention": gated_attention.reproduce, "quantizable": quantizable.reproduce,
                 "lr-stability": lr_stability.reproduce, "channel-gates": channel_gates.reproduce,
                 "lra-listops": lra_listops.reproduce, "mamba-synthetic": mamba_synthetic.reproduce,
                 "informer-ett": informer_ett.reproduce, "liger": liger.reproduce,
                 "initial-state": initial_state.reproduce}
# the --data of each reproduction: a corpus for the language-model ones (initial-state: the corpus its PTB models
# adapt to), a series for informer-ett, none otherwise
DEFAULT_DATA = {"gated-attention": "ptb", "quantizable": "ptb", "lr-stability": "ptb", "channel-gates": "ptb",
                "informer-ett": "etth1", "liger": "ptb", "initial-state": "shakespeare"}

__all__ = ["DEFAULT_DATA", "REPRODUCTIONS"]
