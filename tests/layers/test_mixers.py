"""The harness every registered token mixer passes: causality, state continuation, finite gradients, params."""
import itertools

import pytest
import torch

from gatelab.config import ConfigError
from gatelab.registry import MIXERS

D_MODEL, N_HEADS, T = 16, 2, 11

GATED_VARIANTS = [
    dict(gate_position=p, gate_granularity=g, gate_sharing=s, gate_mode=m)
    for p, g, s, m in itertools.product(("g1", "g2", "g3", "g4", "g5"), ("elementwise", "headwise"),
                                        ("head_specific", "head_shared"), ("multiplicative", "additive"))
] + [
    dict(gate_activation=a) for a in ("silu", "ns_sigmoid", "identity")
] + [
    dict(gate_mode="additive", gate_activation="silu"),
    dict(gate_source="constant"),
    dict(gate_source="constant", gate_granularity="headwise", gate_init_prob=0.25),
    dict(gate_source="per_head", gate_granularity="headwise", gate_init_prob=0.25),
    dict(gate_source="linear", gate_granularity="headwise", gate_init_prob=0.25),
    dict(gate_granularity="headwise", n_kv_heads=1, gate_position="g2"),
    dict(clip_gamma=-0.05),
    dict(gate_kind="scale"),
    dict(gate_kind="scale", gate_scale=0.25, gate_position="g2", n_kv_heads=1),
    dict(gate_kind="rmsnorm"),
    dict(gate_kind="rmsnorm", gate_norm_eps=1e-5, gate_position="g5"),
    dict(gate_kind="silu"),
    dict(gate_kind="silu", gate_position="g3"),
    dict(gate_source="constant", gate_granularity="headwise"),
    dict(qk_norm=False, rotary_fraction=0.5),
    dict(symmetric=True, no_output=True, gate_position="g2"),
    dict(qk_merged=True, rope=False, qk_norm=False, no_value=True),
]

ATTN_VARIANTS = [dict(n_kv_heads=1), dict(qk_norm=True), dict(rope=False), dict(clip_gamma=-0.1, clip_zeta=1.1),
                 dict(head_dim=6), dict(qk_norm=True, qk_norm_eps=1e-3), dict(rotary_fraction=0.25),
                 dict(rotary_fraction=0.5, n_kv_heads=1, head_dim=12),
                 dict(qk_merged=True, rope=False), dict(qk_merged=True, rope=False, n_kv_heads=1, clip_gamma=-0.05),
                 dict(symmetric=True), dict(symmetric=True, qk_norm=True),
                 dict(qk_merged=True, symmetric=True, rope=False),
                 dict(no_value=True, no_output=True), dict(no_value=True, n_kv_heads=1, head_dim=16)]

