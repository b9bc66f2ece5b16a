"""Structured-config schema of a run, and value checks that run before any model loads.

Hydra validates types against these dataclasses at compose time (``conf/config.yaml``
lists ``base_config`` first); :func:`validate` then checks values (r ≥ 1, known
targets, known task ...) and raises :class:`ConfigError` with a one-line message
naming the setting and the allowed values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from lora.methods import MethodConfig, make_method

PRECISIONS = ("fp32", "fp16", "bf16")
MODEL_SOURCES = ("hub", "package")
LOGGERS = ("wandb",)
SCHEDULERS = ("linear", "constant", "cosine")
#: keys of ``task.decode`` (E2E beam search; conf/task/e2e.yaml)
DECODE_KEYS = (
    "num_beams",
    "length_penalty",
    "no_repeat_ngram_size",
    "max_new_tokens",
    "batch_size",
    "max_mrs",
)


class ConfigError(ValueError):
    """A setting has a bad value; the message is one line naming it."""


@dataclass
class ModelCfg:
    name: str = MISSING
    pretrained: str = MISSING  # Hub id, or the package holding the weights
    source: str = "hub"  # hub | package
    arch: dict[str, Any] = field(default_factory=dict)  # config dims for meta-device builds


@dataclass
class TaskCfg:
    name: str = MISSING
    family: str = "glue"
    # E2E only (GLUE leaves them unset): reference/MR pre-tokenization, beam search settings
    pretokenize: bool = False
    decode: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainCfg:
    lr: float = 5e-4
    epochs: int = 3
    batch_size: int = 32
    eval_batch_size: int = 64
    weight_decay: float = 0.1
    warmup_ratio: float = 0.06
    warmup_steps: int = 0  # overrides warmup_ratio when > 0
    lr_scheduler: str = "linear"
    max_seq_length: int = 128
    max_steps: int = -1  # > 0 stops early (debug runs)
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    label_smoothing: float = 0.0
    save_adapter: bool = False  # write the trained parameters to <output_dir>/runs/.../adapter
    init_adapter: str | None = None  # start from a saved adapter (head excluded), e.g. MNLI


@dataclass
class TrainerCfg:
    use_cpu: bool = True
    precision: str = "fp32"
    dataloader_num_workers: int = 0


@dataclass
class LoggerCfg:
    report_to: list[str] = field(default_factory=list)
    project: str = "lora-repro"
    mode: str = "auto"


@dataclass
class DataCfg:
    dir: str | None = None
    max_train_samples: int | None = None
    max_eval_samples: int | None = None


@dataclass
class PathsCfg:
    results_dir: str = "results"
    output_dir: str = "outputs"


@dataclass
class RunConfig:
    model: ModelCfg = field(default_factory=ModelCfg)
    task: TaskCfg = field(default_factory=TaskCfg)
    method: dict[str, Any] = field(default_factory=dict)
    train: TrainCfg = field(default_factory=TrainCfg)
    trainer: TrainerCfg = field(default_factory=TrainerCfg)
    logger: LoggerCfg = field(default_factory=LoggerCfg)
    data: DataCfg = field(default_factory=DataCfg)
    paths: PathsCfg = field(default_factory=PathsCfg)
    experiment_name: str = "default"
    seed: int = 42
    row: str | None = None  # a paper-table row of ``hparams`` (experiment presets)
    hparams: dict[str, Any] = field(default_factory=dict)  # row -> method + per-task settings
    notes: str | None = None  # shown under the experiment's table


def register_configs() -> None:
    """Register :class:`RunConfig` as ``base_config`` in Hydra's ConfigStore."""
    ConfigStore.instance().store(name="base_config", node=RunConfig)


def _check(ok: bool, setting: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"invalid setting {setting}: {message}")


def _validate_decode(decode: DictConfig) -> None:
    """One-line checks of ``task.decode``, the E2E beam search settings."""
    keys = sorted(decode)
    needs = ", ".join(DECODE_KEYS)
    _check(set(keys) == set(DECODE_KEYS), "task.decode", f"keys {keys}; needs exactly {needs}")

    def is_int(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    for key, low in (("num_beams", 1), ("max_new_tokens", 1), ("batch_size", 1),
                     ("no_repeat_ngram_size", 0)):  # fmt: skip
        value = decode[key]
        _check(is_int(value) and value >= low, f"task.decode.{key}",
               f"must be an integer >= {low}; got {value!r}")  # fmt: skip
    penalty = decode.length_penalty
    _check(isinstance(penalty, (int, float)) and not isinstance(penalty, bool),
           "task.decode.length_penalty", f"must be a number; got {penalty!r}")  # fmt: skip
    mrs = decode.max_mrs
    _check(mrs is None or (is_int(mrs) and mrs >= 1), "task.decode.max_mrs",
           f"must be an integer >= 1 or null; got {mrs!r}")  # fmt: skip


def validate(cfg: DictConfig, known_tasks: dict[str, Any]) -> MethodConfig:
    """Check values of a composed config; return the built method config.

    Args:
        cfg: the composed run config.
        known_tasks: task name -> task spec, over every family the harness runs.

    Raises:
        ConfigError: one line, naming the setting and the allowed values.
    """
    if cfg.row is not None:
        rows = list(cfg.hparams)
        _check(cfg.row in rows, "row", f"{cfg.row!r} is not a row of this experiment; rows: "
               f"{', '.join(rows) or 'none (this experiment has no hparams table)'}")  # fmt: skip
    _check(
        cfg.task.name in known_tasks,
        "task.name",
        f"{cfg.task.name!r} is not a known task; known: {', '.join(known_tasks)}",
    )
    _check(
        cfg.model.source in MODEL_SOURCES,
        "model.source",
        f"{cfg.model.source!r}; allowed: {', '.join(MODEL_SOURCES)}",
    )
    _check(
        cfg.trainer.precision in PRECISIONS,
        "trainer.precision",
        f"{cfg.trainer.precision!r}; allowed: {', '.join(PRECISIONS)}",
    )
    _check(
        cfg.train.lr_scheduler in SCHEDULERS,
        "train.lr_scheduler",
        f"{cfg.train.lr_scheduler!r}; allowed: {', '.join(SCHEDULERS)}",
    )
    bad_loggers = sorted(set(cfg.logger.report_to) - set(LOGGERS))
    _check(not bad_loggers, "logger.report_to", f"{bad_loggers}; allowed: {', '.join(LOGGERS)}")
    for key in ("lr", "epochs", "batch_size", "eval_batch_size", "max_seq_length"):
        _check(cfg.train[key] > 0, f"train.{key}", f"must be > 0; got {cfg.train[key]}")
    for key in ("max_train_samples", "max_eval_samples"):
        value = cfg.data[key]
        _check(value is None or value > 0, f"data.{key}", f"must be > 0 or null; got {value}")
    _check(
        0.0 <= cfg.train.label_smoothing < 1.0,
        "train.label_smoothing",
        f"must be in [0, 1); got {cfg.train.label_smoothing}",
    )
    if cfg.task.family == "e2e":
        _validate_decode(cfg.task.decode)
    method = OmegaConf.to_container(cfg.method, resolve=True)
    name = method.pop("name", None)
    try:
        return make_method(name, **method)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"invalid setting method: {err}") from None
