"""``gatelab retrofit-gate``: retrofit the G1 gate onto a trained model (``retrofit_gate``), fine-tune the gated
model and, as the control, the ungated one the same way (same data, steps, lr and seeds), and measure the attention
sink (F-Attn), massive activations (M-Act) and W8A8 perplexity of the source, of the gated model at step 0 and of
both fine-tunes, all on the same test windows.

Layout of OUT: ``models/ungated`` and ``models/gated`` (gatelab model folders, the fine-tunes' ``init_from``),
``runs/<arm>-s<seed>`` (ordinary training runs: resumed, or reused when their config matches), ``measure/``
(cached measurements), ``report.md`` and ``results.json``."""
from __future__ import annotations

import filecmp
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..analysis.analyze import as_tensor, quantization
from ..analysis.measure import measure
from ..config import ConfigError, check_ranges, from_dict, read_json_object, to_dict
from ..hf.run import TOKENIZER_FILE, load_run, save_run_model
from ..models.lm import DecoderLM
from ..reproduce.experiment import W8A8
from ..tasks.text import bos_id, load_corpus
from ..tasks.text.tokenizers import HFTokenizer, Tokenizer
from ..tasks.text.windows import windows
from ..train.config import LMTaskConfig, TrainConfig, check_device
from ..train.files import write_json_atomic
from ..train.finetune import weights_sha256
from ..train.progress import RunProgress
from ..train.sweep import SweepRun, run_sweep
from .convert import to_gatelab
from .export import model_bos, write_folder
from .retrofit import Granularity, retrofit_gate
from .source import gatelab_folder, load_pretrained, read_json

ARMS = ("ungated", "gated")
# the variant names of the records (and of the report's rows)
BEFORE, STEP0 = "source (before)", "gated, step 0"
VARIANTS = {"ungated": "ungated fine-tune", "gated": "gated fine-tune"}
MEASURED_WITH = "retrofit measure v1: measure + W8A8 (full scope, percentile 99.999, MSE weights)"


@dataclass(kw_only=True)
class RetrofitConfig:
    """The fine-tune and the measurement: ``steps`` AdamW steps of ``batch_size`` windows of ``seq_len`` tokens of
    corpus ``data`` (through the source's tokenizer, ``bos`` first in each window if set) at peak ``lr`` (warmup
    and cosine decay, weight decay 0.1 as every gatelab run), for each of ``seeds`` seeds and both arms; measured on
    the first ``eval_tokens`` test tokens (also the runs' own evaluation), quantization calibrated on the leading
    training tokens. ``device``: where the fine-tunes train (the measurements run on the CPU)."""

    data: str = "ptb"
    steps: int = 200
    lr: float = 3e-4
    batch_size: int = 8
    seq_len: int = 128
    bos: bool = False
    granularity: Granularity = "elementwise"
    seeds: int = 1
    eval_tokens: int = 16384
    device: str = "cpu"

    RANGES: ClassVar[dict[str, str]] = {"steps": "[1, inf)", "lr": "(0, inf)", "batch_size": "[1, inf)",
                                        "seq_len": "[2, inf)", "seeds": "[1, inf)", "eval_tokens": "[1, inf)"}

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass
class Source:
    """A trained gatelab language model with its tokenizer; ``lm``: the LM settings of the run it came from (None
    for a bare model folder)."""

    model: DecoderLM
    tokenizer: Tokenizer
    name: str
    lm: LMTaskConfig | None = None


def load_source(source: str | Path) -> Source:
    """A gatelab lm run folder or saved model folder (``config.json`` + ``model.safetensors`` + tokenizer), or a
    pretrained Hugging Face model (``smollm2``, a folder with ``config.json`` + safetensors, a GGUF: see
    ``load_pretrained``) converted with ``to_gatelab`` and its own tokenizer (kind ``hf``), as a Source."""
    path = Path(source)
    if str(source) == "smollm2" or not gatelab_folder(path):
        pretrained = load_pretrained(source)
        lm = to_gatelab(pretrained.model)
        tokenizer = HFTokenizer.from_pretrained(pretrained.tokenizer, model_bos(pretrained), lm.config.vocab_size)
        return Source(lm.eval(), tokenizer, pretrained.name)
    hf, tokenizer = load_run(path)
    if tokenizer is None:
        raise ConfigError(f"{path} has no tokenizer ({TOKENIZER_FILE}): the fine-tune reads text through the "
                          "model's own tokenizer")
    stored = read_json(path / "config.json")
    lm = from_dict(TrainConfig, stored).lm if "task" in stored else None
    return Source(hf.model.float().eval(), tokenizer, path.resolve().name, lm)


