"""Backend dispatch of the chunked ops (gatelab/ops/backend.py) on a CPU: ``auto`` runs gatelab's PyTorch forms,
``fla`` where it cannot run is a clear error, the run's default comes from ``TrainConfig.backend`` and is recorded
in ``meta.json``. The fla kernels themselves are compared in tests/gpu/test_fla_backend.py (skipped without CUDA)."""
from __future__ import annotations

import json
import sys

import pytest
import torch
import torch.nn.functional as F

from gatelab.config import ConfigError, apply_overrides, from_dict
from gatelab.models import ModelConfig
from gatelab.ops import backend as backend_module
from gatelab.ops import (
    backend_record,
    chunk_gated_delta_rule,
    chunk_gla,
    chunk_selective_scan,
    chunk_simple_gla,
    default_backend,
    use_backend,
)
from gatelab.train import MQARTaskConfig, OptimConfig, TrainConfig, train
from tests.utils import gla_inputs

B, T, H, K, V = 2, 20, 2, 8, 6


def calls():
    """Each chunked op with an fla kernel, as a function of ``backend``, on small CPU inputs."""
    q, k, v, g, h0 = gla_inputs(B, T, H, K, V, dtype=torch.float32, initial_state=True)
    g_head = g[..., 0]
    beta = torch.rand(B, T, H, generator=torch.Generator().manual_seed(1))
    kn = F.normalize(k, dim=-1)
    return {
        "chunk_gla": lambda backend: chunk_gla(q, k, v, g=g, initial_state=h0, output_final_state=True,
                                               backend=backend),
        "chunk_simple_gla": lambda backend: chunk_simple_gla(q, k, v, g=g_head, initial_state=h0,
                                                             output_final_state=True, backend=backend),
        "chunk_gated_delta_rule": lambda backend: chunk_gated_delta_rule(q, kn, v, g=g_head, beta=beta,
                                                                         initial_state=h0, output_final_state=True,
                                                                         backend=backend),
    }


def scan_inputs():
    gen = torch.Generator().manual_seed(0)
    x, dt = torch.randn(B, T, 4, generator=gen), F.softplus(torch.randn(B, T, 4, generator=gen))
    A, Bx = -torch.rand(4, 3, generator=gen), torch.randn(B, T, 3, generator=gen)
    C = torch.randn(B, T, 3, generator=gen)
    return x, dt, A, Bx, C


@pytest.fixture
def fla_import_fails(monkeypatch):
    """Make ``import fla.ops`` fail (as on a machine without flash-linear-attention), whatever is installed."""
    backend_module._import_fla.cache_clear()
    monkeypatch.setitem(sys.modules, "fla", None)
    monkeypatch.setitem(sys.modules, "fla.ops", None)
    yield
    backend_module._import_fla.cache_clear()


@pytest.fixture
def fla_imports(monkeypatch):
    """Pretend ``fla.ops`` imports (the kernels are never called: only the choice is tested)."""
    monkeypatch.setattr(backend_module, "fla_ops", lambda: object())
    monkeypatch.setattr(backend_module, "fla_version", lambda: "0.6.0")


@pytest.mark.parametrize("op", list(calls()))
def test_auto_and_the_default_on_cpu_run_the_torch_form(op):
    call = calls()[op]
    o, h = call("torch")
    for backend in ("auto", None):
        o2, h2 = call(backend)
        assert torch.equal(o, o2) and torch.equal(h, h2)
    assert backend_module.resolve(op, "auto", o) == "torch"


@pytest.mark.parametrize("op", list(calls()))
def test_fla_on_cpu_is_a_clear_error(op):
    with pytest.raises(ConfigError, match=rf"{op}: backend='fla' cannot run here: .*CUDA tensors; these are on cpu"
                                          r".*pip install -e \"\.\[gpu\]\""):
        calls()[op]("fla")


@pytest.mark.parametrize("op", list(calls()))
def test_an_unknown_backend_is_an_error_listing_the_valid_ones(op):
    with pytest.raises(ConfigError, match=rf"{op}: backend='cuda' is not a backend; choose one of auto, torch, fla"):
        calls()[op]("cuda")


def test_a_missing_fla_is_a_clear_error_and_auto_falls_back_saying_why(fla_import_fails):
    assert backend_module.fla_ops() is None
    reason = backend_module.why_not_fla("cuda", torch.bfloat16)
    assert "flash-linear-attention (with triton) is not installed" in reason and 'pip install -e ".[gpu]"' in reason
    with pytest.raises(ConfigError, match=r"backend='fla' cannot run here: flash-linear-attention .* not installed"):
        backend_record("fla", "cuda")
    record = backend_record("auto", "cuda")
    assert record["backend_used"] == "torch" and "not installed" in record["backend_reason"] and record["fla"] is None


