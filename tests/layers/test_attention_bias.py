"""Attention projection biases (``bias``: none, qkv as Qwen2, all as Llama's attention_bias): which projections carry
one, the documented parameter count, and the reductions that have none."""
import pytest

from gatelab.config import ConfigError
from gatelab.registry import MIXERS


@pytest.mark.parametrize("key", ["attn", "gated_attn", "swa"])
@pytest.mark.parametrize("bias,qkv,out", [("none", False, False), ("qkv", True, False), ("all", True, True)])
def test_bias_option_sets_the_projection_biases_and_the_count(key, bias, qkv, out):
    layer = MIXERS.get(key)(32, n_heads=4, n_kv_heads=2, bias=bias)
    assert [p.bias is not None for p in (layer.q_proj, layer.k_proj, layer.v_proj)] == [qkv] * 3
    assert (layer.o_proj.bias is not None) == out
    assert sum(p.numel() for p in layer.parameters()) == layer.expected_num_params()


def test_bias_with_chains_counts_too():
    layer = MIXERS.get("attn")(32, n_heads=4, n_chains=2, bias="all")
    assert sum(p.numel() for p in layer.parameters()) == layer.expected_num_params()


def test_reduced_projections_take_no_bias():
    with pytest.raises(ConfigError, match="no_output with bias='qkv': the reduced projections have no biases"):
        MIXERS.get("attn")(32, n_heads=4, no_output=True, bias="qkv")
