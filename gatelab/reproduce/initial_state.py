"""``gatelab reproduce initial-state``: initial-state tuning (Lemerle et al. 2024, "Lina-Speech: Gated Linear
Attention is a Fast and Parameter-Efficient Learner for text-to-speech synthesis", arXiv 2410.23320) as a
parameter-efficient way to adapt a trained recurrent LM to a new corpus.

Per seed, a byte-level source LM (gla, and mamba2: a second recurrent family, whose state is four times GLA's at
these sizes, for about 1.4 times GLA's training time) trains on PTB; then it adapts to the target corpus
(Shakespeare by default) three ways, with the same steps, batches and data: ``initial_state`` (only a learned
initial state per layer), ``lora`` at the initial states' trainable-parameter count
(``gatelab.train.finetune.matched``) and ``full`` fine-tuning, each over a small learning-rate grid; every run is an
ordinary gatelab run under ``OUT/runs`` (reused when finished with the same config). The untuned source is measured
on the target too. Each arm's learning rate is the one with the lowest mean valid perplexity over seeds; the
claims are judged on test perplexity, and only where a domain shift exists (full fine-tuning lowers the untuned
source's test perplexity by at least a tenth, ``initial_state_report.SHIFT_FLOOR``).

Durations, single-thread runs one after another, 3 seeds (estimates from timed training steps, not measured end
to end): smoke seconds; quick about 20 minutes (about 10 on 2 cores with ``--workers 2``); full about 90 minutes
(about 45 on 2 cores).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ConfigError, to_dict
from ..tasks.text import tokenized_corpus
from ..tasks.text.tokenizers import ByteTokenizer
from ..train.config import LMTaskConfig, TrainConfig
from ..train.executors import Executor
from ..train.files import read_json, write_json_atomic
from ..train.finetune import LoRAConfig, Tuning
from ..train.finetune.matched import LoRAMatch, matched_lora
from ..train.loop import evaluate
from ..train.sweep import SweepRun, run_sweep
from ..train.tasks import build_task
from .experiment import Scale, lm_config
from .initial_state_report import report

SOURCE = "ptb"
MIXERS = ("gla", "mamba2")
ARMS = ("initial_state", "lora", "full")


@dataclass(frozen=True)
class Protocol:
    """A mode: the source model and its PTB training (``scale``: its steps and lr), ``tune_steps`` of every
    adaptation run (same batch, length and evaluation as the source) and each arm's learning-rate grid."""

    scale: Scale
    tune_steps: int
    lrs: dict[str, tuple[float, ...]]


# The learning-rate grids come from a one-seed probe at the quick scale (Shakespeare valid ppl after 200 steps; the
# untuned sources: gla 39.3, mamba2 40.4). initial_state, gla: lr 0.03 / 0.1 / 0.3 / 1 / 3 / 10 / 30 gave 37.7 / 36.4
# / 35.5 / 34.5 / 33.9 / 33.3 / 32.7 (still falling: a larger state outlasts the forget gates over more bytes; its
# largest entry grew to 64 at lr 1 and 1,500 at lr 30), mamba2: 0.3 / 1 / 10 gave 16.8 / 16.5 / 17.4; lora, gla:
# 3e-3 / 1e-2 / 3e-2 / 0.1 gave 14.4 / 11.6 / 11.1 / 19.0, mamba2: 1e-2 / 3e-2 gave 9.42 / 9.25; full, gla: 3e-4 /
# 1e-3 / 3e-3 / 1e-2 gave 8.76 / 7.24 / 6.92 / 7.14, mamba2: 3e-3 gave 6.18. Each arm gets as many rates as the others.
PROTOCOLS = {
    "smoke": Protocol(Scale(d_model=16, n_layers=2, seq_len=32, batch_size=4, steps=4, eval_tokens=256, lr=3e-3,
                            n_heads=2), 4, {"initial_state": (1.0,), "lora": (3e-2,), "full": (3e-3,)}),
    "quick": Protocol(Scale(d_model=64, n_layers=4, seq_len=128, batch_size=16, steps=600, eval_tokens=16384,
                            lr=3e-3), 200, {"initial_state": (1.0, 10.0, 30.0), "lora": (1e-2, 3e-2, 0.1),
                                            "full": (1e-3, 3e-3, 1e-2)}),
    "full": Protocol(Scale(d_model=128, n_layers=4, seq_len=128, batch_size=16, steps=1200, eval_tokens=65536,
                           lr=2e-3), 300, {"initial_state": (0.3, 3.0, 30.0), "lora": (1e-2, 3e-2, 0.1),
                                           "full": (1e-3, 3e-3, 1e-2)}),
}


