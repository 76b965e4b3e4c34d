"""Sinkformer attention: one Sinkhorn iteration is softmax attention, many make it doubly stochastic, padding is
neither a query nor a key, and it exists only in bidirectional form."""
import pytest
import torch

from gatelab.config import ConfigError
from gatelab.layers.token.sinkhorn import sinkhorn_attention
from gatelab.models.lm import DecoderLM, ModelConfig
from gatelab.registry import MIXERS


def test_one_iteration_is_softmax_attention():
    torch.manual_seed(0)
    sink = MIXERS.get("sinkhorn")(16, n_heads=2, n_iters=1).double()
    attn = MIXERS.get("attn")(16, n_heads=2, causal=False).double()
    attn.load_state_dict(sink.state_dict())
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    torch.testing.assert_close(sink(x)[0], attn(x)[0], atol=1e-10, rtol=1e-10)


def test_many_iterations_make_the_attention_doubly_stochastic():
    scores = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    attn = sinkhorn_attention(scores, n_iters=401, eps=1.0)                # the last iteration normalises rows
    ones = torch.ones(2, 3, 6, dtype=torch.float64)
    torch.testing.assert_close(attn.sum(-1), ones, atol=1e-12, rtol=0)    # every query's weights
    torch.testing.assert_close(attn.sum(-2), ones, atol=1e-8, rtol=0)     # every key's received weights
    softmax = sinkhorn_attention(scores, n_iters=1, eps=1.0)              # rows only: columns are not normalised
    assert (softmax.sum(-2) - 1).abs().max() > 0.1


def test_padding_is_neither_query_nor_key_and_gets_no_weight():
    scores = torch.randn(2, 1, 5, 5, dtype=torch.float64)
    real = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    attn = sinkhorn_attention(scores, n_iters=50, eps=1.0, real=real)
    alone = sinkhorn_attention(scores[1:, :, :3, :3], n_iters=50, eps=1.0)
    torch.testing.assert_close(attn[1, :, :3, :3], alone[0], atol=1e-10, rtol=1e-10)
    assert attn[1, :, 3:].abs().max() == 0 and attn[1, :, :, 3:].abs().max() == 0


def test_a_causal_model_refuses_it_and_bad_options_name_the_option():
    with pytest.raises(ConfigError, match="bidirectional"):
        DecoderLM(ModelConfig(vocab_size=8, d_model=8, n_heads=2, mixer="sinkhorn"))
    with pytest.raises(ConfigError, match="n_iters"):
        MIXERS.get("sinkhorn")(8, n_iters=0)
    with pytest.raises(ConfigError, match="eps"):
        MIXERS.get("sinkhorn")(8, eps=0.0)
    with pytest.raises(ValueError, match="decod"):
        MIXERS.get("sinkhorn")(8, n_heads=2).step(torch.zeros(1, 1, 8), None)
