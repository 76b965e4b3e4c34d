"""The analysis report's plots are readable: length ticks at the evaluated lengths with no crowded labels, and a
log perplexity axis only where perplexity spans a decade; the extrapolation note says which tokens it read."""
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gatelab.analysis.report import extrapolation_note, plot_extrapolation
from gatelab.report.plots import plot_learning_curves


def tick_labels(axis) -> list[str]:
    """The visible tick labels (major and minor) of a drawn axis."""
    ticks = axis.get_major_ticks() + axis.get_minor_ticks()
    return [t.label1.get_text() for t in ticks if t.label1.get_visible() and t.label1.get_text()]


def assert_no_overlap(fig: Figure, axis) -> None:
    renderer = fig.canvas.get_renderer()
    ticks = [t.label1 for t in axis.get_major_ticks() + axis.get_minor_ticks()
             if t.label1.get_visible() and t.label1.get_text()]
    boxes = [t.get_window_extent(renderer) for t in ticks]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), [t.get_text() for t in ticks]


@pytest.mark.parametrize("ppls,scale", [((601.9, 640.2, 700.0, 720.5), "linear"), ((50.0, 90.0, 800.0, 4000.0), "log")])
def test_extrapolation_plot_labels_each_length_and_logs_perplexity_only_over_a_decade(ppls, scale, tmp_path):
    lengths = (128, 256, 512, 1024)
    result = {"extrapolation": {"as_trained": {str(n): p for n, p in zip(lengths, ppls, strict=True)},
                                "yarn": {str(n): p * 0.9 for n, p in zip(lengths, ppls, strict=True)}}}
    fig = plot_extrapolation(result, tmp_path / "extrapolation.png")
    assert (tmp_path / "extrapolation.png").stat().st_size > 0
    ax = fig.axes[0]
    FigureCanvasAgg(fig).draw()
    assert tick_labels(ax.xaxis) == ["128", "256", "512", "1024"]
    assert ax.get_yscale() == scale
    assert len(tick_labels(ax.yaxis)) >= 3   # a narrow log axis carried one label, or none
    assert_no_overlap(fig, ax.xaxis)
    assert_no_overlap(fig, ax.yaxis)


def test_learning_curves_over_a_narrow_range_use_a_linear_axis(tmp_path):
    plot_learning_curves({"attn": [(1000, 210.0), (2000, 150.0), (3000, 120.0)]}, tmp_path / "c.png", "valid ppl")
    assert (tmp_path / "c.png").stat().st_size > 0


def test_the_extrapolation_note_says_whether_it_read_the_test_perplexitys_tokens():
    same = {"seq_len": 128, "tokens": 82430, "eval_tokens": 0, "extrapolation_tokens": 0}
    assert "so the point at the training length (128) is that perplexity" in extrapolation_note(same)
    other = {"seq_len": 128, "tokens": 32768, "eval_tokens": 32768, "extrapolation_tokens": 16384}
    assert "leading 16384 test tokens" in extrapolation_note(other) and "32,768" in extrapolation_note(other)
