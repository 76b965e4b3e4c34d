"""Linearize a trained model to each target, fine-tune every linearized model with LoRA as an ordinary gatelab run,
and measure how much of the teacher it recovers (Liger: Lan et al. 2025, arXiv 2503.01496).

Layout of ``out``: ``teacher/`` a pretrained source converted to a gatelab model (``gatelab convert``; a gatelab
source is read where it is), ``models/<target>/`` the linearized model before fine-tuning (a gatelab model folder,
the run's ``init_from``), ``runs/<target>/`` its fine-tuning run, ``results.json`` and ``report.md``. Teacher and
students are evaluated here on the same test windows (the source's tokenizer on the test split of ``data``). The
recovered fraction is ``teacher perplexity / student perplexity``, and ``student accuracy / teacher accuracy`` on the
local cloze task (``cloze.py``; the paper's 93% is a ratio of mean zero-shot accuracies).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..analysis.state import state_bytes
from ..config import ConfigError, apply_overrides, from_dict, read_json_object, to_dict
from ..hf import load_run, save_run_model
from ..models.lm import DecoderLM
from ..tasks.text import bos_id
from ..tasks.text.corpora import load_corpus
from ..tasks.text.windows import windows
from ..train.config import TrainConfig
from ..train.diagnostics import TrainingDiverged
from ..train.files import write_json_atomic
from ..train.sweep import finished_result, run_or_resume
from ..train.tasks.lm import perplexity
from .cloze import cloze_correct, recovered_accuracy
from .export import convert_to_folder, write_folder
from .linearize import linearize
from .source import gatelab_folder, read_json, source_path, weights_digest

DECODE_STEPS = 8


@dataclass(kw_only=True)
class LinearizeOptions:
    """What ``gatelab linearize`` does. Defaults follow the paper's recipe (``configs/liger_gla.yaml``): LoRA rank 8
    with peft's default alpha (= rank) on q/k/v, AdamW at lr 1e-3 with weight decay 0.01 and betas (0.9, 0.999),
    no warmup, a constant rate (its ReduceLROnPlateau never fires in a short run), gradient clip 1.0, batch 8
    (the paper: micro-batches of 1, ``grad_accum`` = 8, which bounds the memory of long sequences).
    ``seq_len`` 0: the source run's training length (1024, the paper's, for a model folder without a run).
    ``contexts``: context lengths at which the decoding state is measured. ``cloze_items``: items of the local cloze
    task (``ptb_lastword``, 2,800) on which teacher and students are scored for the accuracy ratio (0: none)."""

    targets: list[str]
    data: str = "ptb"
    steps: int = 300
    lr: float = 1e-3
    batch_size: int = 8
    grad_accum: int = 1
    seq_len: int = 0
    lora_rank: int = 8
    window: int = 64
    eval_tokens: int = 0
    contexts: list[int] = field(default_factory=lambda: [128, 512, 2048])
    cloze_items: int = 500
    seed: int = 0
    device: str = "cpu"


@dataclass
class Teacher:
    model: DecoderLM
    tokenizer: Any
    seq_len: int
    bos: bool
    train_tokens: int | None     # tokens the teacher trained on, when the source is a gatelab run


def converted_teacher(source: str, out: Path, overwrite: bool) -> Path:
    """``out/teacher``: the pretrained ``source`` converted to a gatelab model folder (``gatelab convert``), reused
    when a previous run converted the same source with the same weights there. A teacher converted from other
    weights is replaced only with ``overwrite``."""
    folder = out / "teacher"
    record = read_json(folder / "conversion.json")
    if record.get("source") == source and record.get("weights_sha256") == weights_digest(source_path(source)):
        return folder
    if folder.exists() and not overwrite:
        raise ConfigError(f"{folder} holds a teacher converted from {record.get('source', 'another source')!r} with "
                          f"other weights than {source!r} has now; use another --out, or --overwrite to convert it "
                          "again and train its students again")
    convert_to_folder(source, folder, overwrite=True)
    return folder


def load_teacher(source: str | Path, out: Path, overwrite: bool = False) -> Teacher:
    """The model and tokenizer of a gatelab lm run or saved model folder, with the run's length and BOS setting; any
    other source (``smollm2``, a Hugging Face folder, a GGUF) is converted into ``out/teacher`` first, and its
    windows start with the model's BOS token, as its pretraining documents did."""
    path = Path(source)
    if not gatelab_folder(path):
        path = converted_teacher(str(source), out, overwrite)
    hf, tokenizer = load_run(path)
    if tokenizer is None:
        raise ConfigError(f"{source} has no tokenizer ({path}/model/gatelab_tokenizer.json): linearize needs a "
                          "language model trained on text")
    run = from_dict(TrainConfig, read_json_object(path / "config.json")) if (path / "model").is_dir() else None
    lm = to_dict(run.lm) if run is not None else {}
    tokens = run.max_steps * run.batch_size * lm["seq_len"] if run is not None else None
    bos = lm.get("bos", (path / "conversion.json").is_file())
    return Teacher(hf.model.float().eval(), tokenizer, lm.get("seq_len", 1024), bos, tokens)


