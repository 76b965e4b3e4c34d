"""Text for language modelling: corpora from installed packages or local folders, offline tokenizers, and a
memory-mapped token cache."""
from .cache import tokenized_corpus
from .corpora import CORPORA, SPLITS, load_corpus
from .tokenizers import (
    TOKENIZERS,
    BPETokenizer,
    ByteTokenizer,
    GPT2Tokenizer,
    HFTokenizer,
    WordTokenizer,
    bos_id,
    check_same_tokenizer,
    encode_prompt,
    fingerprint,
    tokenizer_from_dict,
)

__all__ = ["CORPORA", "SPLITS", "TOKENIZERS", "BPETokenizer", "ByteTokenizer", "GPT2Tokenizer", "HFTokenizer",
           "WordTokenizer", "bos_id", "check_same_tokenizer", "encode_prompt", "fingerprint", "load_corpus",
           "tokenized_corpus", "tokenizer_from_dict"]
