"""``gatelab analyze --hf``: the measurements of ``gatelab analyze`` on a Hugging Face causal LM, read through
forward hooks (``hf_modules``) on the model as it is, and written as the same report: F-Attn, the attention on the
first token (Qiu et al. 2025, "Gated Attention for Large Language Models", arXiv:2505.06708); M-Act, massive
activations of the residual stream (Sun et al. 2024, arXiv:2402.17762); infinity norm, kurtosis and simulated
W8A8 / W6A6 / W4A8 quantization (Bondarenko et al. 2023, "Quantizable Transformers", arXiv:2306.12929);
perplexity against length; the KV cache's size.

Text: a corpus (``load_corpus``: ptb, shakespeare, imdb, kjv or a folder) tokenised by the model's own tokenizer,
the test split evaluated and the training split calibrating quantization, cut into windows of ``seq_len`` tokens
with the tokenizer's BOS token first when it has one (every window then starts the same way, as the model's
training documents did). The default length, 256, shows SmolLM2-135M's sink and massive activations in full (mean
F-Attn 0.33 over its 30 layers, max abs(h) 24,926 from layer 11 on, on 4,096 PTB tokens) while eager attention,
which materialises ``[B, H, T, T]`` probabilities, stays cheap on a CPU; the length curve reaches 8x that (2,048)
within SmolLM2's 8,192-token context.

Quantization: the ``linear`` scope of ``gatelab.analysis.quant`` (weights and inputs of every linear layer but the
output head); the ``full`` scope needs the probes inside gatelab's attention and is refused here. Length: the
model as it is (``as_trained``) at ``seq_len`` times each factor, lengths past ``max_position_embeddings`` skipped;
NTK and YaRN scaling, which gatelab applies to its own rotary embeddings, are not measured for these models.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import ConfigError
from ..models.lm import DecoderLM
from ..tasks.text.corpora import load_corpus
from ..tasks.text.windows import windows
from ..train.files import write_json_atomic
from ..train.tasks import perplexity
from .analyze import AnalysisConfig, analyze, quantization
from .hf_modules import eager_attention, head_name, hf_module_names, linear_types
from .measure import measure

DEFAULT_SEQ_LEN = 256
# 4,096 evaluation tokens and 4 calibration batches of 8 windows: a few minutes for a 135M-parameter model on two
# CPU cores (every measurement reads the same windows; pass eval_tokens=0 for the whole test split)
HF_DEFAULTS = AnalysisConfig(eval_tokens=4096, batch_size=8, calibration_batches=4, quant_scope="linear")


def encode(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]


def encode_prefix(tokenizer: Any, text: str, tokens: int = 0, margin: int = 16) -> torch.Tensor:
    """The ids of the leading ``tokens + 1`` tokens of ``text`` (0: all of it), tokenising a growing prefix of the
    characters rather than the whole text. The last ``margin`` tokens of a cut prefix, which the cut may have
    changed (a word cut in two), are never among those returned."""
    chars = 4 * (tokens + margin)
    while True:
        if not tokens or chars >= len(text):
            return torch.tensor(encode(tokenizer, text), dtype=torch.long)
        ids = encode(tokenizer, text[:chars])
        if len(ids) > tokens + 1 + margin:
            return torch.tensor(ids[: tokens + 1], dtype=torch.long)
        chars *= 2


@torch.no_grad()
def length_curve(model: nn.Module, stream: torch.Tensor, seq_len: int, factors: tuple[int, ...], max_tokens: int,
                 max_len: int | None, bos: int | None, batch_tokens: int = 4096) -> tuple[dict[int, float], list[int]]:
    """Perplexity ``{length: ppl}`` at ``seq_len * factor`` on the same leading ``max_tokens`` of ``stream``
    (0: all), and the lengths skipped for exceeding ``max_len``."""
    curve, skipped = {}, []
    for factor in factors:
        length = seq_len * factor
        if max_len is not None and length > max_len:
            skipped.append(length)
            continue
        x, y = windows(stream, length, max_tokens, bos)
        curve[length] = perplexity(model, x, y, max(1, batch_tokens // length))
    return curve, skipped


@torch.no_grad()
def kv_cache(model: nn.Module, seq_len: int) -> dict[str, int]:
    """Floats and bytes of the cache the model holds after a context of ``seq_len`` tokens (one sequence)."""
    out = model(torch.zeros(1, seq_len, dtype=torch.long), use_cache=True)
    cache = out.get("cache", out.get("past_key_values"))
    tensors = [t for layer in getattr(cache, "layers", []) for t in vars(layer).values() if isinstance(t, torch.Tensor)]
    return {"seq_len": seq_len, "state_floats": sum(t.numel() for t in tensors),
            "state_bytes": sum(t.numel() * t.element_size() for t in tensors)}


def check_length(max_len: int | None, seq_len: int) -> None:
    """``seq_len`` must fit the model's positions (``max_len``: None where its config names no limit)."""
    if seq_len < 2 or (max_len is not None and seq_len > max_len):
        raise ConfigError(f"--seq-len {seq_len}: give 2 to {max_len or 'any length'} (the model's maximum length)")


