"""A Hugging Face causal LM through the ``gatelab`` model type gives what lm-eval's own ``HFLM`` gives: the same
rolling windows (a last, partial window included), the same context/continuation split, the same greedy flags."""
import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from gatelab.config import ConfigError
from gatelab.lmeval import GatelabLM, load_eval_model
from gatelab.lmeval.tasks import ptb_lastword_items
from gatelab.tasks.text import load_corpus

WINDOW = 16


def requests(kind, args):
    return [Instance(request_type=kind, doc={}, arguments=a, idx=0) for a in args]


@pytest.fixture(scope="module")
def pair(llama_folder):
    loaded = load_eval_model(llama_folder, max_length=WINDOW)
    reference = HFLM(pretrained=loaded.model, tokenizer=loaded.codec.tokenizer, max_length=WINDOW, batch_size=3,
                     add_bos_token=False, device="cpu")
    return GatelabLM(loaded, batch_size=5), reference


def test_rolling_loglikelihood_equals_hflm(pair):
    ours, reference = pair
    lines = load_corpus("ptb")["test"].splitlines(keepends=True)
    texts = ["".join(lines[:3]), "".join(lines[3:4]), " N", lines[10].strip()]   # several windows; one token
    got = ours.loglikelihood_rolling(requests("loglikelihood_rolling", [(t,) for t in texts]))
    want = reference.loglikelihood_rolling(requests("loglikelihood_rolling", [(t,) for t in texts]))
    assert len(ours.codec.encode(texts[0])) > 3 * WINDOW
    assert got == pytest.approx(want, rel=1e-5)


def greedy_continuation(lm, context):
    """The text of the model's most likely next token after ``context`` (checked to encode back to that token)."""
    ids = lm.codec.encode(context)
    top = int(lm.model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
    text = lm.codec.decode([top])
    assert lm.codec.encode(context + text) == ids + [top]
    return text


def test_loglikelihood_and_greedy_flags_equal_hflm(pair):
    ours, reference = pair
    args = [(item["context"], item["target"]) for item in ptb_lastword_items()[:6]] + [("", " the"), ("a b", " c d")]
    args.append((" the company said", greedy_continuation(ours, " the company said")))
    got = ours.loglikelihood(requests("loglikelihood", args))
    want = reference.loglikelihood(requests("loglikelihood", args))
    assert [g for _, g in got] == [g for _, g in want] == [False] * (len(args) - 1) + [True]
    assert [ll for ll, _ in got] == pytest.approx([ll for ll, _ in want], rel=1e-5)


def test_generation_equals_hflm(pair):
    ours, reference = pair
    args = [(" the company said", {"until": ["\n"], "max_gen_toks": 6}), (" it was", {"max_gen_toks": 4})]
    assert ours.generate_until(requests("generate_until", args)) == \
        reference.generate_until(requests("generate_until", args))


def test_a_folder_that_is_not_a_model_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "not-a-model"}')
    with pytest.raises(ConfigError, match="is not a causal language model"):
        load_eval_model(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a model folder"):
        load_eval_model(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_eval_model(tmp_path / "missing")


def test_a_converted_model_scores_as_the_original(pair, llama_folder, tmp_path):
    """``gatelab convert`` of the Llama, read with its saved ``hf`` tokenizer, gives the original's log-likelihoods."""
    from gatelab.pretrained.export import convert_to_folder

    convert_to_folder(llama_folder, tmp_path / "converted")
    converted = GatelabLM(load_eval_model(tmp_path / "converted", max_length=WINDOW), batch_size=5)
    ours, _ = pair
    text = "".join(load_corpus("ptb")["test"].splitlines(keepends=True)[:3])
    args = [(text,), (" the company said",)]
    assert converted.loglikelihood_rolling(requests("loglikelihood_rolling", args)) == \
        pytest.approx(ours.loglikelihood_rolling(requests("loglikelihood_rolling", args)), rel=1e-4)
