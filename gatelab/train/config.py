"""The configuration of one training run."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import torch

from ..config import ConfigError, check_ranges, from_dict, to_dict
from ..models.classifier import ClassifierConfig, check_pooling
from ..models.forecaster import ForecasterConfig
from ..models.lm import ModelConfig
from ..tasks.lra import ListOpsConfig, LRAImageConfig, LRATextConfig, PathfinderConfig
from ..tasks.mqar import MQARConfig
from ..tasks.series import ForecastConfig
from ..tasks.synthetic import InductionHeadsConfig, SelectiveCopyingConfig
from ..tasks.text.cache import tokenizer_key
from .finetune import LoRAConfig, lora_targets, resolve_init_from
from .optim import OptimConfig
from .tasks import task_class


@dataclass(kw_only=True)
class MQARTaskConfig:
    """MQAR training data: one slice per ``(seq_len, num_kv_pairs)`` of the lists (zipped; a single
    num_kv_pairs of 0 means ``seq_len // 16`` for each length, as in Zoology's (64,4), (128,8), (256,16))."""

    vocab_size: int = 512
    seq_lens: list[int] = field(default_factory=lambda: [64])
    num_kv_pairs: list[int] = field(default_factory=lambda: [0])
    train_examples: int = 20000
    test_examples: int = 1000
    power_a: float = 0.01
    random_non_queries: bool = True

    RANGES: ClassVar[dict[str, str]] = {"vocab_size": "[4, inf)", "seq_lens": "[2, inf)", "num_kv_pairs": "[0, inf)",
                                        "train_examples": "[1, inf)", "test_examples": "[1, inf)",
                                        "power_a": "(0, inf)"}

    def check(self) -> None:
        """Every slice must be a valid MQAR configuration (even lengths, enough vocabulary and room for the pairs)."""
        for split in ("train", "test"):
            for s in self.slices(split):
                s.validate()

    def slices(self, split: str) -> list[MQARConfig]:
        pairs = self.num_kv_pairs if len(self.num_kv_pairs) > 1 else self.num_kv_pairs * len(self.seq_lens)
        if len(pairs) != len(self.seq_lens):
            raise ConfigError(f"mqar.num_kv_pairs {self.num_kv_pairs} must have one entry or one per seq_len "
                              f"{self.seq_lens}")
        n = self.train_examples if split == "train" else self.test_examples
        return [
            MQARConfig(vocab_size=self.vocab_size, seq_len=T, num_kv_pairs=P or max(1, T // 16),
                       num_examples=max(1, n // len(self.seq_lens)), power_a=self.power_a,
                       random_non_queries=self.random_non_queries)
            for T, P in zip(self.seq_lens, pairs, strict=True)
        ]


@dataclass(kw_only=True)
class LMTaskConfig:
    """Language modelling. ``data``: a corpus (ptb, imdb, shakespeare, kjv) or a folder of train/valid/test text
    files. ``tokenizer``: word (PTB's protocol), byte, gpt2 (GPT-2 BPE), bpe (trained on the corpus) or model (the
    tokenizer saved beside the weights of ``init_from``, whatever its kind); ``vocab_size`` caps the word
    vocabulary (0: every word) or sets the BPE size (0: 8192). Windows of ``seq_len``
    tokens. ``eval_tokens`` > 0 evaluates on that many leading tokens of valid and test only (for quick checks;
    0 means the whole splits). ``cache`` keeps tokenised corpora as memory-mapped arrays in the data folder.
    ``bos`` starts every training and evaluation window with the tokenizer's beginning-of-sequence token
    (``<eos>`` for words, byte 0, ``<|endoftext|>`` for the BPEs), a fixed first token for attention sinks."""

    data: str = "ptb"
    tokenizer: Literal["word", "byte", "gpt2", "bpe", "model"] = "word"
    vocab_size: int = 0
    seq_len: int = 128
    eval_tokens: int = 0
    cache: bool = True
    bos: bool = False

    RANGES: ClassVar[dict[str, str]] = {"vocab_size": "[0, inf)", "seq_len": "[1, inf)", "eval_tokens": "[0, inf)"}

    def check(self) -> None:
        if not self.data.strip():
            raise ConfigError("lm.data is empty: give a corpus (ptb, imdb, shakespeare, kjv) or a folder of text files")
        if self.tokenizer == "model" and self.vocab_size:
            raise ConfigError(f"lm.vocab_size={self.vocab_size}: lm.tokenizer=model uses the vocabulary of the "
                              "tokenizer saved with the model; leave lm.vocab_size at 0")
        try:
            if self.tokenizer != "model":
                tokenizer_key(self.tokenizer, self.vocab_size)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if self.bos and self.seq_len < 2:
            raise ConfigError(f"lm.seq_len={self.seq_len} leaves no room for text after the BOS token (lm.bos=true); "
                              "it must be >= 2")


@dataclass(kw_only=True)
class TrainConfig:
    """Everything that defines a run. ``task`` (``gatelab.train.tasks.TASKS``) picks the data and the model: its
    data config is the field of the same name (``mqar``, ``lm``, ``listops``, ``lra_text``, ``pathfinder``,
    ``lra_image``, ``selective_copying``, ``induction_heads``, ``forecast``; the others are ignored), the model's
    layers are ``model`` and its head ``classifier`` (the ``lra-*`` tasks) or ``forecaster`` (``forecast``).
    ``max_steps`` optimiser steps of ``batch_size`` examples, evaluation every ``eval_every`` steps (and at the
    end), early stop once the test accuracy of an accuracy task (MQAR, the synthetic next-token tasks) reaches
    ``target_accuracy``.
    ``batch_size`` is the global batch of one step; it is split evenly over the processes of a ``torchrun`` launch
    and then into ``grad_accum`` micro-batches per process, and the step's loss is the mean of the micro-batch
    losses, so any split of the same batch gives the same update. ``precision``: ``auto`` trains under bf16
    autocast on GPUs that support it and in float32 elsewhere (bf16 matmuls are slow on most CPUs). ``backend``:
    what the chunked ops run on (``gatelab.ops.use_backend``): ``auto`` flash-linear-attention's kernels on CUDA
    when installed, else gatelab's PyTorch forms; ``torch`` always those; ``fla`` the kernels or an error.
    The model's vocabulary comes from the task (``resolved()``). ``checkpoint_every`` > 0 writes a resumable
    checkpoint every that many steps; with ``keep_checkpoints`` the model weights of each are also kept as
    ``checkpoints/step-NNNNNN.safetensors`` (for ``gatelab analyze --trajectory``). A ``target_accuracy`` above 1
    never stops early. ``device``: ``cpu``, ``cuda``, ``cuda:N`` (any torch device string). ``compile`` runs
    training and evaluation through ``torch.compile`` (inductor); checkpoints and saved models are unaffected.
    ``log`` mirrors every metrics.jsonl line and the config to ``tensorboard`` (``<run>/tensorboard/``) and/or
    ``mlflow`` (a local store: ``mlflow_uri``, default ``<out>/mlruns``); see ``gatelab.train.tracking``. Neither
    changes what a run computes.

    Fine-tuning (``gatelab.train.finetune``): ``init_from`` starts the run from saved weights, a gatelab model
    folder (``config.json`` + ``model.safetensors``, written by ``save_run_model`` or ``save_pretrained``) or a
    finished lm run folder. The model is that folder's (a ``model`` field given as well, one set away from the
    defaults of TrainConfig and of ModelConfig, must agree with it; ``model.dropout`` is the run's), its vocabulary
    must be the task's (``lm.tokenizer=model`` takes the tokenizer saved with it), and ``resolved()`` records the
    sha256 of its weights file in ``init_from_sha256``, so a finished run is reused only when it started from the
    same weights (a sha256 given is checked against the file). ``tune``: what trains: ``full`` every weight,
    ``lora`` LoRA adapters (``lora``; merged into the weights of the saved model) or ``initial_state`` a learned
    initial state of each recurrent layer (``model.learned_initial_state``, saved with the model); the rest is
    frozen. ``lora`` and ``initial_state`` need ``init_from``.

    Every numeric field has a range (``RANGES``, here and in the nested configs), checked when the config is built
    (``from_dict``, ``apply_overrides``, the constructor) and again by ``resolved()``, so a config edited in place
    is checked before a run starts."""

    task: Literal["mqar", "lm", "lra-listops", "lra-text", "lra-pathfinder", "lra-image", "selective-copying",
                  "induction-heads", "forecast"] = "mqar"
    mqar: MQARTaskConfig = field(default_factory=MQARTaskConfig)
    lm: LMTaskConfig = field(default_factory=LMTaskConfig)
    listops: ListOpsConfig = field(default_factory=ListOpsConfig)
    lra_text: LRATextConfig = field(default_factory=LRATextConfig)
    pathfinder: PathfinderConfig = field(default_factory=PathfinderConfig)
    lra_image: LRAImageConfig = field(default_factory=LRAImageConfig)
    selective_copying: SelectiveCopyingConfig = field(default_factory=SelectiveCopyingConfig)
    induction_heads: InductionHeadsConfig = field(default_factory=InductionHeadsConfig)
    forecast: ForecastConfig = field(default_factory=ForecastConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(n_heads=1, channel="none", short_conv=3))
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    forecaster: ForecasterConfig = field(default_factory=ForecasterConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch_size: int = 64
    grad_accum: int = 1
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    backend: Literal["auto", "torch", "fla"] = "auto"
    max_steps: int = 1000
    eval_every: int = 200
    target_accuracy: float = 0.99
    checkpoint_every: int = 0
    keep_checkpoints: bool = False
    seed: int = 0
    device: str = "cpu"
    compile: bool = False
    log: list[Literal["tensorboard", "mlflow"]] = field(default_factory=list)
    mlflow_uri: str = ""
    init_from: str = ""
    init_from_sha256: str = ""
    tune: Literal["full", "lora", "initial_state"] = "full"
    lora: LoRAConfig = field(default_factory=LoRAConfig)

    RANGES: ClassVar[dict[str, str]] = {"batch_size": "[1, inf)", "grad_accum": "[1, inf)", "max_steps": "[1, inf)",
                                        "eval_every": "[1, inf)", "target_accuracy": "[0, inf]",
                                        "checkpoint_every": "[0, inf)", "seed": "[0, 4294967295]"}

    def __post_init__(self) -> None:
        check_ranges(self)

    def check(self) -> None:
        """Rules across fields: the batch splits into the micro-batches, the device string parses, the mixer
        schedule names registered mixers and divides the layers, and ``backend=fla`` has a kernel for its mixers."""
        if self.batch_size % self.grad_accum:
            raise ConfigError(f"batch_size={self.batch_size} must split evenly into grad_accum={self.grad_accum} "
                              "micro-batches")
        try:
            torch.device(self.device)
        except RuntimeError:
            raise ConfigError(f"device={self.device!r} is not a torch device; use cpu, cuda or cuda:N") from None
        if self.task.startswith("lra-"):
            check_pooling(self.classifier, self.model)
        schedule = self.model.schedule()
        if "vig" in schedule:
            self._check_vig()
        if self.task == "forecast" and self.forecast.features == "MS" and self.forecaster.channel_independent \
                and self.forecaster.architecture == "encoder":
            raise ConfigError("forecast.features=MS feeds every variate in to predict the target, but "
                              "forecaster.channel_independent=true reads each variate alone (the target's forecast "
                              "would see only the target: features S at C times the cost); set "
                              "forecaster.channel_independent=false or forecast.features=S")
        self._check_finetune()
        if self.backend == "fla" and "mamba" in schedule:   # (its first forward would say so, after the folder starts)
            raise ConfigError("backend=fla: mamba's selective scan has no flash-linear-attention kernel; use "
                              "backend=auto (fla where it has a kernel, gatelab's PyTorch forms elsewhere) or torch")

    def _check_finetune(self) -> None:
        """``init_from`` is a language model's; ``tune`` other than full and ``lm.tokenizer=model`` need it."""
        if self.init_from and self.task != "lm":
            raise ConfigError(f"init_from applies to language models (task=lm); this is task={self.task}")
        if self.init_from_sha256 and not self.init_from:
            raise ConfigError("init_from_sha256 pins the weights of init_from, which is not set")
        if self.tune != "full" and not self.init_from:
            raise ConfigError(f"tune={self.tune} trains a part of a trained model and freezes the rest; give the "
                              "model in init_from (a saved model folder or a finished lm run)")
        if self.task == "lm" and self.lm.tokenizer == "model" and not self.init_from:
            raise ConfigError("lm.tokenizer=model takes the tokenizer saved beside the weights of init_from, which "
                              "is not set")

    def _check_vig(self) -> None:
        """ViG reads a square 2-D map: a task of square images, without a CLS token that would add a position."""
        if not self.model.bidirectional:
            raise ConfigError("model.mixer vig exists only in bidirectional form; set model.bidirectional=true (a "
                              "classifier on lra-image or lra-pathfinder), or choose a causal mixer")
        if self.task not in ("lra-image", "lra-pathfinder"):
            raise ConfigError(f"model.mixer vig reads its tokens as a square 2-D image; task {self.task} has no "
                              "image (use lra-image or lra-pathfinder, or another mixer)")
        if self.classifier.pooling == "cls":
            raise ConfigError("model.mixer vig reads its tokens as a square 2-D image, and classifier.pooling=cls "
                              "adds a token to it; use classifier.pooling=mean")

    @classmethod
    def stored(cls, path: Path) -> dict:
        """The config saved in a run's ``config.json``, with fields added to TrainConfig since it was written set
        to their defaults (so a run folder from an older version still matches the same configuration)."""
        return to_dict(from_dict(cls, json.loads(Path(path).read_text())))

    def resolved(self, vocab_size: int | None = None) -> TrainConfig:
        """A copy with the fields the task decides filled in: the model's vocabulary (a generated task's from its
        config, a corpus's from its tokenizer, passed in) and a long enough max_seq_len. With ``init_from`` the model
        is the folder's (its vocabulary checked against ``vocab_size`` when given) and ``init_from_sha256`` the
        sha256 of its weights (``gatelab.train.finetune.resolve_init_from``)."""
        check_ranges(self)
        own_vocab, longest = task_class(self.task).shape(self)
        vocab_size = own_vocab if own_vocab is not None else vocab_size
        if self.init_from:
            return resolve_init_from(self, vocab_size, longest)
        if vocab_size is None:
            raise ValueError("resolving an LM config needs the tokenizer's vocabulary size")
        model = dataclasses.replace(self.model, vocab_size=vocab_size,
                                    max_seq_len=max(self.model.max_seq_len, longest))
        return dataclasses.replace(self, model=model)


def check_device(device: str) -> None:
    """A clear error when ``device`` names an accelerator this machine does not have."""
    kind = torch.device(device)
    if kind.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r}, but CUDA is not available here (torch {torch.__version__}, "
                          f"{'a CPU-only build' if torch.version.cuda is None else 'no GPU found'}); use device=cpu")
    if kind.type == "cuda" and kind.index is not None and kind.index >= torch.cuda.device_count():
        raise ConfigError(f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if kind.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={device!r}, but MPS is not available here; use device=cpu")


def check_buildable(cfg: TrainConfig) -> None:
    """Build the task's model on the meta device (no memory, no weights) so that a mixer option or size the layers
    reject fails before any data is made or any folder is written; the error names the model settings. With
    ``init_from``: the folder's model, and ``tune``'s choices on it (LoRA targets that exist)."""
    from .tasks import task_class

    if cfg.init_from:
        cfg = cfg.resolved()
    try:
        with torch.device("meta"):
            model = task_class(cfg.task).model(cfg)
        if cfg.tune == "lora":
            lora_targets(model, cfg.lora.targets)
    except ConfigError:
        raise
    except (RuntimeError, ValueError, TypeError, ZeroDivisionError) as e:
        raise ConfigError(f"model: mixer {cfg.model.mixer!r} cannot be built with d_model={cfg.model.d_model}, "
                          f"n_heads={cfg.model.n_heads}, mixer_options={cfg.model.mixer_options}: {e}") from None
