"""Informer's distilling layer: the length it gives and the computation, against a readable reference."""
import pytest
import torch
import torch.nn.functional as F

from gatelab.layers.distil import Distilling


def reference(layer: Distilling, x: torch.Tensor) -> torch.Tensor:
    """Circular pad, a 3-tap convolution, BatchNorm with the batch's statistics (training) or the running ones,
    ELU, then the max of each window of 3 with stride 2 over the sequence padded by -inf."""
    B, L, d = x.shape
    padded = torch.cat([x[:, -1:], x, x[:, :1]], 1)                                    # (B, L + 2, d)
    w = layer.conv.weight                                                               # (d_out, d_in, 3)
    y = sum(padded[:, tap:tap + L] @ w[:, :, tap].T for tap in range(3)) + layer.conv.bias  # (B, L, d)
    if layer.training:
        mean, var = y.mean((0, 1)), y.var((0, 1), unbiased=False)
    else:
        mean, var = layer.norm.running_mean, layer.norm.running_var
    y = (y - mean) / torch.sqrt(var + layer.norm.eps) * layer.norm.weight + layer.norm.bias
    y = torch.where(y > 0, y, torch.expm1(y))                                           # ELU, alpha 1
    inf = torch.full((B, 1, d), float("-inf"), dtype=x.dtype)
    y = torch.cat([inf, y, inf], 1)                                                     # (B, L + 2, d)
    return torch.stack([y[:, s:s + 3].amax(1) for s in range(0, L, 2)], 1)              # (B, (L-1)//2+1, d)


@pytest.mark.parametrize("length", [1, 2, 3, 4, 7, 8, 96])
def test_distilling_halves_the_length(length):
    layer = Distilling(8)
    y = layer(torch.randn(2, length, 8))
    assert y.shape == (2, (length - 1) // 2 + 1, 8) == (2, Distilling.out_length(length), 8)
    if length % 2 == 0:
        assert y.shape[1] == length // 2


@pytest.mark.parametrize("training", [True, False])
def test_distilling_equals_the_reference(training):
    torch.manual_seed(0)
    layer = Distilling(6).double()
    for p in (layer.norm.weight, layer.norm.bias, layer.norm.running_mean):
        torch.nn.init.normal_(p)
    layer.norm.running_var.uniform_(0.5, 2.0)
    layer.train(training)
    x = torch.randn(3, 11, 6, dtype=torch.float64, requires_grad=True)
    y, expected = layer(x), reference(layer, x)
    torch.testing.assert_close(y, expected, atol=1e-10, rtol=1e-10)
    g = torch.randn_like(y)
    torch.testing.assert_close(torch.autograd.grad(y, x, g)[0], torch.autograd.grad(expected, x, g)[0],
                               atol=1e-10, rtol=1e-10)


def test_distilling_convolution_wraps_around_and_counts_parameters():
    layer = Distilling(4).double().eval()
    x = torch.randn(1, 9, 4, dtype=torch.float64)
    first = F.conv1d(torch.cat([x[:, -1:], x[:, :2]], 1).transpose(1, 2), layer.conv.weight, layer.conv.bias)
    torch.testing.assert_close(layer.conv(x.transpose(1, 2))[..., :1], first)           # reads the last position
    assert sum(p.numel() for p in layer.parameters()) == layer.expected_num_params() == 3 * 16 + 3 * 4
