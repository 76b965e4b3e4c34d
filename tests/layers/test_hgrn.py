"""HGRN: the layer equals a readable loop of its recurrence (flash-linear-attention's HGRNAttention formulas), with
and without a lower bound, and a model gives its layers bounds that rise with depth."""
import pytest
import torch
import torch.nn.functional as F

from gatelab.config import ConfigError
from gatelab.models.lm import DecoderLM, ModelConfig
from gatelab.registry import MIXERS


def reference(m, x, lower_bound=None):
    """h_t = f_t h_{t-1} + silu(x W_i) (1 - f_t), f = lb + (1 - lb) sigmoid(x W_f); y = W_o(RMSNorm(h) silu(x W_g))."""
    f = torch.sigmoid(x @ m.f_proj.weight.T)                                   # (B, T, D)
    if lower_bound is not None:
        f = lower_bound + (1 - lower_bound) * f
    i = F.silu(x @ m.i_proj.weight.T) * (1 - f)
    h, out = torch.zeros_like(i[:, 0]), []
    for t in range(x.shape[1]):
        h = f[:, t] * h + i[:, t]
        out.append(h)
    h = torch.stack(out, 1)                                                    # (B, T, D)
    normed = h * torch.rsqrt(h.square().mean(-1, keepdim=True) + m.config.norm_eps) * m.g_norm.norm.weight
    return (normed * F.silu(x @ m.g_proj.weight.T)) @ m.o_proj.weight.T


@pytest.mark.parametrize("mode", ["chunk", "recurrent"])
@pytest.mark.parametrize("bounded", [False, True])
def test_the_layer_is_its_recurrence(mode, bounded):
    torch.manual_seed(0)
    m = MIXERS.get("hgrn")(8, expand_ratio=2, mode=mode, chunk_size=4).double()
    torch.nn.init.normal_(m.g_norm.norm.weight)
    x = torch.randn(2, 11, 8, dtype=torch.float64)
    lb = torch.rand(16, dtype=torch.float64) * 0.9 if bounded else None
    y, _ = m(x, lower_bound=lb) if bounded else m(x)
    torch.testing.assert_close(y, reference(m, x, lb), atol=1e-10, rtol=1e-10)


def test_a_model_gives_each_layer_a_bound_rising_with_depth():
    model = DecoderLM(ModelConfig(vocab_size=16, d_model=8, n_layers=3, n_heads=2, mixer="hgrn"))
    assert model.lower_bounds.shape == (3, 8)
    with torch.no_grad():
        model.lower_bounds.normal_()
    bounds = model.layer_lower_bounds()
    assert bounds[0] is None and (bounds[2] >= bounds[1]).all() and (bounds[2] < 1).all()
    unbounded = DecoderLM(ModelConfig(vocab_size=16, d_model=8, n_layers=3, n_heads=2, mixer="hgrn",
                                      mixer_options={"hgrn": {"lower_bound": False}}))
    assert unbounded.lower_bounds is None


def test_bad_options_name_the_option():
    with pytest.raises(ConfigError, match="expand_ratio"):
        MIXERS.get("hgrn")(8, expand_ratio=0)