def test_auto_picks_fla_on_cuda_when_it_imports_except_in_float64(fla_imports):
    assert backend_module.why_not_fla("cuda", torch.bfloat16) is None
    assert backend_module.why_not_fla("cuda:1", torch.float32) is None
    assert "float64" in backend_module.why_not_fla("cuda", torch.float64)
    assert backend_record("auto", "cuda") == {"backend": "auto", "backend_used": "fla",
                                              "backend_reason": "auto: a CUDA device and fla installed", "fla": "0.6.0"}
    assert backend_record("torch", "cuda")["backend_used"] == "torch"
    assert backend_record("auto", "cpu")["backend_used"] == "torch"


def test_the_selective_scan_has_no_fla_kernel():
    y, _ = chunk_selective_scan(*scan_inputs(), backend="auto")
    assert torch.equal(y, chunk_selective_scan(*scan_inputs(), backend="torch")[0])
    with pytest.raises(ConfigError, match="chunk_selective_scan: backend='fla' is not available: .*no kernel"):
        chunk_selective_scan(*scan_inputs(), backend="fla")


def test_use_backend_sets_the_default_for_a_block_and_restores_it():
    assert default_backend() == "auto"
    with pytest.raises(ConfigError, match="backend='fla' cannot run here"), use_backend("fla"):
        assert default_backend() == "fla"
        calls()["chunk_gla"](None)
    assert default_backend() == "auto"
    with pytest.raises(ConfigError, match="backend='gpu' is not a backend"), use_backend("gpu"):
        pass


def test_train_config_backend_field_validates():
    assert TrainConfig().backend == "auto"
    assert apply_overrides(TrainConfig(), ["backend=torch"]).backend == "torch"
    with pytest.raises(ConfigError, match="backend"):
        apply_overrides(TrainConfig(), ["backend=gpu"])
    with pytest.raises(ConfigError, match="backend"):
        from_dict(TrainConfig, {"backend": "cuda"})


def tiny(mixer: str, **kw) -> TrainConfig:
    return TrainConfig(mqar=MQARTaskConfig(vocab_size=32, seq_lens=[16], num_kv_pairs=[2], train_examples=64,
                                           test_examples=16),
                       model=ModelConfig(d_model=16, n_layers=1, n_heads=2, channel="none", mixer=mixer),
                       optim=OptimConfig(lr=1e-2), batch_size=8, max_steps=3, eval_every=3, **kw)


