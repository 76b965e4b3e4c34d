"""Forecaster: shapes, channel independence, the output variates, distilling, the loss."""
import pytest
import torch

from gatelab.models.config import ModelConfig
from gatelab.models.forecaster import Forecaster, ForecasterConfig


def forecaster(channel_independent=True, distil=False, mixer="gla", bidirectional=True, n_in=3, out=(1, 2)):
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=16, n_layers=2, n_heads=2, mixer=mixer, channel="swiglu", bidirectional=bidirectional)
    head = ForecasterConfig(channel_independent=channel_independent, distil=distil)
    return Forecaster(cfg, head, lookback=12, horizon=5, n_in=n_in, out_index=list(out)).double()


@pytest.mark.parametrize("channel_independent", [True, False])
@pytest.mark.parametrize("distil", [True, False])
@pytest.mark.parametrize("mixer,bidirectional", [("attn", True), ("gla", True), ("mamba", False)])
def test_shapes_and_loss(channel_independent, distil, mixer, bidirectional):
    m = forecaster(channel_independent, distil, mixer, bidirectional)
    x, y = torch.randn(4, 12, 3, dtype=torch.float64), torch.randn(4, 5, 2, dtype=torch.float64)
    out = m(x, labels=y)
    assert out.logits.shape == (4, 5, 2)
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits, y))
    out.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters() if p.requires_grad)


def test_channel_independent_forecasts_read_only_their_own_variate():
    m = forecaster(channel_independent=True).eval()
    x = torch.randn(2, 12, 3, dtype=torch.float64, requires_grad=True)
    y = m(x).logits                                                   # outputs: variates 1 and 2
    (grad,) = torch.autograd.grad(y[..., 0].sum(), x)
    assert grad[..., 1].abs().sum() > 0 and grad[..., [0, 2]].abs().sum() == 0


def test_channel_independent_outputs_are_the_forecasts_of_the_chosen_variates():
    m = forecaster(channel_independent=True, n_in=3, out=(0, 1, 2)).eval()
    x = torch.randn(2, 12, 3, dtype=torch.float64)
    with torch.no_grad():
        every = m(x).logits
    last = forecaster(channel_independent=True, n_in=3, out=(2,)).eval()
    last.load_state_dict(m.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(last(x).logits, every[..., 2:], atol=1e-12, rtol=1e-12)


def test_distilling_halves_the_length_before_the_head():
    assert forecaster(distil=True).head.in_features == 16 * 6       # 12 steps -> 6 after one distilling layer
    assert forecaster(distil=False).head.in_features == 16 * 12


def test_a_window_of_another_length_is_refused():
    with pytest.raises(ValueError, match="reads 12 steps"):
        forecaster()(torch.randn(1, 10, 3, dtype=torch.float64))
