"""LMU: the layer is LMUFormer's cell (a readable loop of its formulas) on the fixed Legendre delay system, in each
form; its options and bad input."""
import pytest
import torch
import torch.nn.functional as F

from gatelab.config import ConfigError
from gatelab.ops.lmu import legendre_decoder, lmu_system, recurrent_lmu
from gatelab.registry import MIXERS


def reference(m, x, A, B):
    """u = relu(W_u x); m_t = Ā m_{t-1} + B̄ u_t; h = relu(W_h [m; x]); y = W_o h (LMUFormer's LMUFFTCell + proj)."""
    u = F.relu(x @ m.u_proj.weight.T + m.u_proj.bias)[..., 0]                 # (B, T)
    mem, out = x.new_zeros(x.shape[0], A.shape[0]), []
    for t in range(x.shape[1]):
        mem = mem @ A.T + u[:, t, None] * B
        out.append(mem)
    h = F.relu(torch.cat([torch.stack(out, 1), x], -1) @ m.h_proj.weight.T + m.h_proj.bias)
    return h @ m.o_proj.weight.T + m.o_proj.bias


@pytest.mark.parametrize("mode", ["chunk", "fft", "recurrent"])
def test_the_layer_is_lmuformers_cell(mode):
    torch.manual_seed(0)
    m = MIXERS.get("lmu")(8, order=6, theta=5.0, mode=mode, chunk_size=4).double()
    x = torch.randn(2, 13, 8, dtype=torch.float64)
    y, state = m(x)
    A, B = lmu_system(6, 5.0)
    torch.testing.assert_close(y, reference(m, x, A, B), atol=1e-10, rtol=1e-10)
    assert state.shape == (2, 6)


def test_defaults_are_lmuformers_and_the_system_is_fixed():
    m = MIXERS.get("lmu")(16)
    assert m.order == 16 and m.config.theta == 128.0 and m.state_size(1000) == 16
    A, B = m.system(torch.zeros((), dtype=torch.float64))
    torch.testing.assert_close((A, B), lmu_system(16, 128.0), atol=0, rtol=0)
    assert not any(p.shape == A.shape and torch.equal(p.double(), A) for p in m.parameters())
    assert "_system" not in dict(m.named_buffers())


def test_the_memory_of_the_layer_holds_its_recent_input():
    """The projected input u is read back from the layer's memory ``theta / 2`` tokens later."""
    m = MIXERS.get("lmu")(4, order=10, theta=40.0).double()
    with torch.no_grad():
        m.u_proj.weight.fill_(0.1), m.u_proj.bias.fill_(1.0)                    # u = 1 + 0.4 sin > 0: smooth
    t = torch.arange(300, dtype=torch.float64)
    x = torch.sin(2 * torch.pi * t / 120)[None, :, None] * torch.ones(1, 1, 4, dtype=torch.float64)
    with torch.no_grad():
        u = F.relu(m.u_proj(x))[0, :, 0]                                       # (T,)
        mem, _ = m.memory(x, None, "chunk")                                    # (1, T, N)
    read = mem[0] @ legendre_decoder(10, 40.0, torch.tensor([20.0]))[0]
    assert (read[100:] - u[80:-20]).abs().max() < 0.05 * u.abs().max()


def test_fft_form_continues_from_a_state():
    torch.manual_seed(0)
    m = MIXERS.get("lmu")(8, order=4, theta=6.0, mode="fft").double()
    x = torch.randn(2, 12, 8, dtype=torch.float64)
    y, _ = m(x)
    y1, s = m(x[:, :5])
    y2, _ = m(x[:, 5:], s)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("mode", ["chunk", "fft", "recurrent"])
def test_a_bfloat16_layer_keeps_its_system_and_memory_in_float32(mode):
    """The memory of a bfloat16 layer is within float32 rounding of a float64 memory of the same u (a system
    rounded to bfloat16 errs by about 1e-2)."""
    torch.manual_seed(0)
    m = MIXERS.get("lmu")(8, order=6, theta=30.0, mode=mode, chunk_size=8).to(torch.bfloat16)
    x = torch.randn(2, 40, 8).to(torch.bfloat16)
    with torch.no_grad():
        _, state = m.memory(x, m.init_state(2), mode)
        u = F.relu(m.u_proj(x)).double()                                       # (B, T, 1)
    _, expected = recurrent_lmu(u, *lmu_system(6, 30.0), output_final_state=True)
    assert state.dtype == torch.float32 and m.init_state(2).dtype == torch.float32
    assert ((state.double() - expected[:, 0]).norm() / expected.norm()) < 1e-5


@pytest.mark.parametrize("option,value", [("order", 0), ("theta", 0.0), ("theta", -3.0), ("chunk_size", 0),
                                          ("mode", "parallel")])
def test_bad_options_name_the_option(option, value):
    with pytest.raises(ConfigError, match=option):
        MIXERS.get("lmu")(8, **{option: value})


def test_an_unknown_mode_in_forward_names_the_forms():
    m = MIXERS.get("lmu")(8, order=4)
    with pytest.raises(ValueError, match="mode='parallel'.*chunk, fft, recurrent"):
        m(torch.randn(1, 3, 8), mode="parallel")


@pytest.mark.parametrize("mode", ["chunk", "fft", "recurrent"])
def test_an_empty_sequence_gives_an_empty_output_and_a_zero_memory(mode):
    m = MIXERS.get("lmu")(8, order=4, mode=mode).double()
    y, state = m(torch.zeros(2, 0, 8, dtype=torch.float64))
    assert y.shape == (2, 0, 8) and torch.equal(state, torch.zeros(2, 4, dtype=torch.float64))
    kept = torch.randn(2, 4, dtype=torch.float64)
    assert torch.equal(m(torch.zeros(2, 0, 8, dtype=torch.float64), kept)[1], kept)