CASES = (
    [pytest.param(key, {}, id=key) for key in MIXERS.names()]
    + [pytest.param("attn", opts, id="attn-" + "-".join(f"{k}={v}" for k, v in opts.items())) for opts in ATTN_VARIANTS]
    + [pytest.param("gated_attn", opts, id="gated_attn-" + "-".join(f"{v}" for v in opts.values()))
       for opts in GATED_VARIANTS]
    + [pytest.param("gla", dict(mode="recurrent"), id="gla-recurrent"),
       pytest.param("gla", dict(chunk_size=4, expand_k=1.0), id="gla-chunk4-expand1"),
       pytest.param("swa", dict(window=4), id="swa-window4"),
       pytest.param("swa", dict(window=4, n_kv_heads=1, clip_gamma=-0.05), id="swa-window4-gqa-clipped"),
       pytest.param("gdn", dict(chunk_size=4, head_dim=6), id="gdn-chunk4-headdim6"),
       pytest.param("gdn", dict(use_short_conv=False, mode="recurrent"), id="gdn-noconv-recurrent"),
       pytest.param("gdn", dict(num_v_heads=4, expand_v=1.0, chunk_size=4), id="gdn-qwen3next-grouped-v"),
       pytest.param("gdn", dict(num_v_heads=6, mode="recurrent", head_dim=6), id="gdn-grouped-v3-recurrent"),
       pytest.param("swa", dict(window=4, rotary_fraction=0.5), id="swa-window4-partial-rotary"),
       pytest.param("deltanet", dict(use_output_gate=True, chunk_size=3), id="deltanet-gate-chunk3"),
       pytest.param("retnet", dict(chunk_size=5), id="retnet-chunk5"),
       pytest.param("hgrn2", dict(expand_ratio=3, chunk_size=4), id="hgrn2-ratio3"),
       pytest.param("base_conv", dict(kernel_size=16), id="base_conv-long"),
       pytest.param("gam", dict(num_slots=7), id="gam-7slots"),
       pytest.param("mamba2", dict(d_state=5, chunk_size=4, expand=1), id="mamba2-N5-chunk4"),
       pytest.param("mamba2", dict(n_groups=2, d_state=3, chunk_size=4), id="mamba2-groups2"),
       pytest.param("mamba", dict(d_state=3, chunk_size=4, dt_rank=2), id="mamba-N3-chunk4"),
       pytest.param("based", dict(feature_dim=3, chunk_size=5), id="based-F3"),
       pytest.param("liger", dict(window=3, chunk_size=4), id="liger-window3"),
       pytest.param("liger", dict(window=3, mode="recurrent", mix=0.2), id="liger-recurrent"),
       pytest.param("liger", dict(window=3, rotary_fraction=0.25, qk_norm=True), id="liger-partial-rotary-qknorm"),
       pytest.param("liger", dict(window=3, n_kv_heads=1, chunk_size=4), id="liger-gqa"),
       pytest.param("liger", dict(mix=0.0, n_kv_heads=1, chunk_size=4), id="liger-gated-recurrence-only"),
       pytest.param("liger", dict(mix=0.0, recurrence="linear", chunk_size=4), id="liger-ungated-linear-only"),
       pytest.param("liger", dict(window=3, recurrence="linear", mode="recurrent"), id="liger-ungated-linear-mix"),
       pytest.param("liger", dict(window=3, mix=1.0, n_kv_heads=1), id="liger-window-only"),
       pytest.param("atlas", dict(chunk_size=1, window=3), id="atlas-exact-rule-window3"),
       pytest.param("atlas", dict(chunk_size=3, window=4, mode="recurrent", degree=3, memory_expand=2),
                    id="atlas-chunk3-recurrent-degree3"),
       pytest.param("atlas", dict(ns_steps=0, degree=1, residual=False, use_short_conv=False, window=1),
                    id="atlas-plain-momentum-linear-features"),
       pytest.param("probsparse", dict(factor=1), id="probsparse-sparse"),
       pytest.param("probsparse", dict(factor=1, rope=False, bias=True, mean_over="samples", causal_lazy="sum"),
                    id="probsparse-sparse-informer-options"),
       pytest.param("combiner", dict(block_size=3), id="combiner-fixed-block3"),
       pytest.param("combiner", dict(variant="axial", block_size=3, head_dim=6), id="combiner-axial-block3"),
       pytest.param("combiner", dict(variant="logsparse", rope=False), id="combiner-logsparse"),
       pytest.param("mossformer", dict(group_size=4, query_key_dim=12, kernel_size=3), id="mossformer-group4"),
       pytest.param("mossformer", dict(group_size=3, gating="flash", shift_tokens=False, rope=False,
                                       expansion_factor=2.0), id="mossformer-flash-group3"),
       pytest.param("mossformer", dict(group_size=4, query_key_dim=6, kernel_size=3, norm="scalenorm"),
                    id="mossformer-scalenorm"),
       pytest.param("tokenformer", dict(qkv_slots=5, proj_slots=7, qkv_grown=2, theta="gelu_l2_norm",
                                        n_kv_heads=1), id="tokenformer-slots-grown-gqa"),
       pytest.param("tokenformer", dict(rotary_fraction=0.25), id="tokenformer-paper-rotary"),
       pytest.param("tokenformer", dict(theta="softmax", qk_norm=True, rope=False), id="tokenformer-softmax"),
       pytest.param("flowformer", dict(clamp=5.0, bias=True, chunk_size=4, head_dim=6), id="flowformer-lm-options"),
       pytest.param("kernel_rpe", dict(n_features=5, orthogonal=False, max_distance=3, fft_block=2, qk_norm=True,
                                          mode="fft"),
                    id="kernel_rpe-clipped-blocks2"),
       pytest.param("kernel_rpe", dict(mode="fft", max_distance=5), id="kernel_rpe-fft"),
       pytest.param("lmu", dict(order=5, theta=4.0, mode="recurrent"), id="lmu-order5-recurrent"),
       pytest.param("lmu", dict(order=3, theta=20.0, chunk_size=4), id="lmu-order3-chunk4"),
       pytest.param("hornet", dict(order=5, kernel_size=3), id="hornet-order5-kernel3"),
       pytest.param("hornet", dict(order=1, kernel_size=1, scale=1.0), id="hornet-order1-pointwise"),
       pytest.param("fsmn", dict(inner_dim=6, lorder=3, depth=3, conv_kernel_size=2), id="fsmn-depth3-lorder3"),
       pytest.param("fsmn", dict(lorder=1, conv_kernel_size=1), id="fsmn-pointwise")]
)


