"""Chain-of-Model layers: ChainLinear, the chain FFN (``chain``), chain-wise norms and Chain-of-Model attention.
The property every one of them must have: output chain i depends on input chains <= i only."""
import pytest
import torch
from torch import nn

from gatelab.config import ConfigError
from gatelab.layers.channel import SwiGLU
from gatelab.layers.channel.chain import ChainFFN, ChainLinear, chain_linear_ref
from gatelab.layers.channel.mlp import default_swiglu_width
from gatelab.layers.norm import ChainNorm, build_norm
from gatelab.registry import CHANNEL_MIXERS, MIXERS


def chain_dependence(f, x: torch.Tensor, n: int) -> torch.Tensor:
    """``dep[i, j]``: whether output chain i of ``f(x)`` has a non-zero gradient with respect to input chain j
    (chains: equal groups of the last dim; a random cotangent over every other dim)."""
    x = x.clone().requires_grad_()
    y = f(x)
    dep = torch.zeros(n, n, dtype=torch.bool)
    for i, yi in enumerate(y.chunk(n, -1)):
        (g,) = torch.autograd.grad(yi, x, torch.randn_like(yi), retain_graph=True)
        dep[i] = torch.stack([gj.abs().amax() > 0 for gj in g.chunk(n, -1)])
    return dep


def lower(n: int) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool).tril()


