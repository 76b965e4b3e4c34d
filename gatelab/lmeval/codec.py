"""Text <-> ids for lm-eval's requests, over a gatelab tokenizer or a transformers one.

lm-eval hands a model text: whole documents (``loglikelihood_rolling``), contexts that a continuation extends
(``loglikelihood``, ``generate_until``) and generated ids to turn back into text. A codec says how, and which id
conditions the first token of a document or of an empty context (``prefix_id``) and which id ends a generation
(``eot_id``, whose text ``eot_text`` ends every generation's text).
"""
from __future__ import annotations

from typing import Any

from ..tasks.text.tokenizers import Tokenizer, WordTokenizer, bos_id, encode_prompt, fingerprint


class GatelabCodec:
    """A gatelab tokenizer (``gatelab.tasks.text.tokenizers``). A document is encoded as the LM task encodes a
    corpus (a word-level document gets one ``<eos>`` per line); a context as ``encode_prompt`` does (an unfinished
    last line stays open, so its continuation's words follow it). ``prefix_id`` and ``eot_id`` are the tokenizer's
    ``bos_id``: ``<eos>`` for words, which is what precedes every sentence of a word-level stream."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.prefix_id = self.eot_id = bos_id(tokenizer)
        self.eot_text = tokenizer.decode([self.eot_id])
        self.name = f"gatelab-{tokenizer.kind}-{fingerprint(tokenizer)}"

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def encode_context(self, text: str) -> list[int]:
        return encode_prompt(self.tokenizer, text)

    def decode(self, ids: list[int]) -> str:
        """The text of generated ids that continue a context (a word-level continuation starts with the space that
        separates it from the context's last word, unless it starts a new line)."""
        text = self.tokenizer.decode(ids)
        if isinstance(self.tokenizer, WordTokenizer) and text and not text.startswith("\n"):
            return " " + text
        return text


class HFCodec:
    """A transformers tokenizer. Text is encoded without the tokenizer's special tokens: the document's first token
    is conditioned on ``prefix_id`` instead (the BOS token, else EOS), as lm-eval's ``HFLM`` does with
    ``add_bos_token=False``; generation ends at EOS."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if prefix is None or tokenizer.eos_token_id is None:
            raise ValueError(f"the tokenizer of {tokenizer.name_or_path or 'this model'} has neither a BOS nor an EOS "
                             "token: lm-eval needs one to condition a document's first token and to end generation")
        self.prefix_id, self.eot_id = prefix, tokenizer.eos_token_id
        self.eot_text = tokenizer.decode([self.eot_id], skip_special_tokens=False)
        self.name = tokenizer.name_or_path or type(tokenizer).__name__

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    encode_context = encode

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)
