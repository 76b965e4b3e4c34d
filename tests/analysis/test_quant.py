"""Simulated W8A8 in the paper's full scope: which tensors are quantized, each once per forward, and a forward
written out by hand with a quantizer at every site gives the same logits."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gatelab.analysis.analyze import AnalysisConfig
from gatelab.analysis.quant import (
    RunningMinMax,
    Site,
    mse_limit,
    percentile,
    quant_sites,
    quantize_asymmetric,
    quantize_symmetric,
    quantized,
)
from gatelab.config import ConfigError
from gatelab.models import DecoderLM, ModelConfig


def tiny(mixer: str = "attn", **kw) -> DecoderLM:
    torch.manual_seed(0)
    return DecoderLM(ModelConfig(vocab_size=40, d_model=16, n_layers=2, n_heads=2, mixer=mixer, **kw)).double()


def calibration(n: int = 3) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randint(0, 40, (2, 12), generator=gen) for _ in range(n)]


def expected_sites(layers: int, gate: bool) -> set[str]:
    sites = {"embed:output", "head:input"}
    for i in range(layers):
        m, c = f"blocks.{i}.mixer", f"blocks.{i}.channel"
        sites |= {f"{m}.{p}:{w}" for p in ("q_proj", "k_proj", "v_proj", "o_proj") for w in ("input", "output")}
        sites |= {f"{m}.{p}:output" for p in ("score_probe", "attn_probe", "context_probe")}
        sites |= {f"blocks.{i}.{p}:output" for p in ("mixer_sum_probe", "channel_sum_probe")}
        sites |= {f"{c}.w1:input", f"{c}.w3:input", f"{c}.w2:input", f"{c}.w2:output"}
        if gate:
            sites.add(f"{m}.gate.proj:input")
    return sites


def test_full_scope_quantizes_every_named_tensor_once_per_forward():
    model = tiny("gated_attn")
    linear = {str(s) for s in quant_sites(model, "linear")}
    assert linear == {s for s in expected_sites(2, gate=True) if s.endswith(":input")} - {"head:input"}
    with quantized(model, calibration(), scope="full") as q:
        assert {str(s) for s in q.quant_state.calls} == expected_sites(2, gate=True)
        assert set(q.quant_state.calls.values()) == {0}   # calibration ran in float
        q(calibration(1)[0])
        assert q.quant_state.calls == {s: 1 for s in q.quant_state.calls}
    with pytest.raises(ValueError, match="linear, full"):
        quant_sites(model, "all")
    with pytest.raises(ConfigError, match="quant_scope"):
        AnalysisConfig(quant_scope="all")


def test_full_scope_equals_a_hand_quantized_forward():
    """Embedding (8-bit table, then its output), q/k/v/o outputs, scores (before the mask), probabilities,
    context, both residual sums, the w2 output and the head's input rounded over their calibrated ranges, linear
    inputs too; linear weights are already rounded in the copy, the head's (tied to the embedding) are not."""
    model = tiny("attn")
    ids = calibration(1)[0]
    with quantized(model, calibration(), scope="full") as q:
        ranges = q.quant_state.ranges

        def Q(module: str, where: str, x: torch.Tensor) -> torch.Tensor:
            r = ranges[Site(module, where)]
            return quantize_asymmetric(x, r.lo, r.hi, 8)

        def linear(name: str, layer: torch.nn.Linear, x: torch.Tensor, out: bool = False) -> torch.Tensor:
            y = F.linear(Q(name, "input", x), layer.weight, layer.bias)
            return Q(name, "output", y) if out else y

        B, T = ids.shape
        x = Q("embed", "output", quantize_symmetric(q.embed.weight, 8)[ids])             # (B, T, d)
        for i, block in enumerate(q.blocks):
            p, m, c = f"blocks.{i}", block.mixer, block.channel
            h = block.mixer_norm(x)
            qh = linear(f"{p}.mixer.q_proj", m.q_proj, h, True).view(B, T, 2, 8)
            kh = linear(f"{p}.mixer.k_proj", m.k_proj, h, True).view(B, T, 2, 8)
            vh = linear(f"{p}.mixer.v_proj", m.v_proj, h, True).view(B, T, 2, 8)
            qh, kh = m.rope(qh, 0), m.rope(kh, 0)
            scores = Q(f"{p}.mixer.score_probe", "output", torch.einsum("bqhd,bkhd->bhqk", qh, kh) * 8 ** -0.5)
            future = torch.ones(T, T, dtype=torch.bool).triu(1)
            probs = Q(f"{p}.mixer.attn_probe", "output", scores.masked_fill(future, float("-inf")).softmax(-1))
            o = Q(f"{p}.mixer.context_probe", "output", torch.einsum("bhqk,bkhd->bqhd", probs, vh))
            x = Q(f"{p}.mixer_sum_probe", "output", x + linear(f"{p}.mixer.o_proj", m.o_proj, o.flatten(2), True))
            h = block.channel_norm(x)
            g = F.silu(linear(f"{p}.channel.w1", c.w1, h)) * linear(f"{p}.channel.w3", c.w3, h)
            x = Q(f"{p}.channel_sum_probe", "output", x + linear(f"{p}.channel.w2", c.w2, g, True))
        expected = q.head(Q("head", "input", q.norm(x)))
        assert torch.equal(q.head.weight, model.head.weight)   # the head keeps float weights
        torch.testing.assert_close(q(ids).logits, expected, rtol=0, atol=1e-12)
        with quantized(model, calibration(), scope="linear") as lin:
            assert (lin(ids).logits - expected).abs().max() > 1e-4   # the full scope rounds more than the inputs


def test_percentile_ranges_and_the_weight_range_of_least_error():
    x = torch.arange(1.0, 100_001.0, dtype=torch.float64)[torch.randperm(100_000)]   # 1 .. 100000, shuffled
    r = RunningMinMax(percentile=99.999)
    r.update(x)
    expected = np.percentile(x.numpy(), [0.001, 99.999])
    assert (r.lo, r.hi) == (pytest.approx(expected[0]), pytest.approx(expected[1]))
    assert r.lo == pytest.approx(1.99999)
    for n in (1, 2, 7, 1001):
        v = torch.randn(n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
        for q in (0.0, 0.001, 37.5, 50.0, 99.999, 100.0):
            assert percentile(v, q) == pytest.approx(np.percentile(v.numpy(), q), abs=1e-12), (n, q)
    w = torch.cat([torch.randn(4000, generator=torch.Generator().manual_seed(0)), torch.tensor([40.0])])
    limit = mse_limit(w, 4)
    assert 1.0 < limit < 40.0   # an outlier weight is clipped when that lowers the total error
    assert (quantize_symmetric(w, 4, limit) - w).pow(2).sum() < (quantize_symmetric(w, 4) - w).pow(2).sum()
    with pytest.raises(ConfigError, match="weight_range"):
        AnalysisConfig(weight_range="percentile")
