"""Training efficiency of LoRA against full fine-tuning, and of our LoRA against peft's.

    python -m experiments.bench                          # CPU default (~8 min, 2 cores)
    python -m experiments.bench preset=gpu device=cuda   # GPU sizes, 50 trials

Sections (``sections=[...]`` picks a subset), all on random weights:

* ``train``: time of one training step (forward + backward + AdamW step) at the same
  batch, LoRA against full fine-tuning, per model (GPT-2 medium, RoBERTa-base); the
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

Writes ``results/tables/<name>.md`` and ``.csv`` (figures and ratios) and a JSON
record under ``results/runs/bench/``.

Errors: a bad setting stops with one line naming it and the allowed values.
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from experiments.core.records import SCHEMA_VERSION, provenance, write_atomic
from experiments.core.schema import ConfigError
from experiments.core.training import peak_memory, reset_peak_memory
from experiments.perf.timing import (
    Stats,
    build_model,
    check,
    check_int,
    fmt_bytes,
    fmt_ratio,
    hardware,
    hardware_line,
    interleave,
    load_arch,
    md_table,
    paired_ratio,
    resolve_device,
    resolve_dtype,
    select_device,
    settings_hash,
    synchronize,
    write_table,
)
from lora import arch_spec, count_parameters, make_method, merge_lora, save_adapter

log = logging.getLogger("experiments.bench")

PRESETS = ("cpu", "gpu")
SECTIONS = ("train", "memory", "checkpoint", "peft")
METHODS = ("full_ft", "lora")
#: The issue's targets: (figure, bound), each met when the ratio is at most the bound.
TARGETS = {
    "train_step": ("LoRA / full FT training step time", 0.75),
    "memory": ("LoRA / full FT peak training memory (GPT-2, small batch)", 0.5),
    "peft_forward": ("our unmerged LoRA forward / peft's", 1.0),
    "peft_train": ("our LoRA training step / peft's", 1.0),
}


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
    check(c["preset"] in PRESETS, "preset", f"{c['preset']!r}; allowed: {', '.join(PRESETS)}")
    preset = c["presets"][c["preset"]]
    pick = {k: preset[k] if c.get(k) is None else c[k] for k in preset}
    resolve_device(c["device"])
    resolve_dtype(c["dtype"])
    threads = c.get("threads")
    if threads is not None:
        check_int(threads, "threads", 1)
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
        threads=threads,
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
        fused = [
            t
            for t in lora_settings(s, config.model_type)["targets"]
            if spec.targets[t].slice_index is not None
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
    """Random training batch: token ids, mask and labels (LM labels for GPT-2, classes else).

    Shapes: ``input_ids``/``attention_mask`` (batch, seq); ``labels`` (batch, seq) or (batch,).
    """
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, config.vocab_size, (batch, seq), generator=g)  # skip special ids
    if config.model_type == "gpt2":
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
    if s.threads:
        torch.set_num_threads(s.threads)
    device, dtype = resolve_device(s.device), resolve_dtype(s.dtype)
    select_device(device)
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
    kwargs = {"timer": timer} if timer is not None else {}
    times = interleave(fns, s.trials, s.warmup, device, seed=s.seed, **kwargs)
    out = {"reference": reference, "times_ms": times, "stats": {}, "ratio": {}}
    for name, samples in times.items():
        out["stats"][name] = Stats.of(samples).as_dict()
        out["ratio"][name] = paired_ratio(samples, times[reference])
    return out


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
        target_modules=[spec.targets[t].path for t in cfg["targets"]],
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
    """The issue's efficiency targets evaluated on the measured ratios."""
    out = []
    for m in record["models"]:
        if "train" in m:
            out.append(_target("train_step", m["model"], *m["train"]["ratio"]["lora"]))
    for m in record["memory"]:
        if m["method"] == "lora" and m["model_type"] == "gpt2":
            out.append(_target("memory", m["model"], m["ratio"], 0.0))
    p = record.get("peft")
    if p:
        out.append(_target("peft_forward", p["model"], *p["forward_unmerged"]["ratio"]["ours"]))
        out.append(_target("peft_train", p["model"], *p["train_step"]["ratio"]["ours"]))
    return out


# fmt: off
#: Columns of the efficiency CSV: one compared pair (a against b) per row.
CSV_COLUMNS = (
    "section", "model", "measure", "unit", "a", "a_value", "a_std", "a_min",
    "b", "b_value", "b_std", "b_min", "ratio", "ratio_se", "target_max", "met",
)
# fmt: on


def _mem_key(device: str) -> str:
    """Record key of the peak memory figure on ``device``."""
    return "peak_gpu_mb" if device.startswith("cuda") else "peak_rss_mb"


def _ms(stats: dict[str, float]) -> str:
    return f"{stats['mean']:.1f}±{stats['std']:.1f}"


def _side(prefix: str, name: str, value: dict[str, float] | float) -> dict[str, Any]:
    """CSV cells of one compared side: timing stats (ms) or a single number."""
    if isinstance(value, dict):
        return {
            prefix: name,
            f"{prefix}_value": round(value["mean"], 3),
            f"{prefix}_std": round(value["std"], 3),
            f"{prefix}_min": round(value["min"], 3),
        }
    return {prefix: name, f"{prefix}_value": value}


