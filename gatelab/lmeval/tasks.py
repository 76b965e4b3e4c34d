"""Local lm-eval tasks built from gatelab's packaged corpora (``gatelab.tasks.text.corpora``): nothing is
downloaded and no Hugging Face hub dataset is read (each task's documents are an in-memory ``datasets.Dataset``,
lm-eval's ``custom_dataset``).

Perplexity tasks (``loglikelihood_rolling`` over the corpus's test split, the split gatelab's LM task reports):
- ``ptb_wordperplexity``, ``shakespeare_wordperplexity``, ``kjv_wordperplexity``: one document, the whole test
  split as the LM task reads it (one continuous text, so lm-eval's rolling windows run over the same token stream
  as gatelab's test evaluation).
- ``imdb_wordperplexity``: one document per test review (reviews are independent texts; ``--limit N`` takes the
  first N).
Metrics: ``word_perplexity`` = exp(-log-likelihood / words), where words are the whitespace-separated words plus one
per non-empty line (the end of the line): PTB's word-level protocol (Mikolov et al. 2010), and exactly the token
count of gatelab's word tokenizer, so a word-level gatelab model's word perplexity is its token perplexity.
(lm-eval's wikitext counts whitespace words only.) ``byte_perplexity`` and ``bits_per_byte`` per UTF-8 byte of the
document, as lm-eval defines them. A closed-vocabulary model (a word-level gatelab model) scores its ``<unk>`` for
every word outside its vocabulary, an easy prediction: its numbers on another corpus than its own are not comparable
with an open-vocabulary model's.

Cloze task ``ptb_lastword`` (LAMBADA-style, Paperno et al. 2016, arXiv:1606.06031, on PTB): every sentence of the
PTB test split with at least 10 words, at least 3 sentences before it, and a last word that is neither ``<unk>``
nor ``N`` (2,800 items, in file order). Context: the 3 preceding lines as in the file (each with its newline),
then the sentence's line up to its last word, trailing spaces removed; target: a space and the last word.
Metrics: ``acc`` (greedy decoding gives every token of the target) and ``perplexity`` (exp of minus the mean
log-likelihood of a target).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import ConfigError
from ..tasks.text.corpora import imdb_reviews, load_corpus

CLOZE_MIN_WORDS, CLOZE_CONTEXT_LINES, CLOZE_EXCLUDED = 10, 3, ("<unk>", "N")
ROLLING_METRICS = [{"metric": "word_perplexity", "aggregation": "weighted_perplexity", "higher_is_better": False},
                   {"metric": "byte_perplexity", "aggregation": "weighted_perplexity", "higher_is_better": False},
                   {"metric": "bits_per_byte", "aggregation": "bits_per_byte", "higher_is_better": False}]
CLOZE_METRICS = [{"metric": "perplexity", "aggregation": "perplexity", "higher_is_better": False},
                 {"metric": "acc", "aggregation": "mean", "higher_is_better": True}]


def count_words(text: str) -> int:
    """Whitespace words plus one end of line per non-empty line (the tokens of gatelab's word tokenizer)."""
    return sum(len(line.split()) + 1 for line in text.splitlines() if line.strip())


def rolling_doc(text: str) -> dict[str, Any]:
    return {"text": text, "words": count_words(text), "bytes": len(text.encode("utf-8"))}


def rolling_results(doc: dict[str, Any], results: tuple[float]) -> dict[str, tuple[float, int]]:
    (loglikelihood,) = results
    return {"word_perplexity": (loglikelihood, doc["words"]), "byte_perplexity": (loglikelihood, doc["bytes"]),
            "bits_per_byte": (loglikelihood, doc["bytes"])}


def test_split(corpus: str) -> Callable[[], list[dict[str, Any]]]:
    return lambda: [rolling_doc(load_corpus(corpus)["test"])]


def imdb_test_reviews() -> list[dict[str, Any]]:
    """The test reviews of ``load_imdb`` (review i with i % 20 == 19), each a document ending in a newline."""
    return [rolling_doc(review + "\n") for i, review in enumerate(imdb_reviews()) if i % 20 == 19]


def ptb_lastword_items() -> list[dict[str, str]]:
    lines = load_corpus("ptb")["test"].splitlines(keepends=True)
    items = []
    for i in range(CLOZE_CONTEXT_LINES, len(lines)):
        words = lines[i].split()
        if len(words) >= CLOZE_MIN_WORDS and words[-1] not in CLOZE_EXCLUDED:
            head = lines[i][:lines[i].rstrip().rindex(words[-1])].rstrip()
            items.append({"context": "".join(lines[i - CLOZE_CONTEXT_LINES:i]) + head, "target": " " + words[-1]})
    return items


@dataclass(frozen=True)
class LocalTask:
    """A task of ``TASKS``: ``docs()`` builds its documents, ``kind`` is ``perplexity`` or ``cloze``."""

    name: str
    kind: str
    docs: Callable[[], list[dict[str, Any]]]
    description: str

    def config(self) -> dict[str, Any]:
        """The lm-eval task config (a ``ConfigurableTask``'s)."""
        from datasets import Dataset

        def dataset(**_: Any) -> dict[str, Dataset]:
            return {"test": Dataset.from_list(self.docs())}

        common = {"task": self.name, "custom_dataset": dataset, "test_split": "test", "num_fewshot": 0,
                  "metadata": {"version": 1.0}}
        if self.kind == "perplexity":
            return {**common, "output_type": "loglikelihood_rolling", "doc_to_text": "", "doc_to_target": "text",
                    "process_results": rolling_results, "metric_list": ROLLING_METRICS}
        return {**common, "output_type": "loglikelihood", "doc_to_text": "context", "doc_to_target": "target",
                "metric_list": CLOZE_METRICS}


TASKS = {t.name: t for t in (
    LocalTask("ptb_wordperplexity", "perplexity", test_split("ptb"),
              "PTB test split (Mikolov's version), one document: word perplexity counting <eos>"),
    LocalTask("shakespeare_wordperplexity", "perplexity", test_split("shakespeare"),
              "Shakespeare's complete works, test split (last 5%), one document"),
    LocalTask("kjv_wordperplexity", "perplexity", test_split("kjv"),
              "King James Bible, test split (end of the New Testament), one document"),
    LocalTask("imdb_wordperplexity", "perplexity", imdb_test_reviews,
              "IMDB reviews, test split, one document per review (1,250)"),
    LocalTask("ptb_lastword", "cloze", ptb_lastword_items,
              "the last word of a PTB test sentence after 3 sentences of context (2,800 items): acc, perplexity"),
)}


def task_names(text: str) -> list[str]:
    """The task names of a comma-separated ``--tasks``; an unknown one is a ConfigError listing the available."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in TASKS]
    if unknown or not names:
        raise ConfigError(f"--tasks: unknown task {', '.join(unknown) or '(none given)'}; available: "
                          f"{', '.join(TASKS)}")
    return names


def build_tasks(names: list[str]) -> list[Any]:
    """lm-eval ``Task`` objects for ``names`` (keys of ``TASKS``)."""
    from lm_eval.api.task import ConfigurableTask

    return [ConfigurableTask(config=TASKS[n].config()) for n in task_names(",".join(names))]