@pytest.mark.parametrize("n", [1, 3, 4])
@pytest.mark.parametrize("bias", [False, True])
def test_chain_linear_equals_the_dense_block_lower_triangular_product(n, bias):
    torch.manual_seed(0)
    layer = ChainLinear(12, 24, n, bias=bias).double()
    x = torch.randn(2, 5, 12, dtype=torch.float64, requires_grad=True)
    y, ref = layer(x), chain_linear_ref(layer, x)
    torch.testing.assert_close(y, ref, atol=1e-10, rtol=1e-10)
    cot = torch.randn_like(y)
    params = [x, *layer.parameters()]
    for g, g_ref in zip(torch.autograd.grad(y, params, cot), torch.autograd.grad(ref, params, cot), strict=True):
        torch.testing.assert_close(g, g_ref, atol=1e-10, rtol=1e-10)
    w = layer.dense_weight()
    for i in range(n):  # zero above the diagonal blocks, and nothing else zero
        rows = w[i * 24 // n:(i + 1) * 24 // n]
        assert (rows[:, (i + 1) * 12 // n:] == 0).all() and (rows[:, :(i + 1) * 12 // n] != 0).all()


def test_chain_linear_output_chain_reads_only_earlier_chains():
    layer = ChainLinear(12, 8, 4).double()
    assert torch.equal(chain_dependence(layer, torch.randn(3, 12, dtype=torch.float64), 4), lower(4))


@pytest.mark.parametrize("n", [1, 2, 4])
def test_chain_linear_holds_only_the_lower_triangular_weights(n):
    layer = ChainLinear(16, 8, n, bias=True)
    count = sum(p.numel() for p in layer.parameters())
    assert count == layer.expected_num_params() == 16 * 8 * (n + 1) // (2 * n) + 8
    for i, w in enumerate(layer.weights):  # nn.Linear's init for the block's fan-in (i + 1) * 16/n
        bound = ((i + 1) * 16 // n) ** -0.5
        assert w.shape == (8 // n, (i + 1) * 16 // n) and 0.5 * bound < w.abs().max() <= bound


def test_one_chain_is_nn_linear():
    dense = nn.Linear(6, 4).double()
    layer = ChainLinear(6, 4, 1, bias=True).double()
    layer.load_state_dict({"weights.0": dense.weight, "bias": dense.bias})
    x = torch.randn(3, 6, dtype=torch.float64)
    torch.testing.assert_close(layer(x), dense(x), atol=1e-12, rtol=1e-12)


def test_chain_ffn_output_chain_reads_only_earlier_chains():
    ffn = ChainFFN(16, 32, n_chains=4).double()
    assert torch.equal(chain_dependence(ffn, torch.randn(2, 3, 16, dtype=torch.float64), 4), lower(4))


def test_chain_ffn_with_one_chain_is_swiglu():
    torch.manual_seed(0)
    ffn, swiglu = CHANNEL_MIXERS.get("chain")(16, 24).double(), SwiGLU(16, 24).double()
    ffn.load_state_dict({f"{name}.weights.0": w for name, w in
                         (("w1", swiglu.w1.weight), ("w2", swiglu.w2.weight), ("w3", swiglu.w3.weight))})
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    torch.testing.assert_close(ffn(x), swiglu(x), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize(("d_model", "d_ff", "n", "width"), [(24, None, 3, 66), (24, None, 4, 64), (16, 20, 2, 20)])
def test_chain_ffn_width_and_parameter_count(d_model, d_ff, n, width):
    ffn = ChainFFN(d_model, d_ff, n_chains=n)
    assert ffn.d_ff == width and (d_ff is not None or width == -(-default_swiglu_width(d_model) // n) * n)
    count = sum(p.numel() for p in ffn.parameters())
    assert count == ffn.expected_num_params() == 3 * d_model * width * (n + 1) // (2 * n)


@pytest.mark.parametrize(("args", "options", "names"), [
    ((30, 32), {"n_chains": 4}, ("d_model=30", "n_chains=4")),
    ((32, 30), {"n_chains": 4}, ("d_ff=30", "n_chains=4")),
    ((32,), {"n_chains": 0}, ("n_chains",)),
    ((32,), {"chains": 2}, ("chains", "n_chains")),
])
def test_chain_ffn_bad_options(args, options, names):
    with pytest.raises(ConfigError) as e:
        ChainFFN(*args, **options)
    assert all(name in str(e.value) for name in names)


@pytest.mark.parametrize("kind", ["rmsnorm", "layernorm"])
def test_chain_norm_normalises_each_chain_on_its_own(kind):
    torch.manual_seed(0)
    norm = build_norm(kind, 12, 1e-5, chains=3).double()
    assert isinstance(norm, ChainNorm)
    with torch.no_grad():
        for p in norm.parameters():
            p.normal_()
    x = torch.randn(2, 5, 12, dtype=torch.float64) * 3 + 1
    parts = []
    for c in range(3):
        ref = (nn.RMSNorm(4, eps=1e-5) if kind == "rmsnorm" else nn.LayerNorm(4, eps=1e-5)).double()
        ref.load_state_dict({name: p[4 * c:4 * (c + 1)] for name, p in norm.named_parameters()})
        parts.append(ref(x[..., 4 * c:4 * (c + 1)]))
    torch.testing.assert_close(norm(x), torch.cat(parts, -1), atol=1e-12, rtol=1e-12)
    assert torch.equal(chain_dependence(norm, x, 3), torch.eye(3, dtype=torch.bool))


def test_one_chain_norms_are_torch_norms_and_bad_widths_are_refused():
    assert type(build_norm("rmsnorm", 8)) is nn.RMSNorm and type(build_norm("layernorm", 8, chains=1)) is nn.LayerNorm
    with pytest.raises(ConfigError, match="width 10 is not divisible by chains=4"):
        build_norm("rmsnorm", 10, chains=4)


ATTENTION = [
    ("attn", {"n_heads": 4, "n_kv_heads": 2, "qk_norm": True}),
    ("swa", {"n_heads": 4, "window": 3}),
    ("liger", {"n_heads": 4, "window": 3, "chunk_size": 2}),
    ("gated_attn", {"n_heads": 4}),
    ("gated_attn", {"n_heads": 4, "gate_granularity": "headwise", "gate_init_prob": 0.9}),
    ("gated_attn", {"n_heads": 4, "n_kv_heads": 2, "gate_position": "g2"}),
    ("gated_attn", {"n_heads": 4, "gate_position": "g3", "gate_granularity": "headwise", "gate_source": "per_head"}),
    ("gated_attn", {"n_heads": 4, "gate_position": "g5"}),
    ("gated_attn", {"n_heads": 4, "gate_source": "constant", "gate_sharing": "head_shared"}),
    ("gated_attn", {"n_heads": 4, "gate_kind": "rmsnorm"}),
]


@pytest.mark.parametrize(("key", "options"), ATTENTION)
def test_chain_attention_output_chain_reads_only_earlier_chains(key, options):
    torch.manual_seed(0)
    layer = MIXERS.get(key)(16, n_chains=2, **options).double()
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    assert torch.equal(chain_dependence(lambda h: layer(h)[0], x, 2), lower(2))
    assert sum(p.numel() for p in layer.parameters()) == layer.expected_num_params()
    with torch.no_grad():  # the KV cache is unchanged: prefix then rest equals the whole
        y1, state = layer(x[:, :4])
        y2, _ = layer.step(x[:, 4:], state)
        torch.testing.assert_close(torch.cat([y1, y2], 1), layer(x)[0], atol=1e-10, rtol=1e-10)


def test_chain_attention_parameter_count_formula():
    layer = MIXERS.get("attn")(16, n_heads=4, n_kv_heads=2, n_chains=2)
    lin = lambda a, b: a * b * 3 // 4  # noqa: E731  (k = 2 chains: (k + 1) / (2k))
    assert layer.expected_num_params() == lin(16, 16) + 2 * lin(16, 8) + lin(16, 16)


@pytest.mark.parametrize(("key", "options", "match"), [
    ("attn", {"n_heads": 4, "n_chains": 3, "d_model": 24}, "n_heads=4 is not divisible by n_chains=3"),
    ("attn", {"n_heads": 4, "n_kv_heads": 2, "n_chains": 4}, "n_kv_heads=2 is not divisible by n_chains=4"),
    ("attn", {"n_heads": 4, "head_dim": 4, "n_chains": 4, "d_model": 10}, "d_model=10 is not divisible"),
    ("attn", {"n_chains": 0}, "n_chains"),
    ("gated_attn", {"n_chains": 2, "gate_sharing": "head_shared"}, "gate_sharing='head_shared'"),
    ("gated_attn", {"n_chains": 2, "gate_position": "g5", "gate_granularity": "headwise"}, "gate_position='g5'"),
    ("gated_attn", {"n_chains": 2, "gate_position": "g5", "gate_kind": "rmsnorm"}, "gate_kind='rmsnorm'"),
])
def test_chain_attention_bad_options(key, options, match):
    options = {"d_model": 16, **options}
    with pytest.raises(ConfigError, match=match):
        MIXERS.get(key)(options.pop("d_model"), **options)
