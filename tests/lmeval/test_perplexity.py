"""lm-eval's word perplexity on the local PTB task equals gatelab's own perplexity of the same model on the same
tokens.

The protocol, exactly: lm-eval's ``loglikelihood_rolling`` scores every token of the document (the PTB test split),
the first one conditioned on the prefix token (``<eos>`` for the word tokenizer), in disjoint windows of
``max_length`` predictions each reading the ``max_length`` tokens before them. That is gatelab's ``windows`` of the
test stream with ``<eos>`` put in front, scored by ``gatelab.train.tasks.perplexity`` (the LM task's evaluation);
the run's own test windows start one token later (they never predict the first token). With a window length that
divides the stream, no window is partial, so both sides compute the same sum over the same windows; and lm-eval's
word count (words plus one ``<eos>`` per line) is the stream's length, so word perplexity is token perplexity.
"""
import json

import pytest
import torch

from gatelab.config import ConfigError
from gatelab.hf import load_run
from gatelab.lmeval import count_words, evaluate, load_eval_model, metric_rows
from gatelab.tasks.text import bos_id, load_corpus
from gatelab.tasks.text.windows import windows
from gatelab.train.tasks import perplexity

from .conftest import SEQ_LEN


def test_lm_eval_ptb_word_perplexity_equals_gatelab_perplexity(word_run):
    loaded = load_eval_model(word_run)
    assert loaded.max_length == SEQ_LEN                      # a run reads windows of its training length
    results = evaluate(loaded, ["ptb_wordperplexity"], batch_size=1024)
    lm_eval_ppl = results["results"]["ptb_wordperplexity"]["word_perplexity,none"]

    model, tokenizer = load_run(word_run)
    text = load_corpus("ptb")["test"]
    stream = tokenizer.encode(text)
    assert len(stream) == count_words(text) and len(stream) % SEQ_LEN == 0
    x, y = windows(torch.tensor([bos_id(tokenizer), *stream]), SEQ_LEN)
    assert y.numel() == len(stream)                          # every token predicted once
    gatelab_ppl = perplexity(model, x, y, batch_size=1024)
    assert lm_eval_ppl == pytest.approx(gatelab_ppl, rel=1e-5)
    assert 50 < gatelab_ppl < 250                            # a few steps: below the uniform guess over 200 words


def test_results_name_the_model_and_its_window(word_run, tmp_path):
    """Through lm-eval's own entry point with the registered model type, as any lm-eval user would call it."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from gatelab.lmeval import build_tasks, write_results

    results = simple_evaluate(model="gatelab", model_args={"pretrained": str(word_run)}, batch_size=4, limit=4,
                              tasks=build_tasks(["ptb_lastword"]), task_manager=TaskManager(include_defaults=False))
    json_file, md_file = write_results(results, tmp_path / "out")
    saved = json.loads(json_file.read_text())
    assert saved["config"]["max_length"] == SEQ_LEN and saved["config"]["limit"] == 4
    assert {m for _, m, _ in metric_rows(saved)} == {"acc", "perplexity"}
    assert "ptb_lastword" in md_file.read_text() and not list((tmp_path / "out").glob(".*"))


def test_a_window_longer_than_the_model_accepts_is_refused(word_run):
    with pytest.raises(ConfigError, match="--max-length 5000: run reads windows of 1 to 4096 tokens"):
        load_eval_model(word_run, max_length=5000)
    assert load_eval_model(word_run / "model").max_length == 4096     # a bare model folder: its max_seq_len