def finetune_config(opts: LinearizeOptions, init_from: Path, seq_len: int, bos: bool) -> TrainConfig:
    """The fine-tuning run of one linearized model: LoRA on q/k/v from its saved weights, the paper's optimiser."""
    r = opts.lora_rank
    return apply_overrides(TrainConfig(), [
        "task=lm", "tune=lora", "lm.tokenizer=model", f"lm.seq_len={seq_len}", f"lm.bos={str(bos).lower()}",
        f"lm.eval_tokens={opts.eval_tokens}", f"lora.rank={r}", f"lora.alpha={r}", f"max_steps={opts.steps}",
        f"eval_every={opts.steps}", f"batch_size={opts.batch_size}", f"grad_accum={opts.grad_accum}",
        f"optim.lr={opts.lr}", "optim.weight_decay=0.01", "optim.beta2=0.999", "optim.warmup_frac=0",
        "optim.min_lr_ratio=1", "optim.grad_clip=1", f"seed={opts.seed}", f"device={opts.device}"],
        values={"init_from": str(init_from), "lm.data": opts.data})


def save_model(model: DecoderLM, folder: Path, tokenizer) -> Path:
    """Write the model folder under a temporary name and move it into place (nothing half-written is left)."""
    write_folder(folder, lambda staging: save_run_model(model, staging, tokenizer))
    return folder


@torch.no_grad()
def decoding_state(model: DecoderLM, contexts: list[int]) -> list[dict[str, float]]:
    """Bytes of the per-layer decoding states after each context length (of token 0), and the median time of one
    decoding step there (``DECODE_STEPS`` steps after an untimed one)."""
    out = []
    token = torch.zeros(1, 1, dtype=torch.long)
    for n in contexts:
        states = model(torch.zeros(1, n, dtype=torch.long)).states
        nbytes = state_bytes(states)
        times = []
        for _ in range(DECODE_STEPS + 1):
            start = time.perf_counter()
            states = model(token, states=states, step=True).states
            times.append(time.perf_counter() - start)
        out.append({"context": n, "state_bytes": nbytes, "decode_ms": 1000 * statistics.median(times[1:])})
    return out


def tune(run_dir: Path, cfg: TrainConfig, progress: bool, overwrite: bool = False) -> dict[str, Any]:
    """The result of the fine-tuning run ``cfg`` in ``run_dir``: a finished one of the same config is read back, an
    interrupted one resumed, one of another config refused unless ``overwrite`` (then trained again); a run that
    diverges is a result too (``diverged``, ``reason``), with no tuned model."""
    try:
        return finished_result(run_dir, cfg) or run_or_resume(run_dir, cfg, progress=progress, overwrite=overwrite)
    except TrainingDiverged:
        return read_json(run_dir / "result.json")


