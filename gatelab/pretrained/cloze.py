"""Zero-shot accuracy of a teacher and its linearized students on the local cloze task, and the recovered fraction
of accuracy (the paper's measure: Liger, Lan et al. 2025, arXiv 2503.01496, reports the ratio of mean zero-shot
accuracies of student and teacher), with its standard error over the items."""
from __future__ import annotations

import random
import statistics
from typing import Any

from ..hf.run import to_hf
from ..lmeval.codec import GatelabCodec
from ..lmeval.load import EvalModel
from ..lmeval.run import evaluate
from ..models.lm import DecoderLM

CLOZE_TASK = "ptb_lastword"
BOOTSTRAP = 1000      # resamples of the items for the standard error of a ratio of accuracies


def cloze_correct(model: DecoderLM, tokenizer: Any, seq_len: int, items: int, batch_size: int) -> list[float]:
    """1.0 / 0.0 per item of the first ``items`` of ``CLOZE_TASK`` (greedy decoding gives the target), in item order,
    through lm-eval (a transformers copy of ``model``, as ``gatelab eval`` loads one) reading windows of ``seq_len``
    tokens."""
    loaded = EvalModel(to_hf(model, tokenizer).eval(), GatelabCodec(tokenizer), min(seq_len, model.config.max_seq_len),
                       model.config.max_seq_len, "linearize")
    results = evaluate(loaded, [CLOZE_TASK], limit=items, batch_size=batch_size, log_samples=True)
    samples = sorted(results["samples"][CLOZE_TASK], key=lambda s: s["doc_id"])
    return [float(s["acc"]) for s in samples]


def recovered_accuracy(student: list[float], teacher: list[float], seed: int = 0) -> tuple[float | None, float | None]:
    """``mean(student) / mean(teacher)`` over the same items and its paired-bootstrap standard error
    (``BOOTSTRAP`` resamples of the items; resamples where the teacher gets nothing right are left out). None, None
    when the teacher gets no item right."""
    if len(student) != len(teacher):
        raise ValueError(f"recovered_accuracy: {len(student)} student items against {len(teacher)} teacher items")
    if not any(teacher):
        return None, None
    ratio = sum(student) / sum(teacher)
    rng, n, ratios = random.Random(seed), len(teacher), []
    for _ in range(BOOTSTRAP):
        picks = [rng.randrange(n) for _ in range(n)]
        t = sum(teacher[i] for i in picks)
        if t:
            ratios.append(sum(student[i] for i in picks) / t)
    return ratio, statistics.stdev(ratios) if len(ratios) > 1 else None
