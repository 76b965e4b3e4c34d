"""The ``hf`` tokenizer kind: a pretrained model's fast tokenizer kept beside a converted model."""
import json

import pytest

from gatelab.tasks.text import HFTokenizer, bos_id, fingerprint, tokenizer_from_dict
from tests.pretrained.tiny import tiny_tokenizer

TEXT = "The capital of France is Paris.\nA quick brown fox."


def test_encode_decode_as_the_pretrained_tokenizer_without_special_tokens():
    theirs = tiny_tokenizer()
    tok = HFTokenizer.from_pretrained(theirs, bos=0)
    assert tok.kind == "hf" and tok.vocab_size == len(theirs) == 300
    assert tok.encode(TEXT) == theirs.encode(TEXT, add_special_tokens=False)
    assert tok.decode(tok.encode(TEXT)) == TEXT
    assert tok.decode([0] + tok.encode("Paris")) == "<|endoftext|>Paris"
    assert bos_id(tok) == 0


def test_to_dict_round_trips_with_the_same_fingerprint():
    tok = HFTokenizer.from_pretrained(tiny_tokenizer(), bos=0, vocab_size=320)
    data = json.loads(json.dumps(tok.to_dict()))
    again = tokenizer_from_dict(data)
    assert isinstance(again, HFTokenizer) and (again.bos, again.vocab_size) == (0, 320)
    assert fingerprint(again) == fingerprint(tok) and again.encode(TEXT) == tok.encode(TEXT)
    assert fingerprint(HFTokenizer.from_pretrained(tiny_tokenizer(), bos=1, vocab_size=320)) != fingerprint(tok)


def test_bad_ids_and_slow_tokenizers_are_refused():
    serialized = tiny_tokenizer().backend_tokenizer.to_str()
    with pytest.raises(ValueError, match="cannot serve a model of vocab_size=200"):
        HFTokenizer(serialized, bos=0, vocab_size=200)
    with pytest.raises(ValueError, match="BOS id 300 is not an id"):
        HFTokenizer(serialized, bos=300)
    with pytest.raises(ValueError, match="not a fast tokenizer"):
        HFTokenizer.from_pretrained(object(), bos=0)
    with pytest.raises(ValueError, match="unknown tokenizer kind 'sp'; known: word, byte, gpt2, bpe, hf"):
        tokenizer_from_dict({"kind": "sp"})
