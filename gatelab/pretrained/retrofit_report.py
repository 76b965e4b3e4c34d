"""The report of ``gatelab retrofit-gate``: the measured models (source, gated at step 0, the ungated and gated
fine-tunes), the gated-attention claims judged gated fine-tune against ungated fine-tune, each only where its
precondition holds in the source (a sink for F-Attn, massive activations for M-Act and W8A8), and per-layer F-Attn
and M-Act."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..reproduce.experiment import W8A8
from ..reproduce.gated_attention import massive_precondition, sink_precondition
from ..reproduce.report import verdicts, write_report
from ..reproduce.verdict import Claim
from ..train.files import write_json_atomic
from .retrofit_run import BEFORE, VARIANTS

COLUMNS = {"f_attn": "F-Attn mean", "f_attn_max": "max-layer F-Attn", "m_act_max": "M-Act max",
           "m_act_ratio_max": "max/median", "m_act": "M-Act (mean over layers)", "ppl": "float ppl",
           "w8a8_ppl": "W8A8 ppl", "gate_score": "gate score"}
UNGATED, GATED = VARIANTS["ungated"], VARIANTS["gated"]
FROM_SCRATCH = " (trained from scratch, 15A2B MoE)"


def claims(seq_len: int) -> list[Claim]:
    """The gated-attention claims as a retrofit tests them: gated fine-tune (treatment) against ungated fine-tune
    (control), preconditions measured on the source."""
    sink, massive = sink_precondition(seq_len, BEFORE), massive_precondition(BEFORE)
    return [
        Claim("the G1 gate lowers the attention sink (F-Attn)", "f_attn", UNGATED, GATED, "lower",
              "0.467 → 0.048" + FROM_SCRATCH, sink),
        Claim("the G1 gate lowers the largest layer's F-Attn", "f_attn_max", UNGATED, GATED, "lower",
              "0.83 (layer 21) → –" + FROM_SCRATCH, sink),
        Claim("the G1 gate lowers massive activations (M-Act)", "m_act", UNGATED, GATED, "lower",
              "1053 → 94" + FROM_SCRATCH, massive),
        Claim("the G1 gate lowers the W8A8 perplexity increase", "w8a8_rel_gap", UNGATED, GATED, "lower",
              "OPT-125m 15.84 → 21.18 vanilla, 15.55 → 16.02 gated (Bondarenko et al. 2023's per-head gate)",
              massive),
        Claim("the G1 gate lowers perplexity", "ppl", UNGATED, GATED, "lower", "6.026 → 5.761" + FROM_SCRATCH),
    ]


def per_layer_lines(records: list[dict[str, Any]]) -> list[str]:
    """F-Attn and M-Act (max |h|) per layer for every measured model (the first seed of each fine-tune)."""
    shown = {}
    for r in records:
        if "f_attn_per_layer" in r and r["variant"] not in shown:
            shown[r["variant"]] = r
    if not shown:
        return []
    layers = sorted({int(i) for r in shown.values() for i in r["m_act_per_layer"]})
    header = ["layer", *[f"F-Attn {v}" for v in shown], *[f"M-Act {v}" for v in shown]]
    lines = ["## Per layer", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i in layers:
        sinks = [r["f_attn_per_layer"].get(i, r["f_attn_per_layer"].get(str(i))) for r in shown.values()]
        acts = [r["m_act_per_layer"].get(i, r["m_act_per_layer"].get(str(i))) for r in shown.values()]
        cells = [str(i), *["–" if v is None else f"{v:.3f}" for v in sinks], *[f"{v:.4g}" for v in acts]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_retrofit_report(out: Path, result: dict[str, Any], command: str) -> Path:
    """``report.md`` (with ``records.json``) and ``results.json`` (everything ``retrofit_experiment`` returned, with
    the verdicts) in ``out``."""
    cfg, identity = result["config"], result["identity"]
    records = [r for r in result["records"] if not r.get("diverged")]
    diverged = [f"{r['variant']} (seed {r['seed']})" for r in result["records"] if r.get("diverged")]
    judged = verdicts(records, claims(cfg["seq_len"]))
    same = "bit-identical" if identity["bit_identical"] else f"max |Δ| {identity['max_abs_logit_diff']:.3g}"
    cost = ", ".join(f"{name} {c['seconds_per_step']:.3g} s" for name, c in result["runs"].items())
    notes = [
        f"Step 0: the retrofitted model's logits against the source's on {identity['windows']} test windows "
        f"({identity['dtype']}): {same}. The gate's weights start at zero (every score sigmoid(0) = 0.5) and o_proj "
        "is doubled; the paper trains its gates from scratch with the ordinary initialisation (scores near 0.5). "
        "A gate at 0.5 with a doubled o_proj is the identity, so the claims compare the gated fine-tune with the "
        "same fine-tune of the ungated model (same data, steps, lr and seeds), not with the untouched source.",
        f"Parameters: source {result['params']['source']:,}, gated {result['params']['gated']:,}. "
        f"Training seconds per step: {cost}.",
        *([f"Diverged (not measured): {', '.join(diverged)}."] if diverged else []),
        "\n".join(per_layer_lines(records)),
    ]
    settings = [f"- source: {result['source']}; {cfg['granularity']} G1 gate in every attn layer",
                f"- fine-tune: {cfg['steps']} steps of batch {cfg['batch_size']} x {cfg['seq_len']} tokens of "
                f"{cfg['data']} (the source's tokenizer{', BOS first' if cfg['bos'] else ''}), AdamW lr {cfg['lr']:g} "
                f"with warmup and cosine decay, weight decay 0.1; {cfg['seeds']} seed(s) per arm",
                f"- measured on the first {cfg['eval_tokens']} test tokens; W8A8: full scope, activation ranges at "
                f"the 0.001/99.999 percentiles of {W8A8.calibration_batches * W8A8.batch_size} training windows, "
                "weight ranges of least squared error"]
    path = write_report(out, f"G1 gate retrofit: {result['source']}", command, records, COLUMNS,
                        claims(cfg["seq_len"]), notes, settings)
    write_json_atomic(out / "results.json", {
        **result, "command": command,
        "claims": [{"claim": c.text, "metric": c.metric, "verdict": v.verdict, "control": v.control,
                    "treatment": v.treatment, "precondition": v.precondition} for c, v in judged]})
    return path


__all__ = ["claims", "write_retrofit_report"]
