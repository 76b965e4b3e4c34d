"""Plots of comparison results (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, ScalarFormatter

from .tables import variant_label

MARKERS = "osD^vP*X<>hp"


PALETTE = [colormaps["tab10"](i) for i in range(10)] + [colormaps["Dark2"](i) for i in range(8)]


def _style(i: int) -> dict[str, Any]:
    """Distinct colour and marker for the i-th series (18 colours, 12 markers)."""
    return {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)]}


def log2_axis_at(ax: Axes, values: list[float], axis: str = "x") -> None:
    """A base-2 log axis labelled exactly at ``values`` in plain numbers (128, 256, ...), without minor ticks,
    whose labels would crowd the major ones."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log", base=2)
    target.set_major_locator(FixedLocator(sorted(set(values))))
    target.set_major_formatter(ScalarFormatter())
    target.set_minor_locator(NullLocator())


def value_axis(ax: Axes, values: list[float], axis: str = "y") -> None:
    """Log scale when ``values`` span more than a decade (max / min > 10) and are positive, linear otherwise: a
    log axis over a narrow range carries one labelled tick or none, and crowded minor labels."""
    finite = [v for v in values if v is not None and 0 < v < float("inf")]
    target = ax.xaxis if axis == "x" else ax.yaxis
    if finite and len(finite) == len(values) and max(finite) / min(finite) > 10:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        target.set_minor_formatter(NullFormatter())
    else:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("linear")


def _panel_plot(rows: list[dict[str, Any]], path: Path, metric: str, panel_key: str, panel_title: str,
                x_key: str, x_label: str, log2_ticks: bool, y_label: str = "MQAR {}") -> Figure:
    """One panel per value of ``panel_key``; in each, the metric against ``x_key``, a line per mixer through
    its mean over seeds, with bars spanning its lowest to highest seed, a legend beside the last panel."""
    panels = sorted({r[panel_key] for r in rows})
    fig = Figure(figsize=(4.4 * len(panels) + 1.6, 3.8))
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)
    for ax, value in zip(axes[0], panels, strict=True):
        for i, mixer in enumerate(dict.fromkeys(r["mixer"] for r in rows)):
            pts = sorted((r[x_key], r[metric + "_mean"], r[metric + "_min"], r[metric + "_max"]) for r in rows
                         if r["mixer"] == mixer and r[panel_key] == value)
            if pts:
                xs, ys, lows, highs = zip(*pts, strict=True)
                spans = ([y - lo for y, lo in zip(ys, lows, strict=True)],
                         [hi - y for y, hi in zip(ys, highs, strict=True)])
                ax.errorbar(xs, ys, yerr=spans, capsize=3, label=mixer, **_style(i))
        if log2_ticks:
            log2_axis_at(ax, [r[x_key] for r in rows])
        else:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(x_label)
        ax.set_title(panel_title.format(value))
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(y_label.format(metric))
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return fig


def plot_accuracy_vs_length(rows: list[dict[str, Any]], path: Path, metric: str = "accuracy",
                             y_label: str = "MQAR {}") -> None:
    """One panel per d_model: metric against sequence length, a line per mixer, bars = range over seeds."""
    _panel_plot(rows, path, metric, "d_model", "d_model = {}", "seq_len", "sequence length", log2_ticks=True,
                y_label=y_label)


def plot_extrapolation(rows: list[dict[str, Any]], path: Path) -> None:
    """Length generalisation: accuracy against the test length, one panel per training length, a line per mixer
    (rows: ``extrapolation_rows``)."""
    _panel_plot(rows, path, "accuracy", "seq_len", "trained at length {}", "test_len", "test length",
                log2_ticks=True, y_label="{}")


def plot_accuracy_vs_state(rows: list[dict[str, Any]], path: Path, metric: str = "accuracy") -> None:
    """Zoology's recall-vs-memory picture: metric against the floats of state per sequence, one panel per
    sequence length, a line per mixer through its widths."""
    _panel_plot(rows, path, metric, "seq_len", "sequence length {}", "state_size",
                "state size (floats per sequence)", log2_ticks=False)


def plot_bars(rows: list[dict[str, Any]], path: Path, metrics: tuple[tuple[str, str], ...], ylabel: str) -> None:
    """Two metrics per model (``metrics``: (key, legend name) pairs; bars, std over seeds as error bars), one
    group per cell: valid and test perplexity, test and valid accuracy, test MSE and MAE."""
    labels = [f"{variant_label(r)}\nd{r['d_model']} T{r['seq_len']}" for r in rows]
    fig = Figure(figsize=(1.2 * len(rows) + 2.5, 3.8))
    ax = fig.subplots()
    xs = range(len(rows))
    for i, (offset, (metric, name)) in enumerate(zip((-0.2, 0.2), metrics, strict=True)):
        ax.bar([x + offset for x in xs], [r[f"{metric}_mean"] for r in rows], width=0.4, label=name,
               yerr=[r[f"{metric}_std"] for r in rows], capsize=3, color=PALETTE[i])
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_learning_curves(curves: dict[str, list[tuple[int, float]]], path: Path, ylabel: str) -> None:
    """One line per label: the metric against training tokens (a log metric axis where it spans a decade)."""
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
    for i, (label, pts) in enumerate(curves.items()):
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, label=label, **_style(i), markersize=4)
    value_axis(ax, [y for pts in curves.values() for _, y in pts])
    ax.set_xlabel("training tokens")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_expert_load(loads: dict[str, list[list[float]]], path: Path) -> None:
    """Expert load histograms: for each model (a panel), the fraction of routed slots each expert received on the
    last evaluation (valid and test), a bar group per expert with one bar per layer (uniform routing: every bar at
    1 / experts)."""
    fig = Figure(figsize=(4.2 * len(loads) + 0.8, 3.4))
    axes = fig.subplots(1, len(loads), squeeze=False)
    for ax, (label, layers) in zip(axes[0], loads.items(), strict=True):
        width = 0.8 / len(layers)
        for i, load in enumerate(layers):
            ax.bar([e - 0.4 + (i + 0.5) * width for e in range(len(load))], load, width=width,
                   color=PALETTE[i % len(PALETTE)], label=f"layer {i}")
        ax.axhline(1 / len(layers[0]), color="black", lw=0.8, ls="--")
        ax.set_xticks(range(len(layers[0])))
        ax.set_xlabel("expert")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("fraction of routed slots")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
