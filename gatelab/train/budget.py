"""Equal-time comparisons: turn a wall-clock training budget into a number of optimiser steps per model, measured
on this machine, so each mixer trains for as many steps as it can do in the same time (and the run stays
reproducible: steps, not seconds, define it)."""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from ..config import to_dict
from ..models.lm import DecoderLM
from .config import TrainConfig
from .optim import build_optimizer


def seconds_per_step(cfg: TrainConfig, warmup: int = 2, repeats: int = 6) -> float:
    """Median seconds of one training step (forward, backward, AdamW) of ``cfg``'s model on a random batch of its
    shape; ``cfg`` must be resolved (its vocabulary set). Channel mixers whose cost changes over training (EvoMoE:
    one expert, then a dense gate annealed to a sparse one) are timed as at the middle of a run."""
    torch.manual_seed(0)
    model = DecoderLM(cfg.model).to(cfg.device)
    model.on_train_step(cfg.max_steps // 2, cfg.max_steps)
    opt = build_optimizer(model, cfg.optim)
    T = cfg.lm.seq_len if cfg.task == "lm" else max(cfg.mqar.seq_lens)
    x = torch.randint(0, cfg.model.vocab_size, (cfg.batch_size, T + 1), device=cfg.device)
    times = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        out = model(x[:, :-1], labels=x[:, 1:])
        opt.zero_grad(set_to_none=True)
        (out.loss if out.aux_loss is None else out.loss + out.aux_loss).backward()
        opt.step()
        if cfg.device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def steps_for_budget(cfg: TrainConfig, seconds: float, record: Path | None = None) -> int:
    """How many steps of ``cfg`` fit in ``seconds`` of training. With ``record`` (a JSON file), a measurement made
    before for the same model, batch and length is reused, so a resumed comparison keeps its step counts."""
    key = json.dumps({"model": to_dict(cfg.model), "batch_size": cfg.batch_size, "task": cfg.task,
                      "seq_len": cfg.lm.seq_len if cfg.task == "lm" else cfg.mqar.seq_lens}, sort_keys=True)
    known = json.loads(record.read_text()) if record is not None and record.exists() else {}
    if key not in known:
        known[key] = seconds_per_step(cfg)
        if record is not None:
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps(known, indent=1))
    return max(1, int(seconds / known[key]))
