"""Reports from sweep results: tables (CSV, markdown) and plots."""
from .plots import plot_accuracy_vs_length, plot_accuracy_vs_state
from .tables import best_over_lrs, markdown_table, summarize, write_csv

__all__ = ["best_over_lrs", "markdown_table", "plot_accuracy_vs_length", "plot_accuracy_vs_state", "summarize",
           "write_csv"]
