"""The shared machinery of ``gatelab reproduce``: scales, block architectures, parameter-matched variants trained
over seeds, and the per-run measurements (the report is ``report.py``)."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.analyze import AnalysisConfig, as_tensor, load_trained, quantization
from ..analysis.measure import measure
from ..models.lm import ModelConfig
from ..models.params import count_active_params, match_params
from ..tasks.text import tokenized_corpus
from ..tasks.text.windows import windows
from ..train.config import LMTaskConfig, TrainConfig
from ..train.executors import Executor
from ..train.run import write_json_atomic
from ..train.sweep import SweepRun, run_sweep


@dataclass(frozen=True)
class Scale:
    """Model and training size of a reproduction mode."""

    d_model: int
    n_layers: int
    seq_len: int
    batch_size: int
    steps: int
    eval_tokens: int
    lr: float
    n_heads: int = 4


SCALES = {
    "smoke": Scale(d_model=16, n_layers=2, seq_len=16, batch_size=4, steps=4, eval_tokens=256, lr=3e-3, n_heads=2),
    "quick": Scale(d_model=64, n_layers=4, seq_len=64, batch_size=16, steps=150, eval_tokens=4096, lr=3e-3),
    # full: gated-attention's 24 runs took 109 minutes and quantizable's 9 took 47, side by side as one-thread
    # processes on 2 CPU cores
    "full": Scale(d_model=128, n_layers=4, seq_len=128, batch_size=16, steps=500, eval_tokens=32768, lr=2e-3),
}


@dataclass(frozen=True)
class Variant:
    """A model of a reproduction: its token mixer with options, and ``model``: other ``ModelConfig`` fields it
    changes (``{"channel": "moe", "channel_options": {"moe": {...}}, "residual": "gtrxl_gru"}``)."""

    name: str
    mixer: str
    options: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Architecture:
    """The block around the token mixer: its norm and channel mixer (``ModelConfig.norm`` / ``.channel``)."""

    norm: str = "rmsnorm"
    channel: str = "swiglu"
    description: str = "pre-norm blocks with RMSNorm and a SwiGLU channel mixer (no biases)"


LLAMA_LIKE = Architecture()
OPT_LIKE = Architecture("layernorm", "mlp", "OPT/BERT-like pre-norm blocks: LayerNorm (weight and bias) and a 4x MLP "
                        "with biases and GELU (BERT's activation; OPT's is ReLU); the attention projections have no "
                        "biases, unlike the paper's models")


def lm_config(scale: Scale, data: str, mixer: str, options: dict[str, Any], seed: int, lr: float,
              arch: Architecture = LLAMA_LIKE, model: dict[str, Any] | None = None) -> TrainConfig:
    """Word-level LM with a BOS token at position 0 of every window (where sinks form), pre-norm blocks of
    ``arch``; ``model`` overrides other ModelConfig fields (a variant's channel mixer or residual)."""
    cfg = TrainConfig(task="lm", lm=LMTaskConfig(data=data, seq_len=scale.seq_len, eval_tokens=scale.eval_tokens,
                                                 bos=True),
                      model=ModelConfig(d_model=scale.d_model, n_layers=scale.n_layers, n_heads=scale.n_heads,
                                        mixer=mixer, mixer_options={mixer: dict(options)} if options else {},
                                        channel=arch.channel, norm=arch.norm),
                      batch_size=scale.batch_size, max_steps=scale.steps, eval_every=scale.steps, seed=seed)
    cfg.optim.lr = lr
    for name, value in (model or {}).items():
        setattr(cfg.model, name, copy.deepcopy(value))
    return cfg


def variant_runs(variants: list[Variant], scale: Scale, seeds: int, data: str,
                 arch: Architecture = LLAMA_LIKE, match: bool = True) -> list[SweepRun]:
    """Every (variant, seed) run, each variant parameter-matched to the first by its channel mixer's width, on the
    parameters one token uses (all of a dense model's; a mixture of experts' router, shared and top-k experts);
    ``match=False`` keeps every variant at its channel mixer's default width."""
    vocab = tokenized_corpus(data, "word")[0].vocab_size
    runs = []
    reference = None
    for v in variants:
        model = lm_config(scale, data, v.mixer, v.options, 0, scale.lr, arch, v.model).model
        model.vocab_size = vocab
        reference = reference or count_active_params(model)
        d_ff = match_params(model, reference, active=True).d_ff if match and v is not variants[0] else 0
        for seed in range(seeds):
            cfg = lm_config(scale, data, v.mixer, v.options, seed, scale.lr, arch, v.model)
            cfg.model.d_ff = d_ff
            runs.append(SweepRun(f"{v.name}-s{seed}", {"variant": v.name, "seed": seed}, cfg))
    return runs


MEASURED_WITH = "measure v2: + m_act_ratio, max_inf_over_median; W8A8 full scope, percentile 99.999, MSE weights"
W8A8 = AnalysisConfig(bits=((8, 8),), quant_scope="full", act_percentile=99.999, weight_range="mse")


def measure_run(run_dir: Path, scale: Scale, quantize: bool) -> dict[str, Any]:
    """The measurements a reproduction compares, cached in ``RUN/measure.json`` (remeasured when the cache was
    written by another version of this function, or lacks the quantization asked for). W8A8 is the paper's OPT
    validation set-up: its full scope (``gatelab.analysis.quant``), weight ranges of least squared error, activation
    ranges between the 0.001 and 99.999 percentiles, the head in float."""
    cached = run_dir / "measure.json"
    if cached.exists():
        old = json.loads(cached.read_text())
        if old.get("measured_with") == MEASURED_WITH and (not quantize or "w8a8_ppl" in old):
            return {k: v for k, v in old.items() if k != "measured_with"}
    trained = load_trained(run_dir)
    x, y = windows(as_tensor(trained.streams["test"]), scale.seq_len, scale.eval_tokens, trained.bos)
    r = measure(trained.model, x, y, keep_gate_values=False)
    out = {"ppl": r["ppl"], "f_attn": r["f_attn"]["mean"], "m_act": r["m_act"]["mean"],
           "m_act_ratio": r["m_act"]["mean_max_over_median"],
           "gate_score": r["gate_score"]["per_kind"].get("gate.probe"),
           "max_inf_norm": r["outliers"]["max_inf_norm"], "max_inf_over_median": r["outliers"]["max_inf_over_median"],
           "avg_kurtosis": r["outliers"]["avg_kurtosis"]}
    if quantize:
        q = quantization(trained.model, x, y, trained.calibration_stream(W8A8), scale.seq_len, W8A8, trained.bos)
        out.update({"w8a8_ppl": q["W8A8"], "w8a8_gap": q["W8A8"] - q["float"],
                    "w8a8_rel_gap": q["W8A8"] / q["float"] - 1})
    write_json_atomic(cached, {**out, "measured_with": MEASURED_WITH})
    return out


def train_and_measure(runs: list[SweepRun], out: Path, scale: Scale, quantize: bool = False,
                      progress: bool = True, executor: Executor | None = None) -> list[dict[str, Any]]:
    """Train (or read back) every run under ``out/runs``, by ``executor`` (one after another here by default;
    ``gatelab.train.executors``), and measure it; each record also has the model's parameters and those one token
    uses."""
    records = run_sweep(runs, out, progress, executor)
    return [{**run.coords, "params": r["num_params"], "active_params": r["active_params"],
             **measure_run(out / "runs" / run.name, scale, quantize)} for run, r in zip(runs, records, strict=True)]
