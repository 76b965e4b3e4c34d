"""The analysis report: ``analysis.md`` with every number, and plots (per-layer sink and activations, gate
histograms, outliers per module, extrapolation curves)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from ..report.plots import PALETTE, log2_axis_at, value_axis


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "–" if v is None else format(v, spec)


def summary_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    q = result["quantization"]
    kinds = result["gate_score"]["per_kind"]
    ev = result["eval"]
    length = ev.get("length_name", "training length")
    return [
        (f"test perplexity ({ev['tokens']:,} tokens in {ev['windows']} windows of {ev['seq_len']})",
         _fmt(result["ppl"], ".2f")),
        ("F-Attn: attention on the first token, mean over layers", _fmt(result["f_attn"]["mean"])),
        ("M-Act: max abs(h) of block outputs, mean over layers", _fmt(result["m_act"]["mean"], ".1f")),
        ("max / median abs(h), mean over layers", _fmt(result["m_act"]["mean_max_over_median"], ".1f")),
        *[(f"gate score: {kind} (mean over layers)", _fmt(v)) for kind, v in kinds.items()],
        ("max infinity norm over modules", _fmt(result["outliers"]["max_inf_norm"], ".1f")),
        ("average kurtosis over modules", _fmt(result["outliers"]["avg_kurtosis"], ".1f")),
        ("max kurtosis over modules", _fmt(result["outliers"]["max_kurtosis"], ".1f")),
        ("max over modules of infinity norm / median abs(x)", _fmt(result["outliers"]["max_inf_over_median"], ".1f")),
        *[(f"perplexity {k}" + ("" if k == "float" else f" ({ev['quant_scope']} scope)"), _fmt(v, ".2f"))
          for k, v in q.items()],
        (f"state: floats per sequence at the {length}", f"{result['state']['state_floats']:,}"),
        (f"state: bytes after a context of the {length}", f"{result['state']['state_bytes']:,}"),
    ]


def write_report(result: dict[str, Any], gate_values: dict[str, torch.Tensor], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"layers": out_dir / "layers.png", "gates": out_dir / "gates.png", "outliers": out_dir / "outliers.png",
             "extrapolation": out_dir / "extrapolation.png", "report": out_dir / "analysis.md"}
    plot_layers(result, paths["layers"])
    plot_gates(gate_values, paths["gates"])
    plot_outliers(result, paths["outliers"])
    plot_extrapolation(result, paths["extrapolation"])
    ext = result["extrapolation"]
    lengths = sorted({int(n) for m in ext.values() for n in m})
    ev = result["eval"]
    lines = [
        *heading(result),
        "| measurement | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in summary_rows(result)],
        "",
        *[f"- {note}" for note in result.get("notes", [])],
        *([""] if result.get("notes") else []),
        "## Per layer",
        "",
        "| layer | F-Attn | M-Act max abs(h) | max / median |",
        "|---|---|---|---|",
        *[f"| {layer} | {_fmt(result['f_attn']['per_layer'].get(layer))} | {v['max']:.2f} | "
          f"{v['max_over_median']:.1f} |" for layer, v in result["m_act"]["per_layer"].items()],
        "",
        "![per layer](layers.png)",
        "",
        "## Gates",
        "",
        "| probe | mean score |",
        "|---|---|",
        *[f"| {name} | {v:.3f} |" for name, v in result["gate_score"]["per_probe"].items()],
        "",
        "![gate histograms](gates.png)" if gate_values else "This model has no gates.",
        "",
        "## Outliers",
        "",
        "| module | infinity norm (mean over samples) | kurtosis (mean over samples) |",
        "|---|---|---|",
        *[f"| {n} | {v['inf_norm']:.2f} | {v['kurtosis']:.1f} |" for n, v in result["outliers"]["per_module"].items()],
        "",
        "![outliers](outliers.png)",
        "",
        "## Length extrapolation (perplexity)",
        "",
        extrapolation_note(ev),
        "",
        "| method | " + " | ".join(str(n) for n in lengths) + " |",
        "|---|" + "---|" * len(lengths),
        *[f"| {m} | " + " | ".join(_fmt(v.get(n, v.get(str(n))), ".2f") for n in lengths) + " |"
          for m, v in ext.items()],
        "",
        "![extrapolation](extrapolation.png)",
        "",
    ]
    paths["report"].write_text("\n".join(lines))
    return paths


def heading(result: dict[str, Any]) -> list[str]:
    """The report's title and what was measured: a run folder, or a Hugging Face model (``source``) on a corpus."""
    if "run" in result:
        return [f"# gatelab analyze: {result['mixer']}", "", f"Run: `{result['run']}`", ""]
    return [f"# gatelab analyze: {result['model']}", "",
            f"Model: `{result['source']}` ({result['architecture']}); text: {result['eval']['data']}", ""]