# the harness's causal properties hold for every mixer that has a causal form (not the bidirectional-only ones,
# which tests/layers/test_bidirectional.py checks with every other mixer's bidirectional form)
CAUSAL_CASES = [c for c in CASES if MIXERS.get(c.values[0]).directions != "bidirectional"]


def build(key, opts):
    return MIXERS.get(key)(D_MODEL, n_heads=N_HEADS, **opts).double()


LENGTHS = {"vig": 9}  # vig reads its tokens as a square 2-D map


@pytest.mark.parametrize("key,opts", CAUSAL_CASES)
def test_state_continuation(key, opts):
    mixer = build(key, opts)
    x = torch.randn(2, T, D_MODEL, dtype=torch.float64)
    with torch.no_grad():
        y, _ = mixer(x)
        y1, s = mixer(x[:, :4])
        y2, _ = mixer(x[:, 4:], s)
        steps, state = [], mixer.init_state(2)
        for t in range(T):
            y_t, state = mixer.step(x[:, t:t + 1], state)
            steps.append(y_t)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(torch.cat(steps, 1), y, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("key,opts", CAUSAL_CASES)
def test_causal_by_gradient(key, opts):
    mixer = build(key, opts)
    x = torch.randn(1, T, D_MODEL, dtype=torch.float64, requires_grad=True)
    y, _ = mixer(x)
    for t in (0, 5, T - 2):
        (grad,) = torch.autograd.grad(y[:, t].sum(), x, retain_graph=True)
        assert grad[:, t + 1:].abs().max() == 0, f"output {t} depends on later inputs"
        assert grad[:, t].abs().max() > 0


@pytest.mark.parametrize("key,opts", CASES)
def test_finite_gradients_and_documented_param_count(key, opts):
    mixer = build(key, opts)
    x = torch.randn(2, LENGTHS.get(key, T), D_MODEL, dtype=torch.float64)
    y, _ = mixer(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    for name, p in mixer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert sum(p.numel() for p in mixer.parameters()) == mixer.expected_num_params()


@pytest.mark.parametrize("key", MIXERS.names())
def test_state_size_and_description(key):
    mixer = build(key, {})
    assert mixer.description and mixer.paper
    assert 0 < mixer.state_size(64) <= mixer.state_size(128)


def test_documented_gate_parameter_counts():
    d, H, D = 32, 4, 8
    base = MIXERS.get("attn")(d, n_heads=H, qk_norm=True)  # gated_attn has QK-norm by default
    n = sum(p.numel() for p in base.parameters())

    def count(**o):
        return sum(p.numel() for p in MIXERS.get("gated_attn")(d, n_heads=H, **o).parameters()) - n

    assert count() == d * H * D                                   # elementwise G1
    assert count(gate_granularity="headwise") == d * H              # headwise G1
    assert count(gate_position="g5") == d * d                       # dense-output G5
    assert count(gate_source="per_head", gate_granularity="headwise") == H * (d // H + 1)
    assert count(gate_source="constant") == H * D                   # input-independent, elementwise
    assert count(gate_kind="rmsnorm") == D                          # SDPA-RMSNorm: one weight shared by heads
    assert count(gate_kind="silu") == count(gate_kind="scale") == 0
    assert count(qk_norm=False) == d * H * D - 2 * D


def test_gate_init_prob_sets_initial_gate_and_probe_sees_it():
    mixer = MIXERS.get("gated_attn")(16, n_heads=2, gate_source="per_head", gate_granularity="headwise",
                                     gate_init_prob=0.25)
    torch.nn.init.zeros_(mixer.gate.weight)
    seen = []
    mixer.gate.probe.register_forward_hook(lambda m, i, o: seen.append(o))
    mixer(torch.randn(1, 5, 16))
    torch.testing.assert_close(seen[0], torch.full((1, 5, 2, 1), 0.25))


def test_attention_probe_reads_probabilities_only_when_hooked():
    mixer = MIXERS.get("attn")(16, n_heads=2)
    seen = []
    x = torch.randn(1, 6, 16)
    mixer(x)
    handle = mixer.attn_probe.register_forward_hook(lambda m, i, o: seen.append(o))
    y_probe, _ = mixer(x)
    handle.remove()
    assert len(seen) == 1 and seen[0].shape == (1, 2, 6, 6)
    torch.testing.assert_close(y_probe, mixer(x)[0])


@pytest.mark.parametrize("key,opts,match", [
    ("attn", dict(d_model=30, n_heads=4), "not divisible"),
    ("attn", dict(d_model=32, n_heads=4, n_kv_heads=3), "multiple of n_kv_heads"),
    ("attn", dict(d_model=32, n_heads=4, clip_gamma=0.5), "clip_gamma"),
    ("attn", dict(d_model=32, n_heads=4, colour="red"), "unknown config key.*colour.*valid keys"),
    ("gated_attn", dict(d_model=32, n_heads=4, gate_position="g7"), "'g7' is not allowed"),
    ("gated_attn", dict(d_model=32, n_heads=4, gate_source="per_head"), "headwise"),
    ("gated_attn", dict(d_model=32, n_heads=4, gate_init_prob=1.5), "init_prob"),
    ("gated_attn", dict(d_model=32, n_heads=4, gate_kind="rmsnorm", gate_source="constant"), "does not use"),
    ("gated_attn", dict(d_model=32, n_heads=4, gate_kind="rmsnorm", gate_norm_eps=0.0), "gate_norm_eps"),
    ("gated_attn", dict(d_model=32, n_heads=4, gate_kind="scale", gate_scale=float("inf")), "gate_scale"),
    ("gated_attn", dict(d_model=32, n_heads=4, gate_colour="red"), "unknown config key.*gate_colour"),
    ("attn", dict(d_model=32, n_heads=4, qk_norm=True, qk_norm_eps=0.0), "qk_norm_eps"),
    ("attn", dict(d_model=32, n_heads=4, rotary_fraction=0.1), "rotary_fraction"),
    ("gdn", dict(d_model=32, n_heads=4, num_v_heads=6), "num_v_heads must be a multiple"),
    ("gla", dict(d_model=30, n_heads=4), "multiple of n_heads"),
    ("gla", dict(d_model=32, n_heads=4, mode="fused"), "'fused' is not allowed"),
    ("gla", dict(d_model=32, n_heads=4, chunk_size=0), "chunk_size"),
])
def test_bad_options_fail_at_construction(key, opts, match):
    with pytest.raises(ConfigError, match=match):
        MIXERS.get(key)(**opts)


def test_unknown_mixer_lists_valid_keys():
    with pytest.raises(KeyError, match="registered token mixers: .*gated_attn"):
        MIXERS.get("flash")


def test_every_gate_variant_constructs_runs_and_counts_params():
    """Every combination of the choice options: the gate's (kind 'gate') at every position, and each control in
    place of the gate at every position."""
    from typing import Literal, get_args, get_origin, get_type_hints

    from gatelab.layers.token.gates import GateOptions

    choices = {name: get_args(tp) for name, tp in get_type_hints(GateOptions).items() if get_origin(tp) is Literal}
    kinds = choices.pop("kind")
    x = torch.randn(1, 5, D_MODEL)
    combos = [dict(zip(choices, c, strict=True), kind="gate") for c in itertools.product(*choices.values())]
    combos += [dict(position=p, kind=k) for p in choices["position"] for k in kinds if k != "gate"]
    built = 0
    for combo in combos:
        opts = {f"gate_{k}": v for k, v in combo.items()}
        if combo.get("source") == "per_head" and combo["granularity"] != "headwise":
            with pytest.raises(ConfigError, match="headwise"):
                MIXERS.get("gated_attn")(D_MODEL, n_heads=N_HEADS, **opts)
            continue
        mixer = MIXERS.get("gated_attn")(D_MODEL, n_heads=N_HEADS, **opts)
        y, _ = mixer(x)
        assert y.shape == x.shape and torch.isfinite(y).all()
        assert sum(p.numel() for p in mixer.parameters()) == mixer.expected_num_params()
        built += 1
    # every gate combination but per_head x elementwise, and three controls at five positions
    assert built == 5 * 2 * 2 * 2 * 4 * 3 - 5 * 2 * 2 * 4 + 5 * 3
