"""Text for language modelling: corpora from installed packages or local folders, and offline tokenizers."""
from .corpora import SPLITS, load_corpus
from .tokenizers import ByteTokenizer, WordTokenizer, tokenizer_from_dict

__all__ = ["SPLITS", "ByteTokenizer", "WordTokenizer", "load_corpus", "tokenizer_from_dict"]
