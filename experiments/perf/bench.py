"""Training efficiency of LoRA against full fine-tuning, and of our LoRA against peft's.

    python -m experiments.bench                          # CPU default (~8 min, 2 cores)
    python -m experiments.bench preset=gpu device=cuda   # GPU sizes, 50 trials

Sections (``sections=[...]`` picks a subset), all on random weights:

* ``train``: time of one training step (forward + backward + AdamW step) at the same
  batch, LoRA against full fine-tuning, per model (GPT-2 medium, RoBERTa-base; or one
  ``model=`` preset such as ``smollm2-135m``, a Llama: causal LMs train on LM labels); the
  two run round-robin in one process (:func:`experiments.perf.timing.interleave`).
* ``memory``: peak training memory of each (model, method), each measured in a fresh
  process (spawned, so nothing else is resident): peak RSS (``VmHWM``) on CPU, peak
  ``torch.cuda.max_memory_allocated`` on GPU, after ``memory_steps`` steps.
* ``checkpoint``: trainable parameters and bytes on disk, ``lora.save_adapter``
  against ``save_pretrained`` (safetensors); the paper's GPT-3 figure is 350 GB ->
  35 MB (§4.2).
* ``peft``: our LoRA against peft's on the same model, rank and modules: unmerged
  forward (eval, no grad), training step, and merged forward (ours ``merge_lora``,
  peft ``merge_adapter``), beside the base.

Writes a JSON record under ``results/runs/bench/``, then builds its tables as ``make
tables`` does (``python -m experiments.tables --experiment bench`` in a child process:
:mod:`experiments.report.efficiency_tables` renders it) to ``results/tables/<name>.md``
and ``.csv`` (figures and ratios).

Errors: a bad setting stops with one line naming it and the allowed values.
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from experiments.core.labels import METHODS, fmt_ratio, peak_key
from experiments.core.schema import ConfigError
from experiments.core.training import peak_memory, reset_peak_memory
from experiments.perf.timing import (
    build_model,
    check,
    check_int,
    compare,
    is_causal,
    load_arch,
    perf_record,
    publish,
    resolve_common,
    setup,
    synchronize,
)
from lora import (
    ARCHITECTURES,
    arch_spec,
    count_parameters,
    lora_layers,
    make_method,
    merge_lora,
    parse_targets,
    save_adapter,
)
from lora.arch import module_name

log = logging.getLogger("experiments.bench")

PRESETS = ("cpu", "gpu")
SECTIONS = ("train", "memory", "checkpoint", "peft")
#: The efficiency targets: (figure, bound), each met when the ratio is at most the bound.
TARGETS = {
    "train_step": ("LoRA / full FT training step time", 0.75),
    "memory": ("LoRA / full FT peak training memory (decoder LM, small batch)", 0.5),
    "peft_forward": ("our unmerged LoRA forward / peft's", 1.0),
    "peft_train": ("our LoRA training step / peft's", 1.0),
}

#: Model types whose memory ratio is checked against the target (the paper's GPT LMs).
CAUSAL_TYPES = tuple(t for t, spec in ARCHITECTURES.items() if spec.causal)


# -- settings --------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Validated settings of one benchmark run (see ``conf/bench.yaml``)."""

    preset: str
    models: tuple[str, ...]
    peft_model: str
    arch_overrides: dict[str, Any]
    device: str
    dtype: str
    seed: int
    threads: int | None
    batch: int
    seq: int
    trials: int
    warmup: int
    memory_steps: int
    sections: tuple[str, ...]
    lr: float
    lora: dict[str, dict[str, Any]]
    name: str
    results_dir: str


def lora_settings(s: Settings, model_type: str) -> dict[str, Any]:
    """The ``lora`` entry for ``model_type``; raises ConfigError when there is none."""
    check(
        model_type in s.lora,
        "lora",
        f"no entry for model_type {model_type!r}; have: {', '.join(s.lora)}",
    )
    return dict(s.lora[model_type])


