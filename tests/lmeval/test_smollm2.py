"""SmolLM2-135M-Instruct on the local tasks (slow: it loads the real model; run with -m slow after
``gatelab install-data smollm2``)."""
import pytest

from gatelab.lmeval import evaluate, load_eval_model


@pytest.mark.slow
def test_smollm2_predicts_ptb_last_words_and_imdb_text():
    pytest.importorskip("gguf")
    try:
        loaded = load_eval_model("smollm2")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    cloze = evaluate(loaded, ["ptb_lastword"], limit=100, batch_size=4)["results"]["ptb_lastword"]
    imdb = evaluate(loaded, ["imdb_wordperplexity"], limit=10, batch_size=1)["results"]["imdb_wordperplexity"]
    assert cloze["acc,none"] >= 0.15            # measured 0.23; a random guess over 49,152 tokens: ~0
    assert imdb["word_perplexity,none"] < 200    # measured 126.7