def run_linearization(source: str | Path, opts: LinearizeOptions, out: str | Path, progress: bool = True,
                      overwrite: bool = False) -> dict[str, Any]:
    """Linearize ``source`` to every target of ``opts``, fine-tune each, evaluate them beside the teacher; writes
    ``results.json`` (returned) into ``out``. A finished fine-tuning run of the same config is reused; one of
    another config is an error unless ``overwrite``."""
    out = Path(out)
    teacher = load_teacher(source, out, overwrite)
    seq_len = opts.seq_len or teacher.seq_len
    contexts = [n for n in opts.contexts if n <= teacher.model.config.max_seq_len]
    bos = bos_id(teacher.tokenizer) if teacher.bos else None
    test = torch.tensor(teacher.tokenizer.encode(load_corpus(opts.data)["test"]), dtype=torch.long)
    x, y = windows(test, seq_len, opts.eval_tokens, bos)
    batch = opts.batch_size // opts.grad_accum      # evaluation holds one micro-batch at a time too

    def ppl(model: DecoderLM) -> float:
        return perplexity(model, x, y, batch)

    def cloze(model: DecoderLM) -> list[float]:
        return cloze_correct(model, teacher.tokenizer, seq_len, opts.cloze_items, batch) if opts.cloze_items else []

    def accuracy(correct: list[float], stage: str) -> dict[str, Any]:
        """``cloze_acc``, ``recovered_acc`` and its standard error, suffixed ``_linearized`` before tuning."""
        if not opts.cloze_items:
            return {}
        ratio, se = recovered_accuracy(correct, teacher_correct)
        suffix = "" if stage == "tuned" else "_linearized"
        return {f"cloze_acc{suffix}": statistics.fmean(correct), f"recovered_acc{suffix}": ratio,
                f"recovered_acc_se{suffix}": se}

    teacher_ppl, teacher_correct = ppl(teacher.model), cloze(teacher.model)
    results: dict[str, Any] = {
        "source": str(source), "options": asdict(opts), "seq_len": seq_len, "bos": teacher.bos,
        "eval": {"windows": len(x), "tokens": y.numel()},
        "teacher": {"test_ppl": teacher_ppl, "params": sum(p.numel() for p in teacher.model.parameters()),
                    "train_tokens": teacher.train_tokens, "state": decoding_state(teacher.model, contexts),
                    **({"cloze_acc": statistics.fmean(teacher_correct)} if opts.cloze_items else {})},
        "cloze": {"task": "ptb_lastword", "items": len(teacher_correct)} if opts.cloze_items else None,
        "recovered_definition": "teacher test perplexity / student test perplexity (1 = the teacher's perplexity)",
        "targets": {}}
    for to in opts.targets:
        student = linearize(teacher.model, to, opts.window)
        folder = save_model(student, out / "models" / to, teacher.tokenizer)
        run_dir = out / "runs" / to
        result = tune(run_dir, finetune_config(opts, folder.resolve(), seq_len, teacher.bos), progress, overwrite)
        before = ppl(student)
        steps = result.get("steps", 0)
        row = {"mixer": student.config.mixer, "run": str(run_dir), "test_ppl_linearized": before,
               "recovered_linearized": teacher_ppl / before, "steps": steps,
               "tokens": steps * opts.batch_size * seq_len, "train_seconds": result.get("train_seconds"),
               "trainable_params": result.get("trainable_params"), "diverged": result.get("reason"),
               **accuracy(cloze(student), "linearized")}
        if not result.get("diverged"):
            tuned = load_run(run_dir)[0].model.eval()
            after = ppl(tuned)
            row.update(test_ppl_tuned=after, recovered=teacher_ppl / after, state=decoding_state(tuned, contexts),
                       run_test_ppl=result.get("final", {}).get("test/ppl"), **accuracy(cloze(tuned), "tuned"))
        results["targets"][to] = row
    write_json_atomic(out / "results.json", results)
    return results