def resolve(cfg: DictConfig) -> Settings:
    """Fill unset settings from the preset and check every value.

    Raises:
        ConfigError: one line naming the setting and the allowed values.
    """
    c = OmegaConf.to_container(cfg, resolve=True)
    pick = resolve_common(c, PRESETS)
    if c.get("model"):  # the model group was chosen: that one preset for every section
        c["models"], c["peft_model"] = [c["model"]["name"]], c["model"]["name"]
    sections = list(c["sections"])
    bad = [x for x in sections if x not in SECTIONS]
    check(
        not bad and bool(sections), "sections", f"{bad or sections}; allowed: {', '.join(SECTIONS)}"
    )
    s = Settings(
        preset=c["preset"],
        models=tuple(c["models"]),
        peft_model=c["peft_model"],
        arch_overrides=dict(c["arch_overrides"] or {}),
        device=c["device"],
        dtype=c["dtype"],
        seed=check_int(c["seed"], "seed", 0),
        threads=c.get("threads"),
        batch=check_int(pick["batch"], "batch", 1),
        seq=check_int(pick["seq"], "seq", 2),
        trials=check_int(pick["trials"], "trials", 1),
        warmup=check_int(pick["warmup"], "warmup", 1),  # AdamW state must exist before timing
        memory_steps=check_int(c["memory_steps"], "memory_steps", 1),
        sections=tuple(x for x in SECTIONS if x in sections),
        lr=float(c["lr"]),
        lora={k: dict(v) for k, v in c["lora"].items()},
        name=str(pick["name"]),
        results_dir=str(c["results_dir"]),
    )
    check(s.lr > 0, "lr", f"must be > 0; got {s.lr}")
    needs_models = any(x in s.sections for x in ("train", "memory", "checkpoint"))
    check(bool(s.models) or not needs_models, "models", "must list at least one model")
    for name, setting in (*((m, "models") for m in s.models), (s.peft_model, "peft_model")):
        config = load_arch(name, s.arch_overrides, setting)
        check(
            s.seq <= config.max_position_embeddings - 2,
            "seq",
            f"{s.seq} exceeds {name}'s {config.max_position_embeddings - 2} usable positions",
        )
        kwargs = lora_settings(s, config.model_type)
        try:
            make_method("lora", **kwargs)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"invalid setting lora.{config.model_type}: {err}") from None
    if "peft" in s.sections:
        config = load_arch(s.peft_model, s.arch_overrides)
        spec = arch_spec(config.model_type)
        targets = parse_targets(lora_settings(s, config.model_type)["targets"])
        fused = [
            t
            for t in targets.paper
            if t in spec.targets and spec.targets[t].slice_index is not None
        ]
        check(
            not fused,
            "peft_model",
            f"{s.peft_model!r}: peft wraps whole modules, not the fused {fused} slices; "
            f"use roberta-base, or lora.{config.model_type}.targets=[o]",
        )
    return s


# -- models and steps ------------------------------------------------------------------


def make_inputs(config: Any, batch: int, seq: int, device: torch.device, seed: int) -> dict:
    """Random training batch: token ids, mask and labels (LM labels for a decoder-only
    model, :func:`~experiments.perf.timing.is_causal`; classes else).

    Shapes: ``input_ids``/``attention_mask`` (batch, seq); ``labels`` (batch, seq) or (batch,).
    """
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, config.vocab_size, (batch, seq), generator=g)  # skip special ids
    if is_causal(config):
        labels = ids.clone()
    else:
        labels = torch.randint(0, config.num_labels, (batch,), generator=g)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    return {k: v.to(device) for k, v in inputs.items()}


def adapt(model: nn.Module, method: str, s: Settings) -> nn.Module:
    """Apply ``full_ft`` or LoRA (the model type's ``lora`` settings) in place."""
    kwargs = lora_settings(s, model.config.model_type) if method == "lora" else {}
    return make_method(method, **kwargs).apply(model)