def gatelab_model(model: nn.Module) -> DecoderLM | None:
    """The DecoderLM inside a gatelab model saved as a Hugging Face model (``GatelabForCausalLM``), else None."""
    inner = getattr(model, "model", None)
    return inner if isinstance(inner, DecoderLM) else None


def analyze_hf(model: nn.Module, tokenizer: Any, data: str = "ptb", seq_len: int = DEFAULT_SEQ_LEN,
               cfg: AnalysisConfig | None = None, name: str | None = None) -> dict[str, Any]:
    """Every measurement of ``gatelab analyze`` on a loaded Hugging Face causal LM ``model`` (float, eval mode) with
    its transformers ``tokenizer``, on the corpus ``data`` (module docstring). ``cfg`` defaults to ``HF_DEFAULTS``;
    its ``eval_tokens`` None or 0 reads the whole test split. A gatelab model saved as a Hugging Face model is
    measured as ``gatelab analyze`` measures a run (``analyze``: its own probes, gates, the full quantization scope,
    NTK and YaRN curves). Returns the measurements with the raw gate samples under ``"gate_values"``."""
    cfg = cfg or HF_DEFAULTS
    inner = gatelab_model(model)
    if inner is None and cfg.quant_scope != "linear":
        raise ConfigError(f"--quant-scope {cfg.quant_scope}: a Hugging Face model is quantized in the linear scope "
                          "(the full scope reads probes inside gatelab's attention layers)")
    max_len = inner.config.max_seq_len if inner is not None else getattr(model.config, "max_position_embeddings", None)
    check_length(max_len, seq_len)
    texts = load_corpus(data)
    tokens = cfg.eval_tokens or 0
    ext_tokens = tokens if cfg.extrapolation_tokens is None else cfg.extrapolation_tokens
    test = encode_prefix(tokenizer, texts["test"], max(tokens, ext_tokens) if tokens and ext_tokens else 0)
    train = encode_prefix(tokenizer, texts["train"], cfg.calibration_batches * cfg.batch_size * seq_len)
    bos = tokenizer.bos_token_id
    model.eval()
    if inner is not None:
        result = analyze(inner, test, train, seq_len, cfg, bos)
        result["notes"] = ["A gatelab model: measured through its own probes, as gatelab analyze measures a run."]
    else:
        result = measure_hf(model, test, train, seq_len, cfg, bos, max_len)
    result["eval"].update(data=data, bos=bos, length_name="evaluation length")
    result["notes"].insert(1, f"BOS token (id {bos}) first in every window." if bos is not None
                           else "The tokenizer has no BOS token: windows start mid-text.")
    result["model"] = name or type(model).__name__
    result["architecture"] = type(inner or model).__name__
    return result


def measure_hf(model: nn.Module, test: torch.Tensor, train: torch.Tensor, seq_len: int, cfg: AnalysisConfig,
               bos: int | None, max_len: int | None) -> dict[str, Any]:
    """``analyze_hf`` on a transformers model: hooks (``hf_modules``) under eager attention."""
    names = hf_module_names(model)
    tokens = cfg.eval_tokens or 0
    ext_tokens = tokens if cfg.extrapolation_tokens is None else cfg.extrapolation_tokens
    with eager_attention(model), torch.no_grad():
        x, y = windows(test, seq_len, tokens, bos)
        result = measure(model, x, y, cfg.batch_size, names=names)
        result["quantization"] = quantization(model, x, y, train, seq_len, cfg, bos, skip=(head_name(model),),
                                              linears=linear_types())
        curve, skipped = length_curve(model, test, seq_len, cfg.factors, ext_tokens, max_len, bos)
        result["state"] = kv_cache(model, seq_len)
    result["extrapolation"] = {"as_trained": curve}
    result["eval"] = {"seq_len": seq_len, "windows": len(x), "tokens": y.numel(), "eval_tokens": tokens,
                      "quant_scope": cfg.quant_scope, "extrapolation_tokens": ext_tokens, "skipped_lengths": skipped}
    result["notes"] = [f"Attention probabilities read by forward hooks on the {len(names.attention)} attention "
                       "modules run with eager attention; the model's code is unchanged.",
                       "Gate scores: none; this model has no gate probes.",
                       "Quantization: weights and inputs of every linear layer but the output head (linear scope)."]
    if skipped:
        result["notes"].append(f"Lengths skipped (past max_position_embeddings = {max_len}): "
                               + ", ".join(str(n) for n in skipped) + ".")
    result["notes"].append("Length curve: the model as it is; NTK and YaRN scaling are not measured for Hugging Face "
                           "models.")
    return result


def analyze_hf_to(model: nn.Module, tokenizer: Any, out_dir: str | Path, data: str = "ptb",
                  seq_len: int = DEFAULT_SEQ_LEN, cfg: AnalysisConfig | None = None, name: str | None = None,
                  source: str | None = None) -> dict[str, Any]:
    """``analyze_hf``, then ``analysis.json``, ``analysis.md`` and the plots written into ``out_dir``; ``source``
    (the folder or name the model came from) is recorded. Returns the measurements without the gate samples."""
    from .report import write_report

    result = analyze_hf(model, tokenizer, data, seq_len, cfg, name)
    gate_values = result.pop("gate_values")
    result["source"] = source or result["model"]
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / "analysis.json", result)
    write_report(result, gate_values, out_dir)
    return result
