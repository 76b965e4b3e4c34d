"""Properties particular to one mixer (the registry harness covers what all of them share)."""
import torch
import torch.nn.functional as F

from gatelab.ops import chunk_gla
from gatelab.registry import MIXERS


def test_gdn_without_decay_is_deltanet():
    torch.manual_seed(0)
    gdn = MIXERS.get("gdn")(16, n_heads=2, expand_v=1.0).double()
    delta = MIXERS.get("deltanet")(16, n_heads=2, use_output_gate=True).double()
    delta.load_state_dict(gdn.state_dict(), strict=False)
    with torch.no_grad():
        gdn.A_log.fill_(-float("inf"))  # exp(A_log) = 0: g = 0, no decay
    x = torch.randn(2, 20, 16, dtype=torch.float64)
    torch.testing.assert_close(gdn(x)[0], delta(x)[0], atol=1e-12, rtol=1e-12)
    assert not torch.allclose(MIXERS.get("gdn")(16, n_heads=2, expand_v=1.0).double()(x)[0], delta(x)[0])


def test_hgrn2_is_gla_with_tied_input_gate():
    torch.manual_seed(0)
    layer = MIXERS.get("hgrn2")(16, n_heads=2).double()
    x = torch.randn(2, 20, 16, dtype=torch.float64)
    B, T, H, E = 2, 20, 2, 8
    g = F.logsigmoid(layer.f_proj(x)).view(B, T, H, E)
    q = layer.q_proj(x).view(B, T, H, E)
    v = layer.i_proj(x).view(B, T, H, 8)
    o, _ = chunk_gla(q, 1 - g.exp(), v, g=g, scale=1.0)
    expected = layer.o_proj(layer.o_norm(o, None).flatten(2))
    torch.testing.assert_close(layer(x)[0], expected, atol=1e-12, rtol=1e-12)


def test_gam_memory_path_reads_no_other_token():
    """GAM's output at t depends on earlier tokens only through the convolution window (its documented
    'global memory' is a fixed, learned bank)."""
    torch.manual_seed(0)
    gam = MIXERS.get("gam")(16, kernel_size=3).double()
    x = torch.randn(1, 30, 16, dtype=torch.float64)
    x2 = x.clone()
    x2[:, :25] = torch.randn(1, 25, 16, dtype=torch.float64)  # change everything outside t=29's window (27..29)
    torch.testing.assert_close(gam(x)[0][:, 27:], gam(x2)[0][:, 27:])
    assert not torch.allclose(gam(x)[0][:, 25:27], gam(x2)[0][:, 25:27])


def test_sliding_window_sees_only_the_window_and_keeps_a_bounded_cache():
    torch.manual_seed(0)
    swa = MIXERS.get("swa")(16, n_heads=2, window=5).double()
    x = torch.randn(1, 30, 16, dtype=torch.float64)
    x2 = x.clone()
    x2[:, :25] = torch.randn(1, 25, 16, dtype=torch.float64)
    y, cache = swa(x)
    torch.testing.assert_close(y[:, 29], swa(x2)[0][:, 29])
    assert cache.k.shape[1] == 4 and cache.offset == 30 and swa.state_size(30) == 2 * 4 * 16


def test_retnet_decays_are_fixed_per_head():
    layer = MIXERS.get("retnet")(16, n_heads=4)
    torch.testing.assert_close(layer.log_decay.exp(), 1 - 2.0 ** (-5.0 - torch.arange(4.0)))
    assert not any("decay" in n for n, _ in layer.named_parameters())


def test_liger_adds_no_parameters_and_loads_an_attention_checkpoint():
    torch.manual_seed(0)
    attn = MIXERS.get("attn")(16, n_heads=2).double()
    liger = MIXERS.get("liger")(16, n_heads=2, window=4).double()
    liger.load_state_dict(attn.state_dict())  # strict: the same parameter names and shapes
    x = torch.randn(1, 12, 16, dtype=torch.float64)
    liger.config.mix = 1.0  # all weight on the sliding window: equals sliding-window attention
    swa = MIXERS.get("swa")(16, n_heads=2, window=4).double()
    swa.load_state_dict(attn.state_dict())
    torch.testing.assert_close(liger(x)[0], swa(x)[0])
