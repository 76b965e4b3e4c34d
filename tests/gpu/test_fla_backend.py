"""flash-linear-attention's kernels behind ``backend="fla"`` against gatelab's PyTorch chunked ops and the float64
recurrence on the same GPU (outputs, final states, every input gradient; float32 at the CPU tests' 1e-5 relative
RMS, bfloat16 at 2e-2), each mixer that uses them end to end, and short bf16-autocast training runs on CUDA.
Skipped without CUDA or without fla (``pip install -e ".[gpu]"``)."""
from __future__ import annotations

import json

import pytest
import torch

from benchmarks.gpu.equality import CASES, FLOAT32_TOL, compare, rel_rms
from gatelab.models import DecoderLM, ModelConfig
from gatelab.ops import backend_record, use_backend
from gatelab.ops.backend import fla_ops, gated_backward_refused
from gatelab.train import MQARTaskConfig, OptimConfig, TrainConfig, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available() or fla_ops() is None,
                                reason="needs a CUDA device and flash-linear-attention")
DEVICE = "cuda"


def skip_where_fla_refuses(gated_backward: bool) -> None:
    """fla refuses its gated backward kernel on some machines (Hopper with Triton < 3.7.1): nothing to compare."""
    reason = gated_backward_refused() if gated_backward else None
    if reason:
        pytest.skip(reason)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fla_backend_equals_the_torch_form_and_the_float64_recurrence(case, dtype):
    skip_where_fla_refuses(case.op == "gated_delta_rule" or (case.op == "simple_gla" and case.gated))
    rows = compare(case, DEVICE, dtype)
    bad = [f"{r['tensor']}: vs torch {r['vs_torch']:.2e}, vs float64 {r['vs_float64']:.2e} > {r['tolerance']:.0e}"
           for r in rows if not r["ok"]]
    assert not bad, "; ".join(bad)


def test_auto_on_cuda_runs_fla_and_records_it():
    assert backend_record("auto", DEVICE)["backend_used"] == "fla"
    from gatelab.ops.backend import resolve
    assert resolve("chunk_gla", "auto", torch.zeros(1, device=DEVICE)) == "fla"
    assert resolve("chunk_gla", "auto", torch.zeros(1, device=DEVICE, dtype=torch.float64)) == "torch"


# head dims K=32, V=64 where the mixer allows, as in the op cases: fla compiles its kernels once per (H, K, V, dtype)
GATED_BACKWARD = {"gdn", "deltanet", "mamba2", "retnet"}   # simple_gla with a decay or the gated delta rule
MIXERS = {"gla": {}, "liger": {}, "gdn": {"head_dim": 32}, "deltanet": {"head_dim": 32, "expand_v": 2},
          "mamba2": {"expand": 1, "d_state": 32}, "retnet": {}, "linear_attn": {}, "hgrn2": {}}


@pytest.mark.parametrize("mixer", MIXERS)
def test_each_mixer_on_fla_equals_torch_end_to_end(mixer):
    """A DecoderLM (2 layers, d_model 128, 2 heads) in float32: loss and every parameter gradient, fla vs torch."""
    skip_where_fla_refuses(mixer in GATED_BACKWARD)
    torch.manual_seed(0)
    model = DecoderLM(ModelConfig(vocab_size=256, d_model=128, n_layers=2, n_heads=2, mixer=mixer, channel="none",
                                  mixer_options={mixer: MIXERS[mixer]})).to(DEVICE)
    ids = torch.randint(0, 256, (2, 100), device=DEVICE)
    results = {}
    for backend in ("torch", "fla"):
        model.zero_grad(set_to_none=True)
        with use_backend(backend):
            out = model(ids, labels=ids)
        out.loss.backward()
        results[backend] = [out.logits.detach()] + [p.grad.clone() for p in model.parameters() if p.grad is not None]
    for i, (a, b) in enumerate(zip(results["torch"], results["fla"], strict=True)):
        err = rel_rms(a, b)
        assert err <= 10 * FLOAT32_TOL, f"{mixer}: tensor {i} (0 = logits, then gradients): {err:.2e}"


TRAINED = {"attn": {}, "gated_attn": {}, "gla": {}, "gdn": MIXERS["gdn"], "mamba2": MIXERS["mamba2"]}


@pytest.mark.parametrize("mixer", list(TRAINED))
def test_training_on_cuda_under_bf16_autocast_gives_finite_losses(mixer, tmp_path):
    cfg = TrainConfig(mqar=MQARTaskConfig(vocab_size=64, seq_lens=[64], num_kv_pairs=[4], train_examples=640,
                                          test_examples=64),
                      model=ModelConfig(d_model=128, n_layers=2, n_heads=2, channel="none", mixer=mixer,
                                        mixer_options={mixer: TRAINED[mixer]}),
                      optim=OptimConfig(lr=3e-3), batch_size=32, max_steps=20, eval_every=20, device=DEVICE,
                      precision="auto")
    train(cfg, tmp_path / "run", progress=False)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert len(losses) == 20 and all(torch.isfinite(torch.tensor(losses)))
    assert meta["backend_used"] == "fla" and meta["fla"]   # (attn and gated_attn run SDPA, whatever the backend)
