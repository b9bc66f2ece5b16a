"""Structured-config schemas of the benchmark jobs, and their value checks.

Mirrors :mod:`experiments.core.schema`: :func:`register_configs` stores
:class:`LatencyConfig` and :class:`BenchConfig` in Hydra's ConfigStore (``conf/latency.yaml``
and ``conf/bench.yaml`` list them first), so Hydra checks types and keys at compose time.
The presets are config groups, ``conf/<job>/preset/<name>.yaml`` (``preset=<name>``):
each primary config adds ``conf/<job>`` to Hydra's search path through the
``perf_conf_dir`` resolver. :func:`resolve` turns a composed config into the dataclass,
whose ``__post_init__`` checks every value once, before any model is built; a bad one
raises :class:`ConfigError` with one line naming the setting and the allowed values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from experiments.core.labels import ADAPTER_KINDS
from experiments.core.schema import PRECISIONS, ConfigError, ModelCfg
from experiments.perf.models import CONF_DIR, meta_model, model_preset

DEVICES = ("cpu", "cuda")
#: Latency variants beside the base (``methods``).
METHOD_KINDS = (
    "lora_merged",
    "lora_unloaded",
    "lora_unmerged",
    "adapter_l",
    "adapter_h",
    "prefix_layer",
)
#: ``make_method`` names whose layers fold into W0 (``merged`` entries).
MERGEABLE = ("lora", "vera")
#: Bench sections, in run order.
SECTIONS = ("train", "memory", "checkpoint", "peft")


def presets(job: str) -> tuple[str, ...]:
    """Preset names of ``job`` (``latency``, ``bench``): ``conf/<job>/preset/*.yaml``."""
    return tuple(sorted(p.stem for p in (CONF_DIR / job / "preset").glob("*.yaml")))


# -- checks ----------------------------------------------------------------------------


def check(ok: bool, setting: str, message: str) -> None:
    """Raise ``ConfigError("invalid setting <setting>: <message>")`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"invalid setting {setting}: {message}")


def check_int(value: Any, setting: str, minimum: int) -> int:
    """``value`` as an int ≥ ``minimum`` (bools rejected)."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    check(ok, setting, f"must be an integer >= {minimum}; got {value!r}")
    return int(value)


def check_common(job: str, preset: str, device: str, dtype: str, threads: int | None) -> None:
    """The settings every perf job has: preset, device (CUDA must be present), dtype, threads."""
    names = presets(job)
    check(preset in names, "preset", f"{preset!r}; allowed: {', '.join(names)}")
    kind = str(device).split(":")[0]
    check(kind in DEVICES, "device", f"{device!r}; allowed: {', '.join(DEVICES)}")
    if kind == "cuda":
        import torch  # after the light checks

        check(torch.cuda.is_available(), "device",
              f"{device!r} but CUDA is not available; allowed: cpu")  # fmt: skip
    check(dtype in PRECISIONS, "dtype", f"{dtype!r}; allowed: {', '.join(PRECISIONS)}")
    if threads is not None:
        check_int(threads, "threads", 1)


def check_method(setting: str, name: str, settings: dict[str, Any]) -> None:
    """``lora.make_method(name, **settings)`` builds; else one line naming ``setting``."""
    from lora import make_method  # imports torch

    try:
        make_method(name, **settings)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid setting {setting}: {err}") from None


# -- latency ---------------------------------------------------------------------------


@dataclass
class LatencyConfig:
    """Settings of one latency run (``conf/latency.yaml``, ``conf/latency/preset/``).

    ``__post_init__`` checks every value and normalises the lists: ``grid`` deduplicated
    in order, ``methods`` in :data:`METHOD_KINDS` order, budgets and sizes sorted.

    Raises:
        ConfigError: one line naming the setting and the allowed values.
    """

    model: ModelCfg = field(default_factory=ModelCfg)
    preset: str = MISSING
    # {attr: value} set on the model config (tests: tiny sizes), or null. Any, not
    # Optional[dict]: OmegaConf fails to merge a command-line dict into a typed null.
    arch_overrides: Any = None
    device: str = "cpu"
    dtype: str = "fp32"
    seed: int = 0
    threads: int | None = None
    grid: list[list[int]] = MISSING  # [[batch, seq], ...]
    trials: int = MISSING
    warmup: int = MISSING
    methods: list[str] = MISSING
    adapter_budgets: list[int] = MISSING
    adapter_r: list[int] = MISSING
    # {row: {name: lora|vera, ...}}; null, not {}, when empty: Hydra merges a command-line
    # dict into a dict and struct mode refuses new keys (Any: as arch_overrides)
    merged: Any = None
    lora: dict[str, Any] = field(default_factory=dict)
    prefix: dict[str, Any] = field(default_factory=dict)
    name: str = MISSING
    results_dir: str = MISSING
    notes: str | None = None  # shown under the table; not part of the run's identity

    def __post_init__(self) -> None:
        check_common("latency", self.preset, self.device, self.dtype, self.threads)
        self.seed = check_int(self.seed, "seed", 0)
        self.trials = check_int(self.trials, "trials", 1)
        self.warmup = check_int(self.warmup, "warmup", 0)
        config = meta_model(self.model, self.arch_overrides).config
        bad = [m for m in self.methods if m not in METHOD_KINDS]
        check(not bad, "methods", f"{bad}; allowed: {', '.join(METHOD_KINDS)}")
        budgets = [check_int(b, "adapter_budgets", 1) for b in self.adapter_budgets]
        sizes = [check_int(r, "adapter_r", 1) for r in self.adapter_r]
        if any(m in ADAPTER_KINDS for m in self.methods):
            check(bool(budgets or sizes), "adapter_budgets",
                  "adapter methods need adapter_budgets or adapter_r; both are empty")  # fmt: skip
        check_method("lora", "lora", dict(self.lora))
        check_method("prefix", "prefix_layer", dict(self.prefix))
        self.merged = dict(self.merged or {})
        for row, method in self.merged.items():
            settings = dict(method or {})
            name = settings.pop("name", None)
            check(name in MERGEABLE, f"merged.{row}.name",
                  f"{name!r} does not fold into W0; allowed: {', '.join(MERGEABLE)}")  # fmt: skip
            check_method(f"merged.{row}", name, settings)
        n_v = self.prefix["l_p"] + self.prefix["l_i"] if "prefix_layer" in self.methods else 0
        grid = []
        for point in self.grid:
            check(len(point) == 2, "grid", f"entries must be [batch, seq]; got {list(point)!r}")
            b, s = check_int(point[0], "grid", 1), check_int(point[1], "grid", 1)
            check(s + n_v <= config.max_position_embeddings, "grid",
                  f"seq {s} + {n_v} prefix tokens exceeds the model's "
                  f"{config.max_position_embeddings} positions")  # fmt: skip
            grid.append((b, s))
        check(bool(grid), "grid", "must list at least one [batch, seq]")
        self.grid = [list(p) for p in dict.fromkeys(grid)]
        self.methods = [m for m in METHOD_KINDS if m in self.methods]
        self.adapter_budgets = sorted(set(budgets))
        self.adapter_r = sorted(set(sizes))
        self.arch_overrides = dict(self.arch_overrides or {})

    def record_settings(self) -> dict[str, Any]:
        """The record's ``settings``: every setting but ``notes``, the model as its name
        and preset ``arch`` (the keys, and so the run ids, of the records before it)."""
        out = {k: v for k, v in asdict(self).items() if k not in ("model", "notes")}
        return {**out, "model": self.model.name, "arch": dict(self.model.arch)}


# -- bench -----------------------------------------------------------------------------


@dataclass
class BenchConfig:
    """Settings of one efficiency run (``conf/bench.yaml``, ``conf/bench/preset/``).

    A chosen ``model`` group (e.g. ``model=smollm2-135m``) replaces ``models`` and
    ``peft_model``. ``__post_init__`` checks every value; ``sections`` end in
    :data:`SECTIONS` order.

    Raises:
        ConfigError: one line naming the setting and the allowed values.
    """

    model: ModelCfg | None = None
    preset: str = MISSING
    models: list[str] = MISSING  # conf/model/<name>.yaml, LoRA vs full FT
    peft_model: str = MISSING  # our LoRA vs peft's
    arch_overrides: Any = None  # {attr: value} on every model config, or null (see latency)
    device: str = "cpu"
    dtype: str = "fp32"
    seed: int = 0
    threads: int | None = None
    batch: int = MISSING
    seq: int = MISSING
    trials: int = MISSING
    warmup: int = MISSING
    memory_steps: int = MISSING
    sections: list[str] = MISSING
    lr: float = MISSING
    lora: dict[str, dict[str, Any]] = field(default_factory=dict)  # per model_type
    name: str = MISSING
    results_dir: str = MISSING
    notes: str | None = None  # shown under the tables; not part of the run's identity

    def __post_init__(self) -> None:
        check_common("bench", self.preset, self.device, self.dtype, self.threads)
        if self.model is not None:  # the model group was chosen: that one for every section
            self.models, self.peft_model = [self.model.name], self.model.name
        bad = [x for x in self.sections if x not in SECTIONS]
        check(not bad and bool(self.sections), "sections",
              f"{bad or list(self.sections)}; allowed: {', '.join(SECTIONS)}")  # fmt: skip
        self.sections = [x for x in SECTIONS if x in self.sections]
        self.seed = check_int(self.seed, "seed", 0)
        self.batch = check_int(self.batch, "batch", 1)
        self.seq = check_int(self.seq, "seq", 2)
        self.trials = check_int(self.trials, "trials", 1)
        self.warmup = check_int(self.warmup, "warmup", 1)  # AdamW state must exist first
        self.memory_steps = check_int(self.memory_steps, "memory_steps", 1)
        self.lr = float(self.lr)
        check(self.lr > 0, "lr", f"must be > 0; got {self.lr}")
        self.arch_overrides = dict(self.arch_overrides or {})
        self.models = list(self.models)
        needs_models = any(x in self.sections for x in ("train", "memory", "checkpoint"))
        check(bool(self.models) or not needs_models, "models", "must list at least one model")
        for name, setting in (*((m, "models") for m in self.models),
                              (self.peft_model, "peft_model")):  # fmt: skip
            config = self.arch(name, setting)
            check(self.seq <= config.max_position_embeddings - 2, "seq",
                  f"{self.seq} exceeds {name}'s {config.max_position_embeddings - 2} "
                  "usable positions")  # fmt: skip
            check_method(f"lora.{config.model_type}", "lora", self.lora_for(config.model_type))
        if "peft" in self.sections:
            self._check_peft_targets()

    def arch(self, name: str, setting: str = "models") -> Any:
        """The transformers config of model preset ``name`` with ``arch_overrides``."""
        return meta_model(model_preset(name, setting), self.arch_overrides).config

    def lora_for(self, model_type: str) -> dict[str, Any]:
        """The ``lora`` entry for ``model_type``; ConfigError when there is none."""
        check(model_type in self.lora, "lora",
              f"no entry for model_type {model_type!r}; have: {', '.join(self.lora)}")  # fmt: skip
        return dict(self.lora[model_type])

    def _check_peft_targets(self) -> None:
        """peft wraps whole modules: ``peft_model``'s targets must not be fused slices."""
        from lora import arch_spec, parse_targets

        config = self.arch(self.peft_model, "peft_model")
        spec = arch_spec(config.model_type)
        targets = parse_targets(self.lora_for(config.model_type)["targets"])
        fused = [t for t in targets.paper
                 if t in spec.targets and spec.targets[t].slice_index is not None]  # fmt: skip
        check(not fused, "peft_model",
              f"{self.peft_model!r}: peft wraps whole modules, not the fused {fused} slices; "
              f"use roberta-base, or lora.{config.model_type}.targets=[o]")  # fmt: skip

    def record_settings(self) -> dict[str, Any]:
        """The record's ``settings``: every setting but ``model`` and ``notes`` (the keys,
        and so the run ids, of the records before it)."""
        return {k: v for k, v in asdict(self).items() if k not in ("model", "notes")}


# -- registration ----------------------------------------------------------------------


def register_configs() -> None:
    """Store the schemas as ``latency_schema`` / ``bench_schema`` in Hydra's ConfigStore,
    and the ``perf_conf_dir`` resolver (``conf/<job>``, for the preset groups' search
    path). Idempotent; call before composing ``conf/latency.yaml`` or ``conf/bench.yaml``."""
    cs = ConfigStore.instance()
    cs.store(name="latency_schema", node=LatencyConfig)
    cs.store(name="bench_schema", node=BenchConfig)
    OmegaConf.register_new_resolver("perf_conf_dir", lambda job: str(CONF_DIR / job),
                                    replace=True)  # fmt: skip


def resolve(cfg: DictConfig) -> LatencyConfig | BenchConfig:
    """The validated dataclass of a composed ``conf/latency.yaml`` or ``conf/bench.yaml``.

    Raises:
        ConfigError: one line naming the setting and the allowed values.
    """
    return OmegaConf.to_object(cfg)  # builds the dataclass: __post_init__ checks it
