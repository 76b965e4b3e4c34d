"""lm-evaluation-harness (package ``lm-eval``) on gatelab runs, saved gatelab models and Hugging Face causal LMs,
offline: the model type ``gatelab`` (registered with lm-eval on import), local tasks built from the packaged
corpora, and ``evaluate`` (``gatelab eval``)."""
from .load import EvalModel, load_eval_model
from .model import GatelabLM
from .run import evaluate, metric_rows, write_results
from .tasks import TASKS, build_tasks, count_words

__all__ = ["TASKS", "EvalModel", "GatelabLM", "build_tasks", "count_words", "evaluate", "load_eval_model",
           "metric_rows", "write_results"]
