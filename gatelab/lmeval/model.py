"""``GatelabLM``: lm-eval-harness's model type ``gatelab`` (registered when this module is imported), for gatelab
models with their own tokenizers and Hugging Face causal LMs with theirs.

It answers lm-eval's three request types with lm-eval's own semantics (those of its ``HFLM``):
- ``loglikelihood(context, continuation)``: the log-probability of the continuation's tokens after the context's
  (both cut from one encoding of ``context + continuation``; an empty context is the prefix token), and whether
  greedy decoding would produce them; inputs longer than ``max_length`` lose tokens on the left.
- ``loglikelihood_rolling(text)``: the log-probability of every token of the document, the first conditioned on
  the prefix token, in windows of ``max_length`` tokens (``lm_eval.utils.get_rolling_token_windows`` with
  context 1): window k predicts tokens ``[k L, (k + 1) L)`` reading the ``L`` tokens before each, i.e. disjoint
  windows of the stream with the prefix token in front; the last, shorter window reads a full ``L`` tokens of
  context and scores only its new tokens.
- ``generate_until(context, gen_kwargs)``: decoding (greedy unless ``do_sample``) of at most ``max_gen_toks``
  tokens, cut at the first of the ``until`` strings or the end-of-text token's text.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs, postprocess_generated_text
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tqdm import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList

from .load import EvalModel, load_eval_model, model_info, set_length

DEFAULT_GEN_TOKENS = 256      # lm-eval's default max_gen_toks
SAMPLING_KWARGS = ("temperature", "top_k", "top_p")


class StopAtStrings(StoppingCriteria):
    """Stop a one-sequence generation once the text generated after ``start`` contains one of ``until``."""

    def __init__(self, until: Sequence[str], decode, start: int):
        self.until, self.decode, self.start = list(until), decode, start

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        text = self.decode(input_ids[0, self.start:].tolist())
        return torch.full((input_ids.shape[0],), any(s in text for s in self.until), device=input_ids.device)


@register_model("gatelab")
class GatelabLM(TemplateLM):
    """lm-eval's view of an ``EvalModel``. ``pretrained``: an ``EvalModel`` or a source ``load_eval_model`` takes
    (a gatelab run or model folder, a Hugging Face folder, ``smollm2``), so ``lm_eval.simple_evaluate(model=
    "gatelab", model_args={"pretrained": PATH})`` works in a process that imported ``gatelab.lmeval``;
    ``max_length``: the window (default: the model's own); ``batch_size``: windows or requests per forward pass."""

    def __init__(self, pretrained: EvalModel | str | Path, max_length: int | str | None = None,
                 batch_size: int | str = 1, device: str | None = None):
        super().__init__()
        self.loaded = pretrained if isinstance(pretrained, EvalModel) else load_eval_model(pretrained)
        if max_length is not None:
            set_length(self.loaded, int(max_length))
        if not str(batch_size).isdigit() or int(batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = int(batch_size)
        self._device = torch.device(device or "cpu")
        self.model = self.loaded.model.to(self._device).eval()
        self.codec = self.loaded.codec

    @property
    def max_length(self) -> int:
        return self.loaded.max_length

    @property
    def eot_token_id(self) -> int:
        return self.codec.eot_id

    @property
    def prefix_token_id(self) -> int:
        return self.codec.prefix_id

    @property
    def tokenizer_name(self) -> str:
        return self.codec.name

    def get_model_info(self) -> dict[str, Any]:
        return model_info(self.loaded)

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        return self.codec.encode_context(string)

    @torch.no_grad()
    def _logits(self, rows: list[list[int]]) -> torch.Tensor:
        """Logits ``[B, T, vocab]`` (float32) of right-padded rows; a causal model's logits at a row's own
        positions do not depend on the padding after them."""
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [self.codec.eot_id] * (width - len(r)) for r in rows], device=self._device)
        return self.model(input_ids=ids, use_cache=False).logits.float()

    def _loglikelihood_tokens(self, requests: list[tuple[Any, list[int], list[int]]],
                              disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """``(log p(continuation | context), greedy)`` per ``(key, context ids, continuation ids)``, in windows of
        at most ``max_length`` inputs (longest first, ``batch_size`` at a time)."""
        L = self.max_length
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i][1]) - len(requests[i][2]))
        out: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
        for b in tqdm(range(0, len(order), self.batch_size), desc="forward passes", disable=disable_tqdm):
            batch = order[b:b + self.batch_size]
            rows, conts = [], []
            for i in batch:
                _, context, continuation = requests[i]
                if not continuation or len(continuation) > L:
                    raise ValueError(f"a continuation of {len(continuation)} tokens: lm-eval scores 1 to max_length="
                                     f"{L} tokens at a time")
                rows.append((context + continuation)[-(L + 1):][:-1])
                conts.append(continuation)
            logits = self._logits(rows)                                              # (B, W, vocab)
            target = torch.full(logits.shape[:2], -100, device=logits.device)        # -100: not scored
            for r, (row, cont) in enumerate(zip(rows, conts, strict=True)):
                target[r, len(row) - len(cont):len(row)] = torch.tensor(cont)
            nll = F.cross_entropy(logits.flatten(0, 1), target.flatten(), reduction="none").view_as(target)
            greedy = ~((logits.argmax(-1) != target) & (target >= 0)).any(1)
            for i, ll, g in zip(batch, (-nll.sum(1)).tolist(), greedy.tolist(), strict=True):
                out[i] = (ll, g)
        return out

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        windows, owner = [], []
        for n, request in enumerate(requests):
            (text,) = request.args
            for context, continuation in map(make_disjoint_window, get_rolling_token_windows(
                    self.codec.encode(text), self.prefix_token_id, self.max_length, context_len=1)):
                windows.append((None, context, continuation))
                owner.append(n)
        totals = [0.0] * len(requests)
        for n, (ll, _) in zip(owner, self._loglikelihood_tokens(windows, disable_tqdm), strict=True):
            totals[n] += ll
        return totals

    @torch.no_grad()
    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        out = []
        for request in requests:
            context, gen_kwargs = request.args
            kwargs = normalize_gen_kwargs(gen_kwargs or {}, DEFAULT_GEN_TOKENS)
            until = handle_stop_sequences(kwargs.pop("until", None), eos=self.codec.eot_text)
            new = kwargs.pop("max_gen_toks")
            if new >= self.max_length:
                raise ValueError(f"max_gen_toks={new} leaves no room for a context in max_length={self.max_length}")
            ids = (self.codec.encode_context(context) if context else [self.prefix_token_id])[-(self.max_length - new):]
            sampling = {k: kwargs[k] for k in SAMPLING_KWARGS if k in kwargs} if kwargs["do_sample"] else {}
            prompt = torch.tensor([ids], device=self._device)
            generated = self.model.generate(
                prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new, pad_token_id=self.eot_token_id,
                stopping_criteria=StoppingCriteriaList([StopAtStrings(until, self.codec.decode, len(ids))]),
                do_sample=kwargs["do_sample"], **sampling)
            out.append(postprocess_generated_text(self.codec.decode(generated[0, len(ids):].tolist()), until, None))
        return out
