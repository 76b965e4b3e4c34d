"""The report of a reproduction: per-variant means over seeds, then each claim with the paper's numbers, our
numbers, its precondition and its verdict."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..train.run import environment, write_json_atomic
from .experiment import LLAMA_LIKE, Architecture, Scale
from .verdict import UNTESTABLE, Claim, Verdict, judge_claim, mean_std


def by_variant(records: list[dict[str, Any]], metric: str) -> dict[str, list[float]]:
    groups: dict[str, list[float]] = {}
    for r in records:
        if r.get(metric) is not None:
            groups.setdefault(r["variant"], []).append(r[metric])
    return groups


def verdicts(records: list[dict[str, Any]], claims: list[Claim]) -> list[tuple[Claim, Verdict]]:
    """Each claim with its verdict (``judge_claim``: the precondition first, then the comparison)."""
    metrics = {c.metric for c in claims} | {pre.metric for c in claims for pre in c.preconditions}
    groups = {m: by_variant(records, m) for m in metrics}
    return [(c, judge_claim(c, groups)) for c in claims]


def verdict_cell(v: Verdict) -> str:
    """The verdict in bold; an untestable one says what its precondition measured."""
    return f"**{v.verdict}** ({v.precondition})" if v.verdict == UNTESTABLE else f"**{v.verdict}**"


def claim_lines(records: list[dict[str, Any]], claims: list[Claim]) -> list[str]:
    """The claims table and, under it, each precondition with where its floor comes from."""
    lines = ["Verdict: reproduced if the effect in the paper's direction exceeds 2 standard errors of the "
             "difference of means (Welch), not reproduced if the opposite does, inconclusive otherwise; untestable "
             "here if the claim's precondition (below) fails in these runs, whatever the comparison shows. 'effect / "
             "seed std' is the difference over the pooled standard deviation across seeds.", "",
             "| claim | paper | ours (control → treatment, mean ± std) | effect / SE | effect / seed std | verdict |",
             "|---|---|---|---|---|---|"]
    for c, v in verdicts(records, claims):
        ours = f"{v.control[0]:.4g} ± {v.control[1]:.2g} → {v.treatment[0]:.4g} ± {v.treatment[1]:.2g}"
        lines.append(f"| {c.text} | {c.paper} | {ours} | {v.z:.1f} | {v.effect_over_noise:.1f} | {verdict_cell(v)} |")
    pres = list(dict.fromkeys(pre for c in claims for pre in c.preconditions))
    if pres:
        lines += ["", "Preconditions (each must hold on the mean over seeds before its claims get a verdict):", "",
                  *[f"- {p.describe()}" for p in pres]]
    return lines


def mean_cell(values: list[float] | None) -> str:
    """``mean ± std`` over seeds, or a dash where nothing was measured."""
    return "–" if not values else "{:.4g} ± {:.2g}".format(*mean_std(values))


def variant_table(records: list[dict[str, Any]], columns: dict[str, str]) -> list[str]:
    """One row per variant: its number of seeds and the mean ± std of each column's metric."""
    header = ["variant", "seeds", *columns.values()]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for v in dict.fromkeys(r["variant"] for r in records):
        cells = [v, str(sum(r["variant"] == v for r in records))]
        cells += [mean_cell(by_variant(records, metric).get(v)) for metric in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_report(out: Path, title: str, command: str, records: list[dict[str, Any]], columns: dict[str, str],
                 claims: list[Claim], notes: list[str], settings: list[str], table: list[str] | None = None) -> Path:
    """``report.md`` (+ ``records.json``): per-variant means ± std (``variant_table``, or the lines of ``table``),
    then each claim with the paper's numbers, our numbers, the effect in standard errors and over the seed std, and
    the verdict."""
    lines = [f"# {title}", "", f"Command: `{command}`", "",
             *(table if table is not None else variant_table(records, columns))]
    lines += ["", "## Claims", "", *claim_lines(records, claims), ""]
    for note in notes:
        lines += [note, ""]
    lines += ["## Settings", "", *settings, "", "## Environment", "",
              *[f"- {k}: {val}" for k, val in environment("cpu").items()], ""]
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "records.json", records)
    (out / "report.md").write_text("\n".join(lines))
    return out / "report.md"


def mode_note(mode: str) -> list[str]:
    """Smoke runs check the pipeline only; say so where the verdicts are."""
    return ["**Smoke mode: a few steps of a tiny model to check the pipeline. These verdicts say nothing about the "
            "papers.**"] if mode == "smoke" else []


def settings_lines(scale: Scale, seeds: int, data: str, lrs: list[float] | None = None,
                   arch: Architecture = LLAMA_LIKE) -> list[str]:
    return [f"- data {data} (word level, a BOS token at position 0 of every window); {seeds} seeds per variant",
            f"- {scale.n_layers} layers, d_model {scale.d_model}, {scale.n_heads} heads, sequence length "
            f"{scale.seq_len}; {arch.description}; the channel mixer's width is matched so every variant has the "
            "first variant's parameter count",
            f"- {scale.steps} steps of batch {scale.batch_size}, AdamW lr "
            f"{', '.join(f'{lr:g}' for lr in lrs or [scale.lr])} with warmup and cosine decay; "
            f"measured on the first {scale.eval_tokens} test tokens"]
