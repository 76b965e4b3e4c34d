"""``gatelab reproduce``: small-scale, end-to-end reproductions of the papers' claims with verdicts."""
from . import channel_gates, gated_attention, lr_stability, quantizable

REPRODUCTIONS = {"gated-attention": gated_attention.reproduce, "quantizable": quantizable.reproduce,
                 "lr-stability": lr_stability.reproduce, "channel-gates": channel_gates.reproduce}

__all__ = ["REPRODUCTIONS"]