def losses(folder) -> list[float]:
    return [json.loads(line)["loss"] for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_a_run_records_its_backend_and_torch_equals_the_default_on_cpu(tmp_path):
    train(tiny("gla"), tmp_path / "auto", progress=False)
    train(tiny("gla", backend="torch"), tmp_path / "torch", progress=False)
    auto, torch_ = (json.loads((tmp_path / name / "meta.json").read_text()) for name in ("auto", "torch"))
    assert auto["backend"] == "auto" and auto["backend_used"] == "torch" and "CUDA" in auto["backend_reason"]
    assert (torch_["backend"], torch_["backend_used"], torch_["backend_reason"]) == ("torch", "torch", "asked for")
    assert losses(tmp_path / "auto") == losses(tmp_path / "torch")
    assert default_backend() == "auto"


def test_a_run_asking_for_fla_on_cpu_stops_before_touching_its_folder(tmp_path):
    with pytest.raises(ConfigError, match="backend='fla' cannot run here"):
        train(tiny("gla", backend="fla"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "config.json").exists()


@pytest.fixture
def hopper_with_old_triton(monkeypatch, fla_imports):
    """fla's own flags as on an H100/H200 with Triton 3.6 and no tilelang: its gated backward kernel refuses."""
    flags = type(sys)("fla.ops.common.chunk_o")
    flags.IS_NVIDIA_HOPPER, flags.TRITON_ABOVE_3_4_0, flags.TRITON_ABOVE_3_7_1 = True, True, False
    monkeypatch.setitem(sys.modules, "fla.ops.common.chunk_o", flags)
    monkeypatch.setattr(backend_module, "why_not_fla", lambda device, dtype=None: None)
    monkeypatch.setattr(backend_module.importlib.util, "find_spec", lambda name: None)
    backend_module.gated_backward_refused.cache_clear()
    yield flags
    backend_module.gated_backward_refused.cache_clear()


def test_where_fla_refuses_its_gated_backward_auto_runs_torch_and_fla_says_why(hopper_with_old_triton):
    x = torch.zeros(1)
    assert backend_module.resolve("chunk_gated_delta_rule", "auto", x, gated_backward=True) == "torch"
    assert backend_module.resolve("chunk_simple_gla", "auto", x, gated_backward=False) == "fla"   # no decay
    assert backend_module.resolve("chunk_gla", "fla", x) == "fla"                               # its own kernels
    with pytest.raises(ConfigError, match=r"chunk_gated_delta_rule: backend='fla' cannot run here: .*Hopper.*#640"):
        backend_module.resolve("chunk_gated_delta_rule", "fla", x, gated_backward=True)
    record = backend_record("auto", "cuda")
    assert record["backend_used"] == "fla" and set(record["torch_ops"]) == {
        "chunk_simple_gla (with a decay)", "chunk_gated_delta_rule"}


def test_a_newer_triton_or_tilelang_lifts_the_refusal(hopper_with_old_triton, monkeypatch):
    hopper_with_old_triton.TRITON_ABOVE_3_7_1 = True
    assert backend_module.gated_backward_refused() is None
    hopper_with_old_triton.TRITON_ABOVE_3_7_1 = False
    backend_module.gated_backward_refused.cache_clear()
    monkeypatch.setattr(backend_module.importlib.util, "find_spec",
                        lambda name: object() if name == "tilelang" else None)
    assert backend_module.gated_backward_refused() is None
    assert "torch_ops" not in backend_record("auto", "cuda")


@pytest.mark.parametrize("autocast", [False, True])
def test_fla_gets_q_k_v_and_beta_in_one_dtype(monkeypatch, autocast):
    """Under autocast a mixer's q, k (normed: float32) and v, beta (projections: bf16) arrive in mixed dtypes; a
    Triton dot takes one. The fla call gets them in autocast's dtype (else the widest); g and the state keep theirs."""
    from gatelab.ops.fla_backend import fla_chunk_gated_delta_rule

    seen = {}

    def fake_kernel(q, k, v, g, beta, scale, initial_state, output_final_state):
        seen.update(q=q.dtype, k=k.dtype, v=v.dtype, g=g.dtype, beta=beta.dtype, h0=initial_state.dtype)
        return v.clone(), initial_state

    fake = type(sys)("fla.ops.gated_delta_rule")
    fake.chunk_gated_delta_rule = fake_kernel
    monkeypatch.setitem(sys.modules, "fla.ops.gated_delta_rule", fake)
    monkeypatch.setattr(torch, "is_autocast_enabled", lambda device_type=None: autocast)
    monkeypatch.setattr(torch, "get_autocast_dtype", lambda device_type: torch.bfloat16)
    q = F.normalize(torch.randn(B, T, H, K), dim=-1)                                   # float32
    v, beta = torch.randn(B, T, H, V, dtype=torch.bfloat16), torch.rand(B, T, H, dtype=torch.bfloat16)
    g, h0 = F.logsigmoid(torch.randn(B, T, H)), torch.zeros(B, H, K, V)
    o, _ = fla_chunk_gated_delta_rule(q, q, v, g=g, beta=beta, scale=None, initial_state=h0,
                                      output_final_state=True, chunk_size=64)
    one = torch.bfloat16 if autocast else torch.float32
    assert seen == {"q": one, "k": one, "v": one, "beta": one, "g": torch.float32, "h0": torch.float32}
    assert o.dtype == q.dtype


def test_the_ops_ask_for_fla_gated_backward_only_when_autograd_records(monkeypatch):
    """Inference (no_grad, or no input requiring grad) runs no backward, so fla's refusal does not apply to it."""
    from gatelab.ops.delta_rule import chunk as delta_rule_chunk
    from gatelab.ops.simple_gla import chunk as simple_gla_chunk

    asked = []

    def spy(op, backend, x, has_fla_kernel=True, gated_backward=False):
        asked.append(gated_backward)
        return "torch"

    monkeypatch.setattr(delta_rule_chunk, "resolve", spy)
    monkeypatch.setattr(simple_gla_chunk, "resolve", spy)
    q, k, v, g, h0 = gla_inputs(B, T, H, K, V, dtype=torch.float32, initial_state=True)
    g, beta, kn = g[..., 0], torch.rand(B, T, H), F.normalize(k, dim=-1)
    chunk_simple_gla(q, k, v, g=g)
    chunk_gated_delta_rule(q, kn, v, g=g, beta=beta)
    with torch.no_grad():
        chunk_simple_gla(q, k, v.requires_grad_(), g=g)
    chunk_simple_gla(q, k, v, g=None)                                  # no decay: fla's ungated kernels
    chunk_simple_gla(q, k, v, g=g)
    chunk_gated_delta_rule(q, kn, v, g=g, beta=beta)
    assert asked == [False, False, False, False, True, True]


def test_backend_fla_with_mamba_is_refused_when_the_config_is_checked():
    """Before a run folder is touched, not at the first forward: mamba's selective scan has no fla kernel."""
    for mixer in ("mamba", "gla,mamba"):
        with pytest.raises(ConfigError, match="backend=fla: mamba's selective scan has no flash-linear-attention"):
            TrainConfig(model=ModelConfig(mixer=mixer, n_layers=2), backend="fla").check()
    TrainConfig(model=ModelConfig(mixer="mamba", n_layers=2), backend="auto").check()
    TrainConfig(model=ModelConfig(mixer="gla", n_layers=2), backend="fla").check()
