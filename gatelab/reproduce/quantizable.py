"""``gatelab reproduce quantizable``: Bondarenko et al. 2023 (Quantizable Transformers) at CPU scale. Vanilla
softmax attention against clipped softmax (gamma = -4 / T) and their per-head gated attention (pi_init 0.25),
parameter-matched, over seeds: outliers (max infinity norm, average kurtosis) and the perplexity lost to simulated
W8A8 quantization, with the paper's Table 2 numbers (BERT-base; OPT-125m) and a verdict per claim."""
from __future__ import annotations

from pathlib import Path

from ..ops.softmax_attn.ref import clip_gamma_for_length
from .experiment import SCALES, Variant, mode_note, settings_lines, train_and_measure, variant_runs, write_report
from .verdict import Claim

CLAIMS = [
    Claim("clipped softmax lowers the max infinity norm", "max_inf_norm", "vanilla", "clipped_softmax", "lower",
          "BERT 735 → 21.5; OPT 340 → 63.2"),
    Claim("gated attention lowers the max infinity norm", "max_inf_norm", "vanilla", "gated_attention", "lower",
          "BERT 735 → 39.2; OPT 340 → 8.7"),
    Claim("clipped softmax lowers the average kurtosis", "avg_kurtosis", "vanilla", "clipped_softmax", "lower",
          "BERT 3076 → 80; OPT 1778 → 19728 (up)"),
    Claim("gated attention lowers the average kurtosis", "avg_kurtosis", "vanilla", "gated_attention", "lower",
          "BERT 3076 → 201; OPT 1778 → 18.9"),
    Claim("clipped softmax loses less perplexity to W8A8", "w8a8_gap", "vanilla", "clipped_softmax", "lower",
          "BERT +1290 → +0.13; OPT +5.34 → +20.9"),
    Claim("gated attention loses less perplexity to W8A8", "w8a8_gap", "vanilla", "gated_attention", "lower",
          "BERT +1290 → +0.20; OPT +5.34 → +0.47"),
]

COLUMNS = {"ppl": "test ppl", "w8a8_ppl": "W8A8 ppl", "w8a8_gap": "W8A8 − float", "max_inf_norm": "max inf norm",
           "avg_kurtosis": "avg kurtosis", "f_attn": "F-Attn"}


def variants(seq_len: int) -> list[Variant]:
    return [
        Variant("vanilla", "attn"),
        Variant("clipped_softmax", "attn", {"clip_gamma": clip_gamma_for_length(4.0, seq_len)}),
        Variant("gated_attention", "gated_attn", {"gate_source": "per_head", "gate_granularity": "headwise",
                                                  "gate_init_prob": 0.25}),
    ]


def reproduce(mode: str, seeds: int, out: Path, data: str, command: str, progress: bool = True) -> Path:
    scale = SCALES[mode]
    runs = variant_runs(variants(scale.seq_len), scale, seeds, data)
    records = train_and_measure(runs, out, scale, quantize=True, progress=progress)
    notes = mode_note(mode) + [
        "W8A8: every linear layer's weights (symmetric, per tensor, min-max) and inputs (asymmetric, per tensor, "
        "running min-max over 16 calibration batches of the training split) quantized; the output head and the "
        "tied embedding stay in float. The paper's models trained for 125k-1M steps; outliers grow with "
        "training, so this scale tests the direction of each effect, not its size."]
    return write_report(out, "Reproduction: Quantizable Transformers (Bondarenko et al. 2023)", command, records,
                        COLUMNS, CLAIMS, notes, settings_lines(scale, seeds, data))