def source_config(p: Protocol, mixer: str, seed: int) -> TrainConfig:
    """The source LM: PTB read as UTF-8 bytes (256 ids, so every target byte has an id), no BOS token."""
    cfg = lm_config(p.scale, SOURCE, mixer, {}, seed, p.scale.lr)
    cfg.lm.tokenizer, cfg.lm.bos = "byte", False
    return cfg


def source_runs(p: Protocol, seeds: int) -> list[SweepRun]:
    return [SweepRun(f"source-{m}-s{s}", {"mixer": m, "seed": s}, source_config(p, m, s))
            for m in MIXERS for s in range(seeds)]


def tune_config(p: Protocol, source: Path, target: str, arm: str, lr: float, seed: int,
                lora: LoRAMatch | None = None) -> TrainConfig:
    """An adaptation run from the finished ``source`` run on ``target`` (read with the source's tokenizer). AdamW
    without weight decay for every arm (Lina-Speech tunes its states with Adam and no decay); LoRA's alpha is twice
    its rank (scale 2, the ratio of LoRAConfig's defaults) on ``lora``'s projections."""
    s = p.scale
    cfg = TrainConfig(task="lm", lm=LMTaskConfig(data=target, tokenizer="model", seq_len=s.seq_len,
                                                 eval_tokens=s.eval_tokens),
                      init_from=str(source), tune=arm, batch_size=s.batch_size, max_steps=p.tune_steps,
                      eval_every=p.tune_steps, seed=seed)
    if arm == "lora" and lora is not None:
        cfg.lora = LoRAConfig(rank=lora.rank, alpha=2.0 * lora.rank, targets=list(lora.targets))
    cfg.optim.lr, cfg.optim.weight_decay = lr, 0.0
    return cfg


def variant(mixer: str, arm: str, lr: float | None = None) -> str:
    return f"{mixer} {arm}" if lr is None else f"{mixer} {arm} lr={lr:g}"


def tune_runs(p: Protocol, sources: list[tuple[str, int]], out: Path, target: str,
              matches: dict[str, LoRAMatch]) -> list[SweepRun]:
    """Every arm at every learning rate from each (mixer, seed) source in ``sources``."""
    runs = []
    for m in MIXERS:
        for arm in ARMS:
            for lr in p.lrs[arm]:
                for s in sorted(seed for mixer, seed in sources if mixer == m):
                    cfg = tune_config(p, out / "runs" / f"source-{m}-s{s}", target, arm, lr, s, matches[m])
                    coords = {"variant": variant(m, arm, lr), "mixer": m, "arm": arm, "lr": lr, "seed": s}
                    runs.append(SweepRun(f"{m}-{arm}-lr{lr:g}-s{s}", coords, cfg))
    return runs


def zero_shot(cfg: TrainConfig, cache: Path) -> dict[str, float]:
    """The valid and test perplexity of ``cfg.init_from``'s model on ``cfg``'s corpus before any tuning (what
    ``cfg``'s run would measure at step 0), cached in ``cache`` while the source weights and the task stay."""
    task = build_task(cfg)
    resolved = cfg.resolved(task.vocab_size)
    key = {"init_from_sha256": resolved.init_from_sha256, "lm": to_dict(resolved.lm)}
    if cache.exists():
        old = read_json(cache)
        if old.get("key") == key:
            return old["metrics"]
    metrics, _ = evaluate(Tuning(task.model(resolved), resolved).model, task, 2 * cfg.batch_size, "cpu")
    write_json_atomic(cache, {"key": key, "metrics": metrics})
    return metrics


