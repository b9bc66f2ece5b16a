"""One GLUE fine-tuning run: data -> model + method -> HF Trainer -> per-epoch metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig
from transformers import DataCollatorWithPadding, EvalPrediction, set_seed

from experiments.core.data import (
    heldout_split,
    resolve_data_dir,
    subsample,
    subsample_indices,
    usable_length,
)
from experiments.core.fit import fit
from experiments.core.models import load_model, load_tokenizer
from experiments.core.schema import ConfigError
from experiments.core.training import training_arguments
from experiments.glue.data import get_task, load_glue
from experiments.glue.metrics import glue_metrics
from lora.arch import arch_spec
from lora.checkpoint import load_adapter_weights, save_adapter
from lora.methods import MethodConfig


def run_glue(cfg: DictConfig, method: MethodConfig, output_dir: Path) -> dict[str, Any]:
    """Fine-tune ``cfg.model`` on GLUE task ``cfg.task.name`` with ``method``.

    Returns the record's run-specific part: best and per-epoch metrics, the per-example
    dev outputs of the reported epochs (:func:`dev_outputs`), parameter counts, timing,
    memory and data sizes. The best epoch is chosen by the task's
    main metric on the (first) dev split, as the paper does (§D.1). With
    ``data.heldout=n``, n seeded training examples are held out before the subsample and
    evaluated every epoch too; ``metrics.heldout`` then gives held-out selection: the
    epoch with the best held-out score, its held-out score and its dev score.

    Raises:
        ConfigError: ``data.heldout`` leaves no training example.
    """
    task = get_task(cfg.task.name)
    data = load_glue(task.name, cfg.data.dir)
    try:
        train, heldout = heldout_split(data["train"], cfg.data.heldout, cfg.seed)
    except ValueError as err:
        raise ConfigError(f"invalid setting {err}") from None
    data["train"] = subsample(train, cfg.data.max_train_samples, cfg.seed)
    evals = {k: subsample(v, cfg.data.max_eval_samples, cfg.seed) for k, v in data.items()}
    evals.pop("train")
    if heldout is not None:  # never subsampled: data.heldout is its size
        evals["heldout"] = heldout

    tokenizer = load_tokenizer(cfg.model)
    set_seed(cfg.seed)
    model = load_model(cfg.model, "sequence_classification", num_labels=task.num_labels)
    method.apply(model)
    if cfg.train.init_adapter:  # e.g. the MNLI checkpoint for MRPC, RTE, STS-B (§D.1)
        head = method.modules_to_save or arch_spec(model).head
        load_adapter_weights(model, cfg.train.init_adapter, skip=tuple(head))
    max_len, virtual = usable_length(cfg, method, model.config.max_position_embeddings - 2)

    def tokenize(batch: dict[str, list]) -> dict[str, Any]:
        texts = [batch[f] for f in task.text_fields]
        return tokenizer(*texts, truncation=True, max_length=max_len)

    columns = list(task.text_fields)
    train_ds = data["train"].map(tokenize, batched=True, remove_columns=columns)
    eval_ds = {k: v.map(tokenize, batched=True, remove_columns=columns) for k, v in evals.items()}
    # shortest first: evaluation runs in order, so this is what pads least; dev_outputs
    # maps the outputs back to the dev file's lines
    main_split = next(iter(task.eval_splits))
    index = subsample_indices(len(data[main_split]), cfg.data.max_eval_samples, cfg.seed)
    index = list(range(len(eval_ds[main_split]))) if index is None else index
    order = {k: np.argsort([len(x) for x in v["input_ids"]], kind="stable").tolist()
             for k, v in eval_ds.items()}  # fmt: skip
    eval_ds = {k: v.select(order[k]) for k, v in eval_ds.items()}
    index = [index[i] for i in order[main_split]]

    def compute_metrics(p: EvalPrediction) -> dict[str, float]:
        preds = task_predictions(task, p.predictions)
        # n_predictions: what the distributed sampler's padding must not inflate
        return {**glue_metrics(task.name, preds, p.label_ids), "n_predictions": len(preds)}

    key = f"eval_{main_split}_{task.main_metric}"
    heldout_key = f"eval_heldout_{task.main_metric}"
    result = fit(
        model,
        training_arguments(cfg, output_dir, train_sampling_strategy="group_by_length"),
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics,
        best_key=key,
        modules_to_save=method.modules_to_save,
        loraplus_lr_ratio=getattr(method, "loraplus_lr_ratio", None),
        select_key=heldout_key if heldout is not None else None,
        keep_outputs=True,
    )
    if cfg.train.save_adapter and result.trainer.is_world_process_zero():
        save_adapter(model, output_dir / "adapter", method,
                     metadata={"model": cfg.model.name, "task": task.name})  # fmt: skip
    best = result.best
    n_eval = len(eval_ds[main_split])
    eval_seconds = best.get(f"eval_{main_split}_runtime")
    metrics = {
        "main_metric": task.main_metric,
        "main": best[key],
        "best_epoch": best["epoch"],
        "best": {k.removeprefix("eval_"): v for k, v in best.items() if k.startswith("eval_")},
    }
    chosen = {"best": best}
    if result.selected is not None:
        sel = result.selected
        metrics["heldout"] = {"epoch": sel["epoch"], "score": sel[heldout_key], "main": sel[key]}
        chosen["heldout"] = sel
    return {
        "metrics": metrics,
        "predictions": {
            protocol: dev_outputs(task, result.outputs, main_split, row["epoch"], index)
            for protocol, row in chosen.items()
            if (main_split, row.get("epoch")) in result.outputs
        },
        "epochs": result.epochs,
        "params": result.params,
        "timing": {
            "train_seconds": round(result.train_seconds, 2),
            "train_samples_per_second": result.train_samples_per_second,
            "eval_seconds": eval_seconds,
            "eval_latency_ms_per_sample": (
                round(1000 * eval_seconds / n_eval, 3) if eval_seconds else None
            ),
        },
        "memory": result.memory,
        "data": {
            "source": str(resolve_data_dir(cfg.data.dir) or "hub:nyu-mll/glue"),
            "train_size": len(train_ds),
            "eval_sizes": {k: len(v) for k, v in eval_ds.items()},
            "max_seq_length": max_len,
            "virtual_tokens": virtual,
        },
    }


def task_predictions(task: Any, predictions: Any) -> np.ndarray:
    """The model's predictions from its logits: class ids (int64, shape ``(n,)``), or
    the score for a regression task (STS-B; float, shape ``(n,)``)."""
    logits = predictions[0] if isinstance(predictions, tuple) else predictions
    return logits.squeeze(-1) if task.is_regression else np.argmax(logits, axis=-1)


def dev_outputs(task: Any, outputs: dict, split: str, epoch: float,
                index: list[int]) -> dict[str, Any]:  # fmt: skip
    """One epoch's per-example outputs on ``split``, as a record stores them.

    Returns ``{"split", "epoch", "pred", "label", "index"}``: ``pred`` and ``label`` in
    the eval set's order (ints, or floats to 7 significant digits for a regression task), and
    ``index`` each example's 0-based row in the split's file (header not counted), in
    the same order. Paired statistics between runs
    align on ``index`` (:mod:`experiments.report.stats`).
    """
    preds, labels = outputs[(split, epoch)]
    preds = task_predictions(task, preds)
    labels = np.asarray(labels).reshape(-1)
    if task.is_regression:
        pred, label = ([float(f"{v:.7g}") for v in a] for a in (preds, labels))
    else:
        pred, label = ([int(v) for v in a] for a in (preds, labels))
    return {"split": split, "epoch": epoch, "pred": pred, "label": label, "index": list(index)}