def train_step(model: nn.Module, inputs: dict, lr: float) -> Callable[[], None]:
    """A closure running forward + backward + AdamW step on the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    model.train()

    def step() -> None:
        model(**inputs).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def forward_pass(model: nn.Module, inputs: dict) -> Callable[[], Any]:
    """A closure running one eval-mode forward pass (call under ``torch.no_grad``)."""
    model.eval()
    return lambda: model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])


def memory_probe(job: dict[str, Any]) -> dict[str, Any]:
    """Peak memory of ``memory_steps`` training steps of one (model, method), MiB.

    Runs in a fresh spawned process so that only this model is resident. The peak is
    reset after the model is built, so it covers weights, gradients, optimizer state
    and activations but not the transient cost of random initialisation.

    Args:
        job: ``{"settings": asdict(Settings), "model": name, "method": full_ft|lora}``.

    Returns:
        ``{"peak_rss_mb", "peak_gpu_mb", "built_rss_mb"}`` (GPU None on CPU).
    """
    s = Settings(**job["settings"])
    device, dtype = setup(s)
    config = load_arch(job["model"], s.arch_overrides)
    model = adapt(build_model(config, device, dtype, s.seed), job["method"], s)
    step = train_step(model, make_inputs(config, s.batch, s.seq, device, s.seed), s.lr)
    synchronize(device)
    built = peak_memory()["peak_rss_mb"]
    reset_peak_memory()
    for _ in range(s.memory_steps):
        step()
    synchronize(device)
    return {**peak_memory(), "built_rss_mb": built}


def in_fresh_process(fn: Callable[[dict], dict], job: dict) -> dict:
    """``fn(job)`` in a new spawned interpreter (nothing inherited from this one)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, job).result()


def dir_bytes(path: Path) -> int:
    """Total size of the files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def checkpoint_sizes(models: dict[str, nn.Module], s: Settings) -> dict[str, dict[str, Any]]:
    """Parameter counts and on-disk checkpoint bytes per method.

    LoRA: :func:`lora.save_adapter` (trainable tensors + JSON config); full FT:
    ``save_pretrained`` (safetensors, tied weights once).
    """
    out = {}
    with tempfile.TemporaryDirectory(prefix="lora-bench-") as tmp:
        for method, model in models.items():
            folder = Path(tmp) / method
            if method == "lora":
                cfg = lora_settings(s, model.config.model_type)
                save_adapter(model, folder, make_method("lora", **cfg))
            else:
                model.save_pretrained(folder)
            out[method] = {"params": count_parameters(model).as_dict(), "bytes": dir_bytes(folder)}
    return out


def timed_pair(
    fns: dict[str, Callable[[], Any]], s: Settings, device: torch.device, reference: str, timer=None
) -> dict[str, Any]:
    """Interleave ``fns``; stats per name and the paired ratio of each to ``reference``."""
    timed = compare(fns, s.trials, s.warmup, device, s.seed, reference, timer)
    return {
        "reference": reference,
        "times_ms": {name: t["times_ms"] for name, t in timed.items()},
        "stats": {name: t["stats"] for name, t in timed.items()},
        "ratio": {name: t["ratio"] for name, t in timed.items()},
    }


# -- sections --------------------------------------------------------------------------


def bench_model(name: str, s: Settings, device, dtype, timer=None) -> dict[str, Any]:
    """``train`` and ``checkpoint`` sections for one model: LoRA vs full fine-tuning."""
    config = load_arch(name, s.arch_overrides)
    log.info("%s: building full-FT and LoRA copies", name)
    full = adapt(build_model(config, device, dtype, s.seed), "full_ft", s)
    models = {"full_ft": full, "lora": adapt(copy.deepcopy(full), "lora", s)}
    out: dict[str, Any] = {
        "model": name,
        "model_type": config.model_type,
        "lora": lora_settings(s, config.model_type),
    }
    if "checkpoint" in s.sections:
        out["checkpoint"] = checkpoint_sizes(models, s)
    if "train" in s.sections:
        inputs = make_inputs(config, s.batch, s.seq, device, s.seed)
        steps = {m: train_step(model, inputs, s.lr) for m, model in models.items()}
        log.info("%s: timing training steps, %d rounds + %d warm-up", name, s.trials, s.warmup)
        out["train"] = timed_pair(steps, s, device, "full_ft", timer)
    return out


def bench_peft(s: Settings, device, dtype, timer=None) -> dict[str, Any] | None:
    """``peft`` section: our LoRA against peft's on ``s.peft_model``; None without peft."""
    try:
        import peft
    except ImportError:
        log.warning("peft is not installed; skipping the peft comparison")
        return None
    config = load_arch(s.peft_model, s.arch_overrides)
    spec = arch_spec(config.model_type)
    cfg = lora_settings(s, config.model_type)
    base = build_model(config, device, dtype, s.seed)
    ours = make_method("lora", **cfg).apply(copy.deepcopy(base))
    head = [h for h in spec.head if any(n.split(".")[-1] == h for n, _ in base.named_modules())]
    peft_cfg = peft.LoraConfig(
        r=cfg["r"],
        lora_alpha=cfg["lora_alpha"],
        lora_dropout=cfg.get("lora_dropout", 0.0),
        # exactly the modules ours wrapped, whatever form ``targets`` took
        target_modules=[module_name(ours, layer) for layer in lora_layers(ours)],
        fan_in_fan_out=spec.fan_in_fan_out,
        modules_to_save=head or None,
    )
    theirs = peft.get_peft_model(copy.deepcopy(base), peft_cfg)
    inputs = make_inputs(config, s.batch, s.seq, device, s.seed)
    out: dict[str, Any] = {"model": s.peft_model, "lora": cfg, "peft": peft.__version__}
    log.info("peft: timing unmerged forward, training step, merged forward")
    with torch.no_grad():
        fwd = {
            k: forward_pass(m, inputs)
            for k, m in (("base", base), ("ours", ours), ("peft", theirs))
        }
        out["forward_unmerged"] = timed_pair(fwd, s, device, "peft", timer)
    steps = {"ours": train_step(ours, inputs, s.lr), "peft": train_step(theirs, inputs, s.lr)}
    out["train_step"] = timed_pair(steps, s, device, "peft", timer)
    merge_lora(ours)
    theirs.merge_adapter()
    with torch.no_grad():
        fwd = {
            k: forward_pass(m, inputs)
            for k, m in (("base", base), ("ours", ours), ("peft", theirs))
        }
        out["forward_merged"] = timed_pair(fwd, s, device, "peft", timer)
    return out