def _csv_row(
    section: str,
    model: str,
    measure: str,
    unit: str,
    a: tuple,
    b: tuple,
    ratio: float,
    se: float | None = None,
    target: dict | None = None,
) -> dict:
    """One CSV row: ``a`` and ``b`` are (name, stats or value)."""
    row = {
        "section": section,
        "model": model,
        "measure": measure,
        "unit": unit,
        **_side("a", *a),
        **_side("b", *b),
        "ratio": ratio,
        "ratio_se": se,
    }
    if target:
        row.update(target_max=target["bound"], met=target["met"])
    return row


def _method_label(method: str, lora: dict[str, Any]) -> str:
    if method == "full_ft":
        return "Full FT"
    return f"LoRA (r={lora['r']}, α={lora['lora_alpha']}, {','.join(lora['targets'])})"


def _train_memory_section(record: dict, targets: dict) -> tuple[list[str], list[dict]]:
    s = record["settings"]
    cuda = s["device"].startswith("cuda")
    mem_name, mem_key = ("peak GPU allocated" if cuda else "peak RSS"), _mem_key(s["device"])
    train = {m["model"]: m for m in record["models"] if "train" in m}
    mem = {(m["model"], m["method"]): m for m in record["memory"]}
    types = {m["model"]: m["model_type"] for m in record["models"] + record["memory"]}
    names = [n for n in types if n in train or (n, "lora") in mem]
    if not names:
        return [], []
    table, rows = [], []
    for name in names:
        t = train[name]["train"] if name in train else None
        for method in METHODS:
            m = mem.get((name, method))
            lora = method == "lora"
            table.append(
                [
                    name,
                    _method_label(method, s["lora"][types[name]]),
                    _ms(t["stats"][method]) if t else "",
                    fmt_ratio(*t["ratio"]["lora"]) if t and lora else "",
                    f"{m[mem_key]:.0f}" if m else "",
                    f"{m['ratio']:.3f}" if m and lora else "",
                ]
            )
        if t:
            rows.append(
                _csv_row(
                    "train",
                    name,
                    "training step",
                    "ms",
                    ("lora", t["stats"]["lora"]),
                    ("full_ft", t["stats"]["full_ft"]),
                    *t["ratio"]["lora"],
                    targets.get(("train_step", name)),
                )
            )
        if (name, "lora") in mem:
            lo, ft = mem[(name, "lora")], mem[(name, "full_ft")]
            rows.append(
                _csv_row(
                    "memory",
                    name,
                    mem_name,
                    "MiB",
                    ("lora", lo[mem_key]),
                    ("full_ft", ft[mem_key]),
                    lo["ratio"],
                    target=targets.get(("memory", name)),
                )
            )
    how = (
        "`torch.cuda.max_memory_allocated`"
        if cuda
        else "peak resident set size (VmHWM), which includes the Python and torch runtime "
        "(a few hundred MiB) in both methods"
    )
    md = ["", f"## Training step time and {mem_name}", ""]
    md += md_table(
        ["Model", "Method", "Step time (ms)", "LoRA / FT", f"{mem_name} (MiB)", "LoRA / FT"], table
    )
    md += [
        "",
        f"Memory: each (model, method) in a fresh process, {s['memory_steps']} training "
        f"step(s) after the model is built; {how}.",
    ]
    return md, rows


def _checkpoint_section(record: dict, targets: dict) -> tuple[list[str], list[dict]]:
    s = record["settings"]
    table, rows = [], []
    for m in record["models"]:
        if "checkpoint" not in m:
            continue
        c = m["checkpoint"]
        ratio = c["lora"]["bytes"] / c["full_ft"]["bytes"]
        for method in METHODS:
            p = c[method]["params"]
            table.append(
                [
                    m["model"],
                    _method_label(method, s["lora"][m["model_type"]]),
                    f"{p['method']:,}",
                    f"{p['trainable']:,}",
                    f"{p['total']:,}",
                    fmt_bytes(c[method]["bytes"]),
                    f"{ratio:.2e}" if method == "lora" else "",
                ]
            )
        a, b = c["lora"]["params"]["trainable"], c["full_ft"]["params"]["trainable"]
        rows.append(
            _csv_row(
                "checkpoint",
                m["model"],
                "trainable parameters",
                "params",
                ("lora", a),
                ("full_ft", b),
                a / b,
            )
        )
        rows.append(
            _csv_row(
                "checkpoint",
                m["model"],
                "checkpoint size",
                "bytes",
                ("lora", c["lora"]["bytes"]),
                ("full_ft", c["full_ft"]["bytes"]),
                ratio,
            )
        )
    if not table:
        return [], []
    md = ["", "## Trainable parameters and checkpoint size", ""]
    md += md_table(
        [
            "Model",
            "Method",
            "Trainable (paper count)",
            "Trainable (with head)",
            "Total",
            "Checkpoint on disk",
            "LoRA / FT",
        ],
        table,
    )
    md += [
        "",
        "LoRA: `lora.save_adapter` (trainable tensors as safetensors + JSON config); "
        "full FT: `save_pretrained` (safetensors). The paper's example (§4.2): GPT-3 175B, "
        "350 GB -> 35 MB with r=4 on W_q, W_v (ratio 1.0e-04). The paper count leaves out "
        "the task head, which every method trains.",
    ]
    return md, rows


