"""Plots of comparison results (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

MARKERS = "osD^vP*X<>hp"


PALETTE = [colormaps["tab10"](i) for i in range(10)] + [colormaps["Dark2"](i) for i in range(8)]


def _style(i: int) -> dict[str, Any]:
    """Distinct colour and marker for the i-th series (18 colours, 12 markers)."""
    return {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)]}


def _panel_plot(rows: list[dict[str, Any]], path: Path, metric: str, panel_key: str, panel_title: str,
                x_key: str, x_label: str, log2_ticks: bool) -> Figure:
    """One panel per value of ``panel_key``; in each, the metric against ``x_key``, a line per mixer with
    error bars (std over seeds), a legend beside the last panel."""
    panels = sorted({r[panel_key] for r in rows})
    fig = Figure(figsize=(4.4 * len(panels) + 1.6, 3.8))
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)
    for ax, value in zip(axes[0], panels, strict=True):
        for i, mixer in enumerate(dict.fromkeys(r["mixer"] for r in rows)):
            pts = sorted((r[x_key], r[metric + "_mean"], r[metric + "_std"]) for r in rows
                         if r["mixer"] == mixer and r[panel_key] == value)
            if pts:
                xs, ys, es = zip(*pts, strict=True)
                ax.errorbar(xs, ys, yerr=es, capsize=3, label=mixer, **_style(i))
        if log2_ticks:
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted({r[x_key] for r in rows}))
            ax.get_xaxis().set_major_formatter(ScalarFormatter())
        else:
            ax.set_xscale("log")
        ax.set_xlabel(x_label)
        ax.set_title(panel_title.format(value))
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"MQAR {metric}")
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return fig


def plot_accuracy_vs_length(rows: list[dict[str, Any]], path: Path, metric: str = "accuracy") -> None:
    """One panel per d_model: metric against sequence length, a line per mixer, error bars = std over seeds."""
    _panel_plot(rows, path, metric, "d_model", "d_model = {}", "seq_len", "sequence length", log2_ticks=True)


def plot_accuracy_vs_state(rows: list[dict[str, Any]], path: Path, metric: str = "accuracy") -> None:
    """Zoology's recall-vs-memory picture: metric against the floats of state per sequence, one panel per
    sequence length, a line per mixer through its widths."""
    _panel_plot(rows, path, metric, "seq_len", "sequence length {}", "state_size",
                "state size (floats per sequence)", log2_ticks=False)