# -- targets and outputs ---------------------------------------------------------------


def _target(key: str, where: str, ratio: float, se: float) -> dict[str, Any]:
    figure, bound = TARGETS[key]
    met = ratio <= bound
    note = "" if met or ratio - 2 * se > bound else " (within 2 SE of the bound)"
    return {
        "key": key,
        "target": f"{figure} ≤ {bound:.2f}",
        "bound": bound,
        "where": where,
        "figure": fmt_ratio(ratio, se) + note,
        "met": met,
    }


def check_targets(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The efficiency targets evaluated on the measured ratios."""
    out = []
    for m in record["models"]:
        if "train" in m:
            out.append(_target("train_step", m["model"], *m["train"]["ratio"]["lora"]))
    for m in record["memory"]:
        if m["method"] == "lora" and m["model_type"] in CAUSAL_TYPES:
            out.append(_target("memory", m["model"], m["ratio"], 0.0))
    p = record.get("peft")
    if p:
        out.append(_target("peft_forward", p["model"], *p["forward_unmerged"]["ratio"]["ours"]))
        out.append(_target("peft_train", p["model"], *p["train_step"]["ratio"]["ours"]))
    return out


# -- entry point -----------------------------------------------------------------------


def run(cfg: DictConfig, timer=None) -> tuple[dict[str, Any], list[Path]]:
    """Validate, run the chosen sections and write the outputs.

    Args:
        cfg: the composed ``conf/bench.yaml``.
        timer: replaces :func:`experiments.perf.timing.time_call` (tests).

    Returns:
        The record and the written paths.

    Raises:
        ConfigError: a bad setting, before any model is built.
    """
    s = resolve(cfg)
    device, dtype = setup(s)
    settings = asdict(s)
    models = []
    if "train" in s.sections or "checkpoint" in s.sections:
        for name in s.models:
            models.append(bench_model(name, s, device, dtype, timer))
    memory = []
    if "memory" in s.sections:
        for name in s.models:
            for method in METHODS:
                log.info("%s %s: peak memory in a fresh process", name, method)
                peak = in_fresh_process(
                    memory_probe, {"settings": settings, "model": name, "method": method}
                )
                memory.append(
                    {
                        "model": name,
                        "method": method,
                        "model_type": load_arch(name, s.arch_overrides).model_type,
                        **peak,
                    }
                )
            key = peak_key(s.device)
            lora, ft = memory[-1], memory[-2]
            lora["ratio"] = lora[key] / ft[key]
    peft_result = bench_peft(s, device, dtype, timer) if "peft" in s.sections else None
    record = perf_record("bench", s, device, cfg.notes, model=",".join(s.models),
                         models=models, memory=memory, peft=peft_result)  # fmt: skip
    record["targets"] = check_targets(record)
    return record, publish(record, Path(s.results_dir))
