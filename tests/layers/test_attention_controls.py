"""The gated-attention paper's controls in place of the gate (SDPA-RMSNorm, SDPA-SiLU), the fixed output scale and
the input-independent gate (the confound controls), and QK-norm: each against a closed form on ``attn``."""
import pytest
import torch

from gatelab.config import ConfigError
from gatelab.registry import MIXERS

D_MODEL, H, D = 16, 2, 8


def pair(**gate_options):
    """``attn`` with QK-norm and a ``gated_attn`` with the same weights (its gate's own parameters aside)."""
    attn = MIXERS.get("attn")(D_MODEL, n_heads=H, qk_norm=True).double()
    gated = MIXERS.get("gated_attn")(D_MODEL, n_heads=H, **gate_options).double()
    missing, unexpected = gated.load_state_dict(attn.state_dict(), strict=False)
    assert not unexpected and all(name.startswith("gate.") for name in missing)
    return attn, gated


def sdpa_output(attn, x):
    """The input of attn's o_proj, ``[B, T, H, D]``: the SDPA output."""
    seen = []
    handle = attn.o_proj.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    attn(x)
    handle.remove()
    return seen[0].unflatten(-1, (H, D))


@pytest.mark.parametrize("scale", [0.5, 0.25])
def test_fixed_scale_multiplies_the_attention_output(scale):
    options = {"gate_kind": "scale"} if scale == 0.5 else {"gate_kind": "scale", "gate_scale": scale}
    attn, gated = pair(**options)
    x = torch.randn(2, 7, D_MODEL, dtype=torch.float64)
    torch.testing.assert_close(gated(x)[0], scale * attn(x)[0], atol=1e-12, rtol=1e-12)
    assert sum(p.numel() for p in gated.gate.parameters()) == 0
    seen = []
    gated.gate.probe.register_forward_hook(lambda m, i, o: seen.append(o))
    gated(x)
    assert seen[0].shape == (1, 1, 1, 1) and seen[0].item() == scale


def test_sdpa_silu_is_silu_of_the_sdpa_output_without_parameters():
    attn, gated = pair(gate_kind="silu")
    x = torch.randn(2, 7, D_MODEL, dtype=torch.float64)
    expected = attn.o_proj(torch.nn.functional.silu(sdpa_output(attn, x)).flatten(2))
    torch.testing.assert_close(gated(x)[0], expected, atol=1e-12, rtol=1e-12)
    assert sum(p.numel() for p in gated.gate.parameters()) == 0


def test_sdpa_rmsnorm_normalises_each_head_with_eps_1e6():
    attn, gated = pair(gate_kind="rmsnorm")
    with torch.no_grad():
        gated.gate.norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 7, D_MODEL, dtype=torch.float64)
    o = sdpa_output(attn, x)                                                            # (B, T, H, D)
    normed = o / (o.square().mean(-1, keepdim=True) + 1e-6).sqrt() * gated.gate.norm.weight
    torch.testing.assert_close(gated(x)[0], attn.o_proj(normed.flatten(2)), atol=1e-12, rtol=1e-12)
    assert gated.gate.norm.weight.shape == (D,) and gated.gate.norm.eps == 1e-6


@pytest.mark.parametrize("granularity,n_params", [("elementwise", H * D), ("headwise", H)])
def test_input_independent_gate_starts_at_half_and_ignores_the_input(granularity, n_params):
    attn, gated = pair(gate_source="constant", gate_granularity=granularity)
    x = torch.randn(2, 7, D_MODEL, dtype=torch.float64)
    torch.testing.assert_close(gated(x)[0], 0.5 * attn(x)[0], atol=1e-12, rtol=1e-12)
    assert sum(p.numel() for p in gated.gate.parameters()) == n_params
    with torch.no_grad():
        gated.gate.logits.normal_()
    scores = [gated.gate.scores(torch.randn(1, 3, D_MODEL, dtype=torch.float64)) for _ in range(2)]
    torch.testing.assert_close(scores[0], scores[1])


def test_controls_reject_options_they_would_ignore():
    with pytest.raises(ConfigError, match="gate_kind='silu' does not use gate_activation='silu'"):
        MIXERS.get("gated_attn")(D_MODEL, n_heads=H, gate_kind="silu", gate_activation="silu")
    with pytest.raises(ConfigError, match="gate_kind='gate' does not use gate_scale=0.3"):
        MIXERS.get("gated_attn")(D_MODEL, n_heads=H, gate_scale=0.3)
    with pytest.raises(ConfigError, match="gate_kind='scale' does not use gate_norm_eps"):
        MIXERS.get("gated_attn")(D_MODEL, n_heads=H, gate_kind="scale", gate_norm_eps=1e-5)
    with pytest.raises(ConfigError, match="GatedAttention.gate_kind: 'tanh' is not allowed"):
        MIXERS.get("gated_attn")(D_MODEL, n_heads=H, gate_kind="tanh")


def test_qk_norm_defaults_follow_the_papers():
    """gated_attn has Qwen3's QK-norm (RMSNorm over head_dim, eps 1e-6); attn, Vaswani's baseline, has none."""
    gated = MIXERS.get("gated_attn")(D_MODEL, n_heads=H)
    assert gated.q_norm.eps == gated.k_norm.eps == 1e-6 and gated.q_norm.weight.shape == (D,)
    assert MIXERS.get("attn")(D_MODEL, n_heads=H).q_norm is None
    assert MIXERS.get("attn")(D_MODEL, n_heads=H, qk_norm=True, qk_norm_eps=1e-3).k_norm.eps == 1e-3
    assert MIXERS.get("gated_attn")(D_MODEL, n_heads=H, qk_norm=False).q_norm is None
    with pytest.raises(ConfigError, match="qk_norm_eps=0.001 has no effect with qk_norm=False"):
        MIXERS.get("attn")(D_MODEL, n_heads=H, qk_norm_eps=1e-3)


@pytest.mark.parametrize("position", ["g3", "g4"])
def test_headwise_q_or_k_gate_acts_after_qk_norm(position):
    """A headwise gate on q or k scales a whole head; applied before the QK RMSNorm it would be normalised away."""
    gated = MIXERS.get("gated_attn")(D_MODEL, n_heads=H, gate_position=position,
                                     gate_granularity="headwise").double()
    x = torch.randn(2, 7, D_MODEL, dtype=torch.float64)
    y = gated(x)[0]
    with torch.no_grad():
        gated.gate.proj.weight.zero_()                                                  # every score 0.5
    assert (gated(x)[0] - y).abs().max() > 1e-3