def extrapolation_note(ev: dict[str, Any]) -> str:
    """One sentence on which tokens the curves read, and why the point at the training (or evaluation) length is
    (or is not) the test perplexity of the summary."""
    length = ev.get("length_name", "training length")
    if ev["extrapolation_tokens"] == ev["eval_tokens"]:
        return (f"Every length reads the same test tokens as the test perplexity above, cut into windows of that "
                f"length, so the point at the {length} ({ev['seq_len']}) is that perplexity.")
    budget = ev["extrapolation_tokens"] or "all"
    return (f"Every length reads the leading {budget} test tokens, cut into windows of that length; the test "
            f"perplexity above reads {ev['tokens']:,} tokens, so the two differ at the {length} "
            f"({ev['seq_len']}) by the text they read.")


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_layers(result: dict[str, Any], path: Path) -> None:
    fig = Figure(figsize=(9, 3.4))
    ax1, ax2 = fig.subplots(1, 2)
    f = result["f_attn"]["per_layer"]
    ax1.bar([str(k) for k in f], list(f.values()), color=PALETTE[0])
    ax1.set(title="F-Attn: attention on the first token", xlabel="layer", ylim=(0, 1))
    m = result["m_act"]["per_layer"]
    ax2.bar([str(k) for k in m], [v["max"] for v in m.values()], color=PALETTE[1])
    ax2.set(title="M-Act: max |h| of the block output", xlabel="layer")
    _save(fig, path)


def plot_gates(values: dict[str, torch.Tensor], path: Path) -> None:
    kinds = sorted({n.split(".mixer.", 1)[1] for n in values}) or ["(no gates)"]
    fig = Figure(figsize=(4 * len(kinds), 3.2))
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    for ax, kind in zip(axes, kinds, strict=True):
        for i, (name, v) in enumerate(n for n in values.items() if n[0].endswith(kind)):
            ax.hist(v.numpy(), bins=50, histtype="step", color=PALETTE[i % len(PALETTE)], label=name.split(".")[1])
        ax.set(title=kind, xlabel="score")
        if values:
            ax.legend(title="layer", fontsize=7)
    _save(fig, path)


def plot_outliers(result: dict[str, Any], path: Path) -> None:
    per = result["outliers"]["per_module"]
    fig = Figure(figsize=(max(6, 0.5 * len(per)), 4.2))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    ax1.bar(list(per), [v["inf_norm"] for v in per.values()], color=PALETTE[2])
    ax1.set(ylabel="infinity norm")
    ax2.bar(list(per), [v["kurtosis"] for v in per.values()], color=PALETTE[3])
    ax2.set(ylabel="kurtosis", yscale="log")
    ax2.tick_params(axis="x", rotation=90, labelsize=6)
    _save(fig, path)


def plot_extrapolation(result: dict[str, Any], path: Path) -> Figure:
    """Perplexity against evaluation length, a line per method: lengths on a base-2 axis labelled at each length;
    perplexity on a log axis only where it spans more than a decade."""
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    lengths, values = [], []
    for i, (method, pts) in enumerate(result["extrapolation"].items()):
        xs = sorted(int(k) for k in pts)
        ys = [pts.get(x, pts.get(str(x))) for x in xs]
        ax.plot(xs, ys, marker="o", color=PALETTE[i], label=method)
        lengths += xs
        values += ys
    log2_axis_at(ax, lengths)
    value_axis(ax, values)
    ax.set(xlabel="evaluation length (tokens)", ylabel="perplexity")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)
    return fig
