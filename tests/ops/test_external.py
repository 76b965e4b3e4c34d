"""Compare with code nobody here wrote: Hugging Face transformers' pure-torch gated delta rule (Qwen3-Next).

Skipped when transformers is not installed. Those functions compute in float32, so the comparison is by relative
RMS error (DESIGN §4). transformers wraps them to call flash-linear-attention's Triton kernels whenever fla is
installed, even on CPU tensors (where Triton finds no driver); the function it wraps is the pure-torch one.
"""
import inspect
import os

import pytest
import torch
import torch.nn.functional as F

from gatelab.ops import chunk_gated_delta_rule, recurrent_gated_delta_rule
from tests.utils import assert_close

os.environ.setdefault("HF_HUB_OFFLINE", "1")
qwen3_next = pytest.importorskip("transformers.models.qwen3_next.modeling_qwen3_next")


def inputs(B=2, T=100, H=3, K=16, V=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(B, T, H, K, generator=gen), dim=-1)
    k = F.normalize(torch.randn(B, T, H, K, generator=gen), dim=-1)
    v = torch.randn(B, T, H, V, generator=gen)
    g = F.logsigmoid(torch.randn(B, T, H, generator=gen))
    beta = torch.rand(B, T, H, generator=gen)
    h0 = torch.randn(B, H, K, V, generator=gen)
    return q, k, v, g, beta, h0


@pytest.mark.parametrize("ours,theirs", [
    (chunk_gated_delta_rule, "torch_chunk_gated_delta_rule"),
    (recurrent_gated_delta_rule, "torch_recurrent_gated_delta_rule"),
])
@pytest.mark.parametrize("use_h0", [False, True])
def test_gated_delta_rule_matches_transformers(ours, theirs, use_h0):
    q, k, v, g, beta, h0 = inputs()
    h0 = h0 if use_h0 else None
    reference = inspect.unwrap(getattr(qwen3_next, theirs))
    o_ref, s_ref = reference(q, k, v, g=g, beta=beta, initial_state=h0, output_final_state=True)
    o, s = ours(q, k, v, g=g, beta=beta, initial_state=h0, output_final_state=True)
    assert_close("o", o_ref, o, 1e-5)
    assert_close("state", s_ref, s, 1e-5)
