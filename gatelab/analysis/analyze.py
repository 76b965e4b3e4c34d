"""``gatelab analyze RUN_DIR``: every measurement of a trained language model, written as JSON, markdown and
plots. The evaluation data is the run's own test split (through the run's tokenizer); quantization calibrates
on its training split."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import ConfigError, from_dict
from ..models.lm import DecoderLM
from ..tasks.text import bos_id, check_same_tokenizer, tokenized_corpus
from ..tasks.text.windows import windows
from ..train.config import TrainConfig
from ..train.run import write_json_atomic
from ..train.tasks import perplexity
from .extrapolation import extrapolation
from .measure import measure
from .quant import SCOPES, quantized
from .state import state_bytes


@dataclass(kw_only=True)
class AnalysisConfig:
    """How much data each measurement reads. ``eval_tokens``: leading tokens of the test split for the
    per-model measurements and quantization (0: all; None: as the run evaluated, its ``lm.eval_tokens``, so the
    test perplexity here is the one training reported); ``calibration_batches`` of ``batch_size`` training windows
    set the activation ranges; ``bits``: (weight, activation) widths to simulate; ``quant_scope``: which
    activations are quantized (``gatelab.analysis.quant``: ``full``, the paper's, or ``linear``) and
    ``act_percentile`` their calibrated range (None: min-max; the paper's OPT validation uses 99.999);
    ``weight_range``: ``minmax`` or ``mse`` (the paper's validation scripts search the range of least error);
    ``extrapolation_tokens`` per length for the extrapolation curves (None: the same tokens as the evaluation, so
    the curve at the training length is the test perplexity)."""

    eval_tokens: int | None = None
    batch_size: int = 16
    calibration_batches: int = 16
    bits: tuple[tuple[int, int], ...] = ((8, 8), (6, 6), (4, 8))
    quant_scope: str = "full"
    act_percentile: float | None = None
    weight_range: str = "minmax"
    factors: tuple[int, ...] = (1, 2, 4, 8)
    extrapolation_tokens: int | None = None

    def __post_init__(self):
        if self.quant_scope not in SCOPES:
            raise ConfigError(f"quant_scope {self.quant_scope!r}: choose one of {', '.join(SCOPES)}")
        if self.weight_range not in ("minmax", "mse"):
            raise ConfigError(f"weight_range {self.weight_range!r}: choose minmax or mse")
        for name in ("eval_tokens", "extrapolation_tokens"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name} must be >= 0 (0: all test tokens); got {value}")

    def for_run(self, config: TrainConfig) -> AnalysisConfig:
        """This config with ``eval_tokens`` None replaced by the run's ``lm.eval_tokens``."""
        return self if self.eval_tokens is not None else dataclasses.replace(self, eval_tokens=config.lm.eval_tokens)


@dataclass
class Trained:
    """A trained language model with what measuring it needs: its run config, the tokenised splits, and the BOS
    id that starts each window (None unless it was trained with ``lm.bos``)."""

    model: DecoderLM
    config: TrainConfig
    streams: dict[str, np.ndarray]
    bos: int | None

    def calibration_stream(self, cfg: AnalysisConfig) -> torch.Tensor:
        """The leading training tokens that quantization calibrates on (as many as its windows read)."""
        return as_tensor(self.streams["train"], cfg.calibration_batches * cfg.batch_size * self.config.lm.seq_len)


def load_trained(run_dir: str | Path) -> Trained:
    """The trained DecoderLM of a language-model run, its config and its tokenised splits (tokenizer checked)."""
    from ..hf.run import load_run

    run_dir = Path(run_dir)
    cfg = from_dict(TrainConfig, json.loads((run_dir / "config.json").read_text()))
    if cfg.task != "lm":
        raise ValueError(f"{run_dir} is a {cfg.task} run; analyze measures language models (train with --task lm)")
    hf, tokenizer = load_run(run_dir)
    tok, streams = tokenized_corpus(cfg.lm.data, cfg.lm.tokenizer, cfg.lm.vocab_size, cfg.lm.cache,
                                    tokenizer if cfg.lm.tokenizer == "model" else None)
    if tokenizer is not None:
        check_same_tokenizer(tokenizer.to_dict(), tok, f"the model in {run_dir}")
    return Trained(hf.model.eval(), cfg, streams, bos_id(tok) if cfg.lm.bos else None)


def as_tensor(stream: np.ndarray, limit: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.asarray(stream[: limit + 1] if limit else stream, dtype=np.int64))


@torch.no_grad()
def quantization(model: DecoderLM, x: torch.Tensor, y: torch.Tensor, train: torch.Tensor, seq_len: int,
                 cfg: AnalysisConfig, bos: int | None = None) -> dict[str, float]:
    """Perplexity in float and under each simulated (weight, activation) quantization of ``cfg.quant_scope``."""
    cx, _ = windows(train, seq_len, cfg.calibration_batches * cfg.batch_size * seq_len, bos)
    calibration = list(cx.split(cfg.batch_size))
    out = {"float": perplexity(model, x, y, cfg.batch_size)}
    for w, a in cfg.bits:
        with quantized(model, calibration, w_bits=w, a_bits=a, scope=cfg.quant_scope,
                       percentile=cfg.act_percentile, weight_range=cfg.weight_range) as q:
            out[f"W{w}A{a}"] = perplexity(q, x, y, cfg.batch_size)
    return out


@torch.no_grad()
def decode_state(model: DecoderLM, seq_len: int) -> dict[str, int]:
    """Floats per sequence (``state_size``) and bytes held by the states after a context of ``seq_len``."""
    out = model(torch.zeros(1, seq_len, dtype=torch.long))
    return {"seq_len": seq_len, "state_floats": model.state_size(seq_len), "state_bytes": state_bytes(out.states)}


def analyze(model: DecoderLM, test: torch.Tensor, train: torch.Tensor, seq_len: int,
            cfg: AnalysisConfig | None = None, bos: int | None = None) -> dict[str, Any]:
    """All measurements of one model: ``measure`` on the test windows, quantization, extrapolation, state.
    ``eval_tokens`` None reads the whole test split here (``analyze_run`` resolves it from the run)."""
    cfg = cfg or AnalysisConfig()
    tokens = cfg.eval_tokens or 0
    x, y = windows(test, seq_len, tokens, bos)
    result = measure(model, x, y, cfg.batch_size)
    result["eval"] = {"seq_len": seq_len, "windows": len(x), "tokens": y.numel(), "eval_tokens": tokens,
                      "quant_scope": cfg.quant_scope,
                      "extrapolation_tokens": tokens if cfg.extrapolation_tokens is None else cfg.extrapolation_tokens}
    result["quantization"] = quantization(model, x, y, train, seq_len, cfg, bos)
    result["extrapolation"] = extrapolation(model, test, seq_len, cfg.factors, result["eval"]["extrapolation_tokens"],
                                            bos=bos)
    result["state"] = decode_state(model, seq_len)
    return result


def analyze_run(run_dir: str | Path, out_dir: str | Path | None = None,
                cfg: AnalysisConfig | None = None) -> dict[str, Any]:
    """Analyze a run folder; writes ``analysis.json``, ``analysis.md`` and plots into ``out_dir`` (default
    ``RUN_DIR/analysis``). Returns the measurements (without the raw gate samples)."""
    from .report import write_report

    trained = load_trained(run_dir)
    cfg = (cfg or AnalysisConfig()).for_run(trained.config)
    seq_len = trained.config.lm.seq_len
    result = analyze(trained.model, as_tensor(trained.streams["test"]), trained.calibration_stream(cfg), seq_len, cfg,
                     trained.bos)
    out_dir = Path(out_dir) if out_dir else Path(run_dir) / "analysis"
    gate_values = result.pop("gate_values")
    result["run"] = str(run_dir)
    result["mixer"] = trained.config.model.mixer
    write_json_atomic(out_dir / "analysis.json", result)
    write_report(result, gate_values, out_dir)
    return result
