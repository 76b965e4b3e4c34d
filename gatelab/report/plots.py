"""Plots of comparison results (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

MARKERS = "osD^vP*X<>hp"


def _style(i: int) -> dict[str, Any]:
    """Distinct colour and marker for the i-th series (20 colours, 12 markers)."""
    return {"color": colormaps["tab20"](i % 20), "marker": MARKERS[i % len(MARKERS)]}


def plot_accuracy_vs_length(rows: list[dict[str, Any]], path: Path, metric: str = "accuracy") -> None:
    """One panel per d_model: metric against sequence length, a line per mixer, error bars = std over seeds."""
    widths = sorted({r["d_model"] for r in rows})
    fig = Figure(figsize=(4.2 * len(widths), 3.6))
    axes = fig.subplots(1, len(widths), squeeze=False, sharey=True)
    for ax, d in zip(axes[0], widths, strict=True):
        for i, mixer in enumerate(dict.fromkeys(r["mixer"] for r in rows)):
            pts = sorted((r["seq_len"], r[metric + "_mean"], r[metric + "_std"]) for r in rows
                         if r["mixer"] == mixer and r["d_model"] == d)
            if pts:
                xs, ys, es = zip(*pts, strict=True)
                ax.errorbar(xs, ys, yerr=es, capsize=3, label=mixer, **_style(i))
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["seq_len"] for r in rows}))
        ax.get_xaxis().set_major_formatter(ScalarFormatter())
        ax.set_xlabel("sequence length")
        ax.set_title(f"d_model = {d}")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"MQAR {metric}")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_accuracy_vs_state(rows: list[dict[str, Any]], path: Path, metric: str = "accuracy") -> None:
    """Zoology's recall-vs-memory picture: metric against the floats of state per sequence, one panel per
    sequence length, a line per mixer through its widths."""
    lengths = sorted({r["seq_len"] for r in rows})
    fig = Figure(figsize=(4.6 * len(lengths) + 1.6, 3.8))
    axes = fig.subplots(1, len(lengths), squeeze=False, sharey=True)
    for ax, T in zip(axes[0], lengths, strict=True):
        for i, mixer in enumerate(dict.fromkeys(r["mixer"] for r in rows)):
            pts = sorted((r["state_size"], r[metric + "_mean"], r[metric + "_std"]) for r in rows
                         if r["mixer"] == mixer and r["seq_len"] == T)
            if pts:
                xs, ys, es = zip(*pts, strict=True)
                ax.errorbar(xs, ys, yerr=es, capsize=3, label=mixer, **_style(i))
        ax.set_xscale("log")
        ax.set_xlabel("state size (floats per sequence)")
        ax.set_title(f"sequence length {T}")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"MQAR {metric}")
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
