"""``gatelab analyze --trajectory RUN_DIR``: the per-model measurements at every kept checkpoint of a run, to see
when attention sinks, massive activations and outliers appear during training."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from safetensors.torch import load_model

from ..models.lm import DecoderLM
from ..report.plots import PALETTE
from ..tasks.text.windows import windows
from ..train.run import write_json_atomic
from .analyze import AnalysisConfig, as_tensor, load_trained
from .measure import measure

SERIES = {
    "ppl": ("test perplexity", lambda r: r["ppl"]),
    "f_attn": ("F-Attn (mean over layers)", lambda r: r["f_attn"]["mean"]),
    "m_act": ("M-Act (mean max abs(h))", lambda r: r["m_act"]["mean"]),
    "max_inf_norm": ("max infinity norm", lambda r: r["outliers"]["max_inf_norm"]),
    "avg_kurtosis": ("average kurtosis", lambda r: r["outliers"]["avg_kurtosis"]),
}


def trajectory(run_dir: str | Path, out_dir: str | Path | None = None,
               cfg: AnalysisConfig | None = None) -> list[dict[str, Any]]:
    """Measure every ``checkpoints/step-*.safetensors`` of the run (and the final model); write
    ``trajectory.json``, ``trajectory.md`` and ``trajectory.png``."""
    run_dir = Path(run_dir)
    trained = load_trained(run_dir)
    cfg = (cfg or AnalysisConfig()).for_run(trained.config)
    files = sorted((run_dir / "checkpoints").glob("step-*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no kept checkpoints in {run_dir / 'checkpoints'}: train with "
                                "--set checkpoint_every=N --set keep_checkpoints=true")
    x, y = windows(as_tensor(trained.streams["test"]), trained.config.lm.seq_len, cfg.eval_tokens, trained.bos)
    points = []
    for path in files:
        model = DecoderLM(trained.model.config)
        load_model(model, str(path))
        r = measure(model, x, y, cfg.batch_size, keep_gate_values=False)
        points.append({"step": int(path.stem.split("-")[1]), **{k: f(r) for k, (_, f) in SERIES.items()},
                       "gate_score": r["gate_score"]["per_kind"]})
    out_dir = Path(out_dir) if out_dir else run_dir / "analysis"
    write_json_atomic(out_dir / "trajectory.json", points)
    plot_trajectory(points, out_dir / "trajectory.png")
    header = ["step", *(label for label, _ in SERIES.values())]
    lines = [f"# Trajectory of {run_dir}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for p in points:
        lines.append("| " + " | ".join([str(p["step"])] + ["–" if p[k] is None else f"{p[k]:.3f}" for k in SERIES])
                     + " |")
    lines += ["", "![trajectory](trajectory.png)", ""]
    (out_dir / "trajectory.md").write_text("\n".join(lines))
    return points


def plot_trajectory(points: list[dict[str, Any]], path: Path) -> None:
    keys = [k for k in SERIES if any(p[k] is not None for p in points)]
    fig = Figure(figsize=(3.2 * len(keys), 3.0))
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    steps = [p["step"] for p in points]
    for i, (ax, key) in enumerate(zip(axes, keys, strict=True)):
        ax.plot(steps, [p[key] for p in points], marker="o", color=PALETTE[i])
        ax.set(title=SERIES[key][0], xlabel="step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
