"""The ``combiner`` mixer: the layer is its op between the projections, each variant's defaults, the decoding
state, and bad options at construction."""
import pytest
import torch

from gatelab.config import ConfigError
from gatelab.ops.combiner import combiner_reference
from gatelab.registry import MIXERS


@pytest.mark.parametrize("opts", [dict(block_size=3), dict(variant="axial", block_size=4),
                                  dict(variant="logsparse", rope=False)])
def test_layer_is_the_explicit_matrix_between_projections(opts):
    torch.manual_seed(0)
    mixer = MIXERS.get("combiner")(16, n_heads=2, **opts).double()
    x = torch.randn(2, 10, 16, dtype=torch.float64)
    y, _ = mixer(x)
    q, k, v = (p(x).view(2, 10, 2, 8) for p in (mixer.q_proj, mixer.k_proj, mixer.v_proj))
    if mixer.rope is not None:
        q, k = mixer.rope(q), mixer.rope(k)
    o, _ = combiner_reference(q, k, v, variant=mixer.config.variant, block_size=mixer.config.block_size or 1)
    torch.testing.assert_close(y, mixer.o_proj(o.flatten(2)), atol=1e-10, rtol=1e-10)


def test_defaults_and_state_size():
    fixed = MIXERS.get("combiner")(16, n_heads=2)
    assert fixed.config.variant == "fixed" and fixed.config.block_size == 32
    assert MIXERS.get("combiner")(16, n_heads=2, variant="axial").config.block_size == 32
    assert MIXERS.get("combiner")(16, n_heads=2, variant="logsparse").config.block_size is None
    assert fixed.state_size(100) == 3 * 100 * 16


def test_decoding_state_holds_queries_keys_values_of_every_token():
    mixer = MIXERS.get("combiner")(16, n_heads=2, block_size=2)
    _, state = mixer(torch.randn(3, 5, 16))
    assert state.q.shape == state.k.shape == state.v.shape == (3, 5, 2, 8) and state.offset == 5
    _, state = mixer.step(torch.randn(3, 1, 16), state)
    assert state.offset == 6


@pytest.mark.parametrize("opts,match", [
    (dict(block_size=0), "block_size"),
    (dict(block_size=70000), "block_size"),
    (dict(variant="logsparse", block_size=8), "block_size=8 has no effect with variant='logsparse'"),
    (dict(variant="mixture"), "'mixture' is not allowed"),
    (dict(rope=False, rope_base=500.0), "rope_base"),
    (dict(rope_base=1.0), "rope_base"),
    (dict(n_heads=0), "n_heads"),
    (dict(head_dim=0), "head_dim"),
    (dict(n_heads=3), "not divisible"),
    (dict(head_dim=5), r"combiner.head_dim=5 must be even with combiner.rope=True"),
    (dict(n_heads=16), r"combiner.head_dim=1 \(d_model / n_heads\) must be even with combiner.rope=True"),
])
def test_bad_options_fail_at_construction(opts, match):
    with pytest.raises(ConfigError, match=match):
        MIXERS.get("combiner")(16, **{"n_heads": 2, **opts})


def test_an_odd_head_dim_is_fine_without_rope():
    assert MIXERS.get("combiner")(15, n_heads=3, rope=False).config.head_dim == 5
