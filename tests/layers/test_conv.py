import torch

from gatelab.layers import ShortConv


def test_short_conv_is_causal_and_continues_from_state():
    conv = ShortConv(6, 4).double()
    x = torch.randn(2, 10, 6, dtype=torch.float64, requires_grad=True)
    y, _ = conv(x)
    (g,) = torch.autograd.grad(y[:, 4].sum(), x)
    assert g[:, 5:].abs().max() == 0 and g[:, 1:5].abs().min() > 0 and g[:, 0].abs().max() == 0
    with torch.no_grad():
        y1, s = conv(x[:, :3])
        y2, _ = conv(x[:, 3:], s)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y.detach(), atol=1e-12, rtol=1e-12)
    assert sum(p.numel() for p in conv.parameters()) == 6 * 4 + 6
