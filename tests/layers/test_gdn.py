"""Gated DeltaNet's grouped value heads (``num_v_heads``, Qwen3-Next): against the same layer with q/k heads
repeated by hand, and against transformers' Qwen3-Next layer (code nobody here wrote)."""
import os

import pytest
import torch

from gatelab.config import ConfigError
from gatelab.registry import MIXERS
from tests.utils import assert_close

D_MODEL, HEAD_DIM = 16, 8


def gdn(**options):
    return MIXERS.get("gdn")(D_MODEL, head_dim=HEAD_DIM, **options).double()


def repeat_rows(w: torch.Tensor, heads: int, times: int) -> torch.Tensor:
    """Rows of ``heads`` blocks, each repeated ``times`` times in place: block i becomes blocks i*times .. +times-1."""
    return w.view(heads, -1, *w.shape[1:]).repeat_interleave(times, dim=0).flatten(0, 1)


@pytest.mark.parametrize("mode", ["chunk", "recurrent"])
def test_grouped_value_heads_equal_q_and_k_repeated_per_value_head(mode):
    """num_v_heads = 2 * n_heads is the layer with one q/k head per value head, where value heads 2i and 2i + 1
    share q/k head i's weights (q/k projections and their short-conv channels); decays and betas stay per value
    head."""
    H, Hv = 2, 4
    grouped = gdn(n_heads=H, num_v_heads=Hv, expand_v=1.0, mode=mode, chunk_size=4)
    full = gdn(n_heads=Hv, expand_v=1.0, mode=mode, chunk_size=4)
    state = grouped.state_dict()
    K = H * HEAD_DIM
    conv = state["conv.conv.weight"]                                                # (2K + V, 1, k)
    state["q_proj.weight"] = repeat_rows(state["q_proj.weight"], H, Hv // H)
    state["k_proj.weight"] = repeat_rows(state["k_proj.weight"], H, Hv // H)
    state["conv.conv.weight"] = torch.cat([repeat_rows(conv[:K], H, Hv // H), repeat_rows(conv[K:2 * K], H, Hv // H),
                                           conv[2 * K:]])
    full.load_state_dict(state)
    x = torch.randn(2, 11, D_MODEL, dtype=torch.float64)
    with torch.no_grad():
        y_grouped, s_grouped = grouped(x)
        y_full, s_full = full(x)
    torch.testing.assert_close(y_grouped, y_full, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(s_grouped.h, s_full.h, atol=1e-12, rtol=1e-12)
    assert s_grouped.h.shape == (2, Hv, HEAD_DIM, HEAD_DIM)


def test_each_value_head_has_its_own_decay_and_beta():
    m = gdn(n_heads=2, num_v_heads=6)
    assert m.A_log.shape == m.dt_bias.shape == (6,)
    assert m.a_proj.out_features == m.b_proj.out_features == 6
    seen = []
    m.decay_probe.register_forward_hook(lambda mod, i, o: seen.append(o))
    m.beta_probe.register_forward_hook(lambda mod, i, o: seen.append(o))
    m(torch.randn(1, 5, D_MODEL, dtype=torch.float64))
    assert [tuple(s.shape) for s in seen] == [(1, 5, 6), (1, 5, 6)]
    assert m.state_size(100) == 6 * HEAD_DIM * 2 * HEAD_DIM + m.conv_state_size()


def test_defaults_are_one_value_head_per_qk_head_twice_as_wide():
    m = gdn(n_heads=2)
    assert m.n_v_heads == 2 and m.head_v == 2 * HEAD_DIM


@pytest.mark.parametrize(("num_v_heads", "match"), [(0, r"num_v_heads=0 is out of range"),
                                                     (1, "num_v_heads must be a multiple of n_heads=2"),
                                                     (3, "num_v_heads must be a multiple of n_heads=2")])
def test_num_v_heads_must_be_a_multiple_of_n_heads(num_v_heads, match):
    with pytest.raises(ConfigError, match=match):
        gdn(n_heads=2, num_v_heads=num_v_heads)


def test_matches_transformers_qwen3_next_layer():
    """Our gdn with Qwen3-Next's shape (twice as many value heads as key heads, values as wide as keys) computes
    what transformers' Qwen3NextGatedDeltaNet computes with the same weights (laid out in its fused projections,
    which interleave each key head's q, k, values and gates). Theirs runs in float32: relative RMS error."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    qwen3_next = pytest.importorskip("transformers.models.qwen3_next.modeling_qwen3_next")
    from transformers import Qwen3NextConfig

    Hk, Hv, dk = 2, 4, HEAD_DIM
    r = Hv // Hk
    ours = gdn(n_heads=Hk, num_v_heads=Hv, expand_v=1.0, norm_eps=1e-6, chunk_size=4)
    cfg = Qwen3NextConfig(hidden_size=D_MODEL, linear_num_key_heads=Hk, linear_num_value_heads=Hv,
                          linear_key_head_dim=dk, linear_value_head_dim=dk, linear_conv_kernel_dim=4,
                          num_hidden_layers=1, layer_types=["linear_attention"], num_attention_heads=2,
                          num_key_value_heads=1, hidden_act="silu", rms_norm_eps=1e-6)
    theirs = qwen3_next.Qwen3NextGatedDeltaNet(cfg, 0).double()
    with torch.no_grad():
        torch.nn.init.normal_(ours.o_norm.norm.weight, 1.0, 0.1)

    def per_key_head(*weights_and_widths):
        return torch.cat([w[i * n:(i + 1) * n] for i in range(Hk) for w, n in weights_and_widths])

    sd = ours.state_dict()
    theirs.load_state_dict({
        "in_proj_qkvz.weight": per_key_head((sd["q_proj.weight"], dk), (sd["k_proj.weight"], dk),
                                            (sd["v_proj.weight"], r * dk), (sd["g_proj.weight"], r * dk)),
        "in_proj_ba.weight": per_key_head((sd["b_proj.weight"], r), (sd["a_proj.weight"], r)),
        "conv1d.weight": sd["conv.conv.weight"], "dt_bias": sd["dt_bias"], "A_log": sd["A_log"],
        "norm.weight": sd["o_norm.norm.weight"], "out_proj.weight": sd["o_proj.weight"],
    })
    x = torch.randn(2, 13, D_MODEL, dtype=torch.float64)
    with torch.no_grad():
        assert_close("gdn vs Qwen3NextGatedDeltaNet", theirs(x), ours(x)[0], 1e-5)
    assert sum(p.numel() for p in theirs.parameters()) == ours.expected_num_params()