def resolve_config(source: Source, given: dict[str, Any]) -> RetrofitConfig:
    """The config of the flags in ``given`` (None: not given); ``data``, ``seq_len`` and ``bos`` default to those
    of the run the source came from (else ptb, 256 and off). ``seq_len`` must fit the source's max_seq_len, and
    ``device`` must exist here."""
    lm = source.lm
    defaults = {"data": lm.data, "seq_len": lm.seq_len, "bos": lm.bos} if lm else {"seq_len": 256}
    cfg = RetrofitConfig(**{**defaults, **{k: v for k, v in given.items() if v is not None}})
    limit = source.model.config.max_seq_len
    if cfg.seq_len > limit:
        raise ConfigError(f"--seq-len {cfg.seq_len} exceeds the source model's max_seq_len={limit}")
    try:
        torch.device(cfg.device)
    except RuntimeError:
        raise ConfigError(f"--device {cfg.device!r} is not a torch device; use cpu, cuda or cuda:N") from None
    check_device(cfg.device)
    return cfg


def write_model(model: DecoderLM, tokenizer: Tokenizer, folder: Path, overwrite: bool) -> None:
    """Save ``model`` as a gatelab model folder (written into a private folder beside it, then swapped into place).
    A folder already there with the same files is kept; one with other files (another source or granularity) is an
    error, or replaced with ``overwrite``."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.cmp"))
    try:
        save_run_model(model, staging, tokenizer)
        names = sorted(p.name for p in staging.iterdir())
        if folder.exists():
            same = sorted(p.name for p in folder.iterdir()) == names and \
                all(filecmp.cmp(staging / n, folder / n, shallow=False) for n in names)
            if same:
                return
            if not overwrite:
                raise ConfigError(f"{folder} holds another model (from another source or --granularity); use another "
                                  "--out, or --overwrite to replace it and train its fine-tunes again")
        write_folder(folder, lambda into: [shutil.copy2(staging / n, into / n) for n in names])
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def finetune_config(folder: Path, cfg: RetrofitConfig, seed: int) -> TrainConfig:
    """The fine-tune of the model in ``folder``: an ordinary lm run that starts from its weights (its model config is
    the folder's) and reads text through its tokenizer."""
    lm = LMTaskConfig(data=cfg.data, tokenizer="model", seq_len=cfg.seq_len, eval_tokens=cfg.eval_tokens, bos=cfg.bos)
    train = TrainConfig(task="lm", lm=lm, init_from=str(folder.resolve()),
                        batch_size=cfg.batch_size, max_steps=cfg.steps, eval_every=cfg.steps, seed=seed,
                        device=cfg.device, checkpoint_every=max(1, min(cfg.steps, 100)))
    train.optim.lr = cfg.lr
    return train


@dataclass
class EvalData:
    """The test windows every model is measured on, and the training windows quantization calibrates on."""

    x: torch.Tensor
    y: torch.Tensor
    calibration: torch.Tensor
    bos: int | None


def eval_data(tokenizer: Tokenizer, cfg: RetrofitConfig) -> EvalData:
    """The first ``eval_tokens`` test tokens of ``cfg.data`` as windows, and as many leading training tokens as
    the W8A8 calibration reads (only that much training text is tokenised)."""
    texts = load_corpus(cfg.data)
    bos = bos_id(tokenizer) if cfg.bos else None
    x, y = windows(np.asarray(tokenizer.encode(texts["test"]), dtype=np.int64), cfg.seq_len, cfg.eval_tokens, bos)
    needed = W8A8.calibration_batches * W8A8.batch_size * cfg.seq_len + 1
    train, limit = texts["train"], 16 * needed
    while True:   # tokenise a growing prefix of whole lines until it holds the calibration tokens
        prefix = train if limit >= len(train) else train[:limit].rpartition("\n")[0]
        ids = tokenizer.encode(prefix)
        if len(ids) >= needed or prefix is train:
            return EvalData(x, y, as_tensor(np.asarray(ids, dtype=np.int64), needed - 1), bos)
        limit *= 2


def measure_folder(folder: Path, data: EvalData, cfg: RetrofitConfig, cache: Path) -> dict[str, Any]:
    """F-Attn, M-Act, gate score, perplexity and W8A8 perplexity of the model saved in ``folder``, cached in
    ``cache`` under the model file's digest and the measurement settings."""
    key = {"measured_with": MEASURED_WITH, "weights": weights_sha256(folder),
           "data": cfg.data, "seq_len": cfg.seq_len, "eval_tokens": cfg.eval_tokens, "bos": cfg.bos}
    old = read_json_object(cache) if cache.is_file() else {}
    if old.get("key") == key and isinstance(old.get("result"), dict):
        return old["result"]
    hf, _ = load_run(folder)
    model = hf.model.float().eval()
    r = measure(model, data.x, data.y, W8A8.batch_size, keep_gate_values=False)
    q = quantization(model, data.x, data.y, data.calibration, cfg.seq_len, replace(W8A8, eval_tokens=cfg.eval_tokens),
                     data.bos)
    f_attn = {int(k): v for k, v in r["f_attn"]["per_layer"].items()}
    m_act = {int(k): v for k, v in r["m_act"]["per_layer"].items()}
    top_sink = max(f_attn, key=f_attn.get) if f_attn else None
    top_act = max(m_act, key=lambda i: m_act[i]["max"])
    result = {"ppl": r["ppl"], "f_attn": r["f_attn"]["mean"], "f_attn_max": f_attn.get(top_sink),
              "f_attn_max_layer": top_sink, "m_act": r["m_act"]["mean"], "m_act_max": m_act[top_act]["max"],
              "m_act_max_layer": top_act, "m_act_ratio": r["m_act"]["mean_max_over_median"],
              "m_act_ratio_max": max(v["max_over_median"] for v in m_act.values()),
              "gate_score": r["gate_score"]["per_kind"].get("gate.probe"), "w8a8_ppl": q["W8A8"],
              "w8a8_rel_gap": q["W8A8"] / q["float"] - 1, "max_inf_norm": r["outliers"]["max_inf_norm"],
              "avg_kurtosis": r["outliers"]["avg_kurtosis"],
              "f_attn_per_layer": f_attn, "m_act_per_layer": {i: v["max"] for i, v in m_act.items()}}
    write_json_atomic(cache, {"key": key, "result": result})
    return result


@torch.no_grad()
def identity_check(source: DecoderLM, gated: DecoderLM, data: EvalData) -> dict[str, Any]:
    """The retrofitted model against its source at step 0 on the first test windows: bit-identical logits, or the
    largest difference."""
    x = data.x[:W8A8.batch_size]
    a, b = source(x).logits, gated(x).logits
    return {"windows": len(x), "dtype": str(a.dtype).removeprefix("torch."), "bit_identical": torch.equal(a, b),
            "max_abs_logit_diff": (a - b).abs().max().item()}


def retrofit_experiment(source: Source, cfg: RetrofitConfig, out: str | Path, progress: bool | RunProgress = True,
                        overwrite: bool = False) -> dict[str, Any]:
    """Write both model folders, fine-tune both arms for every seed under ``out/runs``, measure everything on the
    same windows. Returns the step-0 identity check, the records (one per measured model: ``variant`` BEFORE, STEP0
    or a VARIANTS value, with ``seed`` for the fine-tunes) and each run's training cost."""
    out = Path(out)
    gated = retrofit_gate(source.model, cfg.granularity)
    data = eval_data(source.tokenizer, cfg)
    identity = identity_check(source.model, gated, data)
    models = {"ungated": (source.model, out / "models" / "ungated"), "gated": (gated, out / "models" / "gated")}
    for model, folder in models.values():
        write_model(model, source.tokenizer, folder, overwrite)
    runs = [SweepRun(f"{arm}-s{seed}", {"variant": arm, "seed": seed},
                     finetune_config(models[arm][1], cfg, seed))
            for seed in range(cfg.seeds) for arm in ARMS]
    finished = {r["run"]: r for r in run_sweep(runs, out, progress, overwrite=overwrite)}
    measured = [(BEFORE, None, "source", models["ungated"][1]), (STEP0, None, "gated_step0", models["gated"][1]),
                *[(VARIANTS[run.coords["variant"]], run.coords["seed"], run.name, out / "runs" / run.name / "model")
                  for run in runs]]
    records = []
    for variant, seed, name, folder in measured:
        if name in finished and finished[name]["diverged"]:
            records.append({"variant": variant, "seed": seed, "diverged": True})
            continue
        records.append({"variant": variant, "seed": seed,
                        **measure_folder(folder, data, cfg, out / "measure" / f"{name}.json")})
    cost = {name: {"steps": r["steps"], "train_seconds": r["train_seconds"],
                   "seconds_per_step": r["train_seconds"] / max(r["steps"], 1), "diverged": r["diverged"]}
            for name, r in finished.items()}
    return {"source": source.name, "config": to_dict(cfg), "identity": identity,
            "params": {"source": source.model.num_params(), "gated": gated.num_params()},
            "records": records, "runs": cost}
