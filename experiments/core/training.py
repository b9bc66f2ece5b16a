"""What every task family shares: Trainer arguments, logging and resource readings."""

from __future__ import annotations

import contextlib
import os
import resource
import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from transformers import TrainingArguments


def training_arguments(cfg: DictConfig, output_dir: Path, **overrides: Any) -> TrainingArguments:
    """Map the ``train``, ``trainer`` and ``logger`` config nodes to ``TrainingArguments``.

    AdamW with a linear schedule and warm-up, evaluation every epoch, no checkpoint
    files unless asked for (records hold the results), as in paper §D.
    """
    t, tr = cfg.train, cfg.trainer
    args: dict[str, Any] = dict(
        output_dir=str(output_dir),
        learning_rate=t.lr,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_steps if t.warmup_steps > 0 else t.warmup_ratio,
        lr_scheduler_type=t.lr_scheduler,
        max_grad_norm=t.max_grad_norm,
        label_smoothing_factor=t.label_smoothing,
        optim="adamw_torch",
        eval_strategy="epoch",
        logging_strategy="epoch",
        save_strategy="no",
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=tr.use_cpu,
        bf16=tr.precision == "bf16",
        fp16=tr.precision == "fp16",
        dataloader_num_workers=tr.dataloader_num_workers,
        report_to=list(cfg.logger.report_to),
        run_name=output_dir.name,
        disable_tqdm=False,
    )
    args.update(overrides)
    return TrainingArguments(**args)


def setup_logger(cfg: DictConfig, run_id: str) -> None:
    """Configure wandb through environment variables (read by the HF integration).

    Offline unless ``WANDB_API_KEY`` is set or ``logger.mode`` says otherwise, so a
    machine without network or key still logs (``wandb sync`` uploads later).
    """
    if "wandb" not in cfg.logger.report_to:
        return
    mode = cfg.logger.mode
    if mode == "auto":
        mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
    os.environ["WANDB_MODE"] = mode
    os.environ.setdefault("WANDB_PROJECT", cfg.logger.project)
    os.environ.setdefault("WANDB_RUN_GROUP", cfg.experiment_name)
    os.environ["WANDB_NAME"] = run_id


def log_summary(cfg: DictConfig, record: dict[str, Any]) -> None:
    """Copy the record's headline figures into the wandb run summary, then close it."""
    if "wandb" not in cfg.logger.report_to:
        return
    import wandb

    if wandb.run is not None:
        wandb.run.summary.update(
            {
                "best": record["metrics"]["best"],
                "params": record["params"],
                "timing": record["timing"],
                "memory": record["memory"],
            }
        )
        wandb.finish()


def reset_peak_memory() -> None:
    """Start a fresh peak: per run, even when a sweep runs several in one process."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with contextlib.suppress(OSError):  # Linux: "5" resets VmHWM, the peak RSS
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory() -> dict[str, float | None]:
    """Peak resident memory since :func:`reset_peak_memory` and peak CUDA allocation, MiB."""
    rss_mb = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                rss_mb = int(line.split()[1]) / 1024
    except OSError:
        pass
    if rss_mb is None:  # no procfs: lifetime peak (KiB on Linux, bytes on macOS)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        rss_mb = rss / 2**20 if sys.platform == "darwin" else rss / 1024
    gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {"peak_rss_mb": round(rss_mb, 1), "peak_gpu_mb": None if gpu is None else round(gpu, 1)}


def epoch_history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge the Trainer's log entries into one dict per epoch (train loss + eval metrics)."""
    by_epoch: dict[float, dict[str, Any]] = {}
    for entry in log_history:
        if "epoch" not in entry:
            continue
        epoch = round(float(entry["epoch"]), 2)
        row = by_epoch.setdefault(epoch, {"epoch": epoch})
        for key, value in entry.items():
            if key == "loss":
                row["train_loss"] = value
            elif key.startswith("eval_"):
                row[key] = value
    return [row for _, row in sorted(by_epoch.items()) if any(k.startswith("eval_") for k in row)]