def _peft_section(record: dict, targets: dict) -> tuple[list[str], list[dict]]:
    p = record.get("peft")
    if not p:
        return [], []
    lo = p["lora"]
    table, rows = [], []
    measures = (
        ("forward_unmerged", "forward, unmerged (eval)", "peft_forward"),
        ("train_step", "training step", "peft_train"),
        ("forward_merged", "forward, merged (eval)", None),
    )
    for key, what, target in measures:
        st = p[key]["stats"]
        table.append(
            [
                what,
                _ms(st["ours"]),
                _ms(st["peft"]),
                fmt_ratio(*p[key]["ratio"]["ours"]),
                _ms(st["base"]) if "base" in st else "",
            ]
        )
        rows.append(
            _csv_row(
                "peft",
                p["model"],
                what,
                "ms",
                ("ours", st["ours"]),
                ("peft", st["peft"]),
                *p[key]["ratio"]["ours"],
                targets.get((target, p["model"])),
            )
        )
    md = [
        "",
        f"## Our LoRA vs peft {p['peft']} ({p['model']}, r={lo['r']}, "
        f"α={lo['lora_alpha']}, {','.join(lo['targets'])})",
        "",
    ]
    md += md_table(["Measure", "Ours (ms)", "peft (ms)", "ours / peft", "base model (ms)"], table)
    md += [
        "",
        "Same base weights, rank, α, dropout and modules; both train the task head. "
        "Merged: ours `lora.merge_lora`, peft `merge_adapter()` (wrappers kept in both).",
    ]
    return md, rows


def render(record: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """Markdown tables and CSV rows (dicts keyed by :data:`CSV_COLUMNS`) of a record."""
    s, hw = record["settings"], record["hardware"]
    md = ["# Training efficiency: LoRA vs full fine-tuning, and our LoRA vs peft's", ""]
    md.append(
        f"Random weights, {s['dtype']}, batch {s['batch']} × sequence {s['seq']}, AdamW, on "
        f"{hardware_line(hw)}. Times are mean±std over {s['trials']} timed rounds after "
        f"{s['warmup']} warm-up round(s), the compared runs interleaved in one process in a "
        "random order each round; time ratios are the median of the per-round ratios ± its "
        "standard error."
    )
    targets = {(t["key"], t["where"]): t for t in record["targets"]}
    rows: list[dict[str, Any]] = []
    for section in (_train_memory_section, _checkpoint_section, _peft_section):
        lines, section_rows = section(record, targets)
        md += lines
        rows += section_rows
    md += ["", "## Targets", ""]
    md += md_table(
        ["Target", "Where", "Measured", "Met"],
        [
            [t["target"], t["where"], t["figure"], "yes" if t["met"] else "**no**"]
            for t in record["targets"]
        ],
    )
    if record.get("notes"):
        md += ["", "## Notes", "", record["notes"].strip()]
    return "\n".join(md) + "\n", rows


def write_outputs(record: dict[str, Any], results_dir: Path) -> list[Path]:
    """Write the tables (.md, .csv) and the JSON record; returns their paths."""
    name = record["settings"]["name"]
    tables = results_dir / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    write_table(tables, name, *render(record), CSV_COLUMNS)
    run_path = results_dir / "runs" / "bench" / f"{record['run_id']}.json"
    write_atomic(run_path, record)
    return [tables / f"{name}.md", tables / f"{name}.csv", run_path]


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
    device, dtype = resolve_device(s.device), resolve_dtype(s.dtype)
    select_device(device)
    if s.threads:
        torch.set_num_threads(s.threads)
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
            key = _mem_key(s.device)
            lora, ft = memory[-1], memory[-2]
            lora["ratio"] = lora[key] / ft[key]
    peft_result = bench_peft(s, device, dtype, timer) if "peft" in s.sections else None
    rid = f"{s.name}-{s.preset}-{device.type}-{s.dtype}-{settings_hash(settings)}"
    record = {
        "schema_version": SCHEMA_VERSION,
        "run_id": rid,
        "experiment": "bench",
        "status": "ok",
        "task": None,
        "model": ",".join(s.models),
        "settings": settings,
        "models": models,
        "memory": memory,
        "peft": peft_result,
        "hardware": hardware(device),
        "provenance": provenance(),
        "notes": cfg.notes,
    }
    record["targets"] = check_targets(record)
    return record, write_outputs(record, Path(s.results_dir))


@hydra.main(version_base="1.3", config_path="../../conf", config_name="bench")
def main(cfg: DictConfig) -> None:
    try:
        record, paths = run(cfg)
    except ConfigError as err:
        sys.exit(f"error: {err}")
    for t in record["targets"]:
        log.info("target %s (%s): %s -> %s", t["target"], t["where"], t["figure"], t["met"])
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