def unseen_bytes(target: str) -> dict[str, Any]:
    """The byte values of the target's test split that the source's training split never holds (PTB is lower-case
    and has almost no punctuation), and the fraction of the test bytes they make up. Reading the target first
    also rejects a missing corpus before anything trains."""
    source = np.unique(np.asarray(tokenized_corpus(SOURCE, "byte")[1]["train"]))
    test = np.asarray(tokenized_corpus(target, "byte")[1]["test"])
    unseen = np.setdiff1d(np.unique(test), source)
    return {"values": len(unseen), "fraction": float(np.isin(test, unseen).mean()) if len(test) else 0.0,
            "shown": bytes(int(b) for b in unseen if 32 <= b < 127).decode("ascii")}


def _result(out: Path, run: SweepRun) -> dict[str, Any]:
    return read_json(out / "runs" / run.name / "result.json")


def tuned_records(out: Path, runs: list[SweepRun], records: list[dict[str, Any]],
                  untuned: dict[tuple[str, int], float]) -> list[dict[str, Any]]:
    """One record per adaptation run: test and valid perplexity (the runs' single, final evaluation), bits per
    byte, trainable parameters, train seconds and the test perplexity's reduction against its untuned source."""
    out_records = []
    for run, r in zip(runs, records, strict=True):
        base = untuned[r["mixer"], r["seed"]]
        out_records.append({k: r[k] for k in ("variant", "mixer", "arm", "lr", "seed", "test_ppl", "valid_ppl",
                                              "train_seconds", "diverged")}
                           | {"bpb": math.log2(r["test_ppl"]), "ppl_reduction": 1 - r["test_ppl"] / base,
                              "trainable_params": _result(out, run)["trainable_params"]})
    return out_records


def reproduce(mode: str, seeds: int, out: Path, data: str, command: str, progress: bool = True,
              executor: Executor | None = None) -> Path:
    if data.strip() == SOURCE:
        raise ConfigError(f"--data {SOURCE}: the source models train on {SOURCE}; give another corpus to adapt them to "
                          "(shakespeare, kjv, imdb or a folder of train/valid/test text files)")
    p = PROTOCOLS[mode]
    shift = unseen_bytes(data)
    matches = {m: matched_lora(source_config(p, m, 0).resolved(ByteTokenizer.vocab_size).model) for m in MIXERS}
    source_records = run_sweep(source_runs(p, seeds), out, progress, executor)
    usable = [(r["mixer"], r["seed"]) for r in source_records if not r["diverged"]]   # (a diverged one has no model)
    untuned, records = {}, []
    for m, s in usable:
        cfg = tune_config(p, out / "runs" / f"source-{m}-s{s}", data, "full", p.lrs["full"][0], s)
        metrics = zero_shot(cfg, out / "zero-shot" / f"{m}-s{s}.json")
        untuned[m, s] = metrics["test/ppl"]
        records.append({"variant": variant(m, "untuned"), "mixer": m, "arm": "untuned", "lr": None, "seed": s,
                        "test_ppl": metrics["test/ppl"], "valid_ppl": metrics["valid/ppl"],
                        "bpb": math.log2(metrics["test/ppl"]), "ppl_reduction": 0.0, "trainable_params": 0,
                        "train_seconds": 0.0, "diverged": False})
    runs = tune_runs(p, usable, out, data, matches)
    records += tuned_records(out, runs, run_sweep(runs, out, progress, executor), untuned)
    return report(out, mode, seeds, data, command, p, records, source_records, matches, shift)
