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
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from experiments.core.labels import METHODS, fmt_ratio, peak_key
from experiments.core.training import peak_memory, reset_peak_memory
from experiments.perf.models import build_model, is_causal, meta_model, model_preset
from experiments.perf.schema import SECTIONS as SECTIONS  # the sections, in run order
from experiments.perf.schema import BenchConfig, presets, resolve
from experiments.perf.timing import compare, perf_record, publish, setup, synchronize
from lora import (
    ARCHITECTURES,
    arch_spec,
    count_parameters,
    lora_layers,
    make_method,
    merge_lora,
    save_adapter,
)
from lora.arch import module_name

log = logging.getLogger("experiments.bench")

PRESETS = presets("bench")
#: The efficiency targets: (figure, bound), each met when the ratio is at most the bound.
TARGETS = {
    "train_step": ("LoRA / full FT training step time", 0.75),
    "memory": ("LoRA / full FT peak training memory (decoder LM, small batch)", 0.5),
    "peft_forward": ("our unmerged LoRA forward / peft's", 1.0),
    "peft_train": ("our LoRA training step / peft's", 1.0),
}

#: Model types whose memory ratio is checked against the target (the paper's GPT LMs).
CAUSAL_TYPES = tuple(t for t, spec in ARCHITECTURES.items() if spec.causal)


def meta(name: str, s: BenchConfig) -> nn.Module:
    """Model preset ``name`` with ``s.arch_overrides`` on the meta device (its ``.config``)."""
    return meta_model(model_preset(name), s.arch_overrides)


# -- models and steps ------------------------------------------------------------------


def make_inputs(config: Any, batch: int, seq: int, device: torch.device, seed: int) -> dict:
    """Random training batch: token ids, mask and labels (LM labels for a decoder-only
    model, :func:`~experiments.perf.timing.is_causal`; classes else).

    Shapes: ``input_ids``/``attention_mask`` (batch, seq); ``labels`` (batch, seq) or (batch,).
    """
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, config.vocab_size, (batch, seq), generator=g)  # skip special ids
    if is_causal(config.model_type):
        labels = ids.clone()
    else:
        labels = torch.randint(0, config.num_labels, (batch,), generator=g)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    return {k: v.to(device) for k, v in inputs.items()}


def adapt(model: nn.Module, method: str, s: BenchConfig) -> nn.Module:
    """Apply ``full_ft`` or LoRA (the model type's ``lora`` settings) in place."""
    kwargs = s.lora_for(model.config.model_type) if method == "lora" else {}
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
        job: ``{"settings": BenchConfig, "model": name, "method": full_ft|lora}``.

    Returns:
        ``{"peak_rss_mb", "peak_gpu_mb", "built_rss_mb"}`` (GPU None on CPU).
    """
    s = job["settings"]
    device, dtype = setup(s)
    built = meta(job["model"], s)
    config = built.config
    model = adapt(build_model(built, device, dtype, s.seed), job["method"], s)
    step = train_step(model, make_inputs(config, s.batch, s.seq, device, s.seed), s.lr)
    synchronize(device)
    built_rss = peak_memory()["peak_rss_mb"]
    reset_peak_memory()
    for _ in range(s.memory_steps):
        step()
    synchronize(device)
    return {**peak_memory(), "built_rss_mb": built_rss}


def in_fresh_process(fn: Callable[[dict], dict], job: dict) -> dict:
    """``fn(job)`` in a new spawned interpreter (nothing inherited from this one)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, job).result()


def dir_bytes(path: Path) -> int:
    """Total size of the files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def checkpoint_sizes(models: dict[str, nn.Module], s: BenchConfig) -> dict[str, dict[str, Any]]:
    """Parameter counts and on-disk checkpoint bytes per method.

    LoRA: :func:`lora.save_adapter` (trainable tensors + JSON config); full FT:
    ``save_pretrained`` (safetensors, tied weights once).
    """
    out = {}
    with tempfile.TemporaryDirectory(prefix="lora-bench-") as tmp:
        for method, model in models.items():
            folder = Path(tmp) / method
            if method == "lora":
                cfg = s.lora_for(model.config.model_type)
                save_adapter(model, folder, make_method("lora", **cfg))
            else:
                model.save_pretrained(folder)
            out[method] = {"params": count_parameters(model).as_dict(), "bytes": dir_bytes(folder)}
    return out


def timed_pair(
    fns: dict[str, Callable[[], Any]],
    s: BenchConfig,
    device: torch.device,
    reference: str,
    timer=None,
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


def bench_model(name: str, s: BenchConfig, device, dtype, timer=None) -> dict[str, Any]:
    """``train`` and ``checkpoint`` sections for one model: LoRA vs full fine-tuning."""
    built = meta(name, s)
    config = built.config
    log.info("%s: building full-FT and LoRA copies", name)
    full = adapt(build_model(built, device, dtype, s.seed), "full_ft", s)
    models = {"full_ft": full, "lora": adapt(copy.deepcopy(full), "lora", s)}
    out: dict[str, Any] = {
        "model": name,
        "model_type": config.model_type,
        "lora": s.lora_for(config.model_type),
    }
    if "checkpoint" in s.sections:
        out["checkpoint"] = checkpoint_sizes(models, s)
    if "train" in s.sections:
        inputs = make_inputs(config, s.batch, s.seq, device, s.seed)
        steps = {m: train_step(model, inputs, s.lr) for m, model in models.items()}
        log.info("%s: timing training steps, %d rounds + %d warm-up", name, s.trials, s.warmup)
        out["train"] = timed_pair(steps, s, device, "full_ft", timer)
    return out


def bench_peft(s: BenchConfig, device, dtype, timer=None) -> dict[str, Any] | None:
    """``peft`` section: our LoRA against peft's on ``s.peft_model``; None without peft."""
    try:
        import peft
    except ImportError:
        log.warning("peft is not installed; skipping the peft comparison")
        return None
    built = meta(s.peft_model, s)
    config = built.config
    spec = arch_spec(config.model_type)
    cfg = s.lora_for(config.model_type)
    base = build_model(built, device, dtype, s.seed)
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
                    memory_probe, {"settings": s, "model": name, "method": method}
                )
                memory.append(
                    {
                        "model": name,
                        "method": method,
                        "model_type": s.arch(name).model_type,
                        **peak,
                    }
                )
            key = peak_key(s.device)
            lora, ft = memory[-1], memory[-2]
            lora["ratio"] = lora[key] / ft[key]
    peft_result = bench_peft(s, device, dtype, timer) if "peft" in s.sections else None
    record = perf_record("bench", s, device, s.notes, model=",".join(s.models),
                         models=models, memory=memory, peft=peft_result)  # fmt: skip
    record["targets"] = check_targets(record)
    return record, publish(record, Path(s.results_dir))
