"""The training step every task family shares: build the Trainer, train, time it, read
peak memory, turn the logs into per-epoch rows, pick the best epoch, count parameters.

Two protocols pick the epoch: the paper's (the best dev score, ``best_key``) and, when a
held-out split of the training set is evaluated too, held-out selection (the epoch with
the best held-out score, ``select_key``), whose dev score was not used to choose.

A run whose numbers are no longer finite stops with :class:`NonFiniteError` instead
of finishing with a record built from NaNs. The training loss is checked at every
micro-batch (the Trainer's own ``logging_nan_inf_filter`` would otherwise replace a NaN
loss by the running mean and hide it), eval losses and metrics at every evaluation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from experiments.core.training import epoch_history, peak_memory, reset_peak_memory
from lora.loraplus import loraplus_param_groups
from lora.params import count_parameters


class NonFiniteError(RuntimeError):
    """Training diverged: a loss or metric is NaN or infinite.

    Attributes:
        reason: what went non-finite, e.g. ``"train loss is nan"``.
        step: the optimizer step (1-based) it happened at.
    """

    def __init__(self, reason: str, step: int) -> None:
        super().__init__(f"{reason} at step {step}")
        self.reason, self.step = reason, step

    def __reduce__(self):  # picklable across launcher processes despite two arguments
        return type(self), (self.reason, self.step)


class CheckedTrainer(Trainer):
    """A ``Trainer`` that raises :class:`NonFiniteError` on a non-finite training loss.

    With ``keep_outputs`` set, every evaluation's predictions and labels are kept in
    ``outputs[(split, epoch)]`` (``split`` the eval dataset's name, ``epoch`` as in
    :func:`epoch_history`), in the eval dataset's order (evaluation never reorders): the
    per-example outputs that paired statistics between runs need.
    """

    keep_outputs = False

    def _get_eval_sampler(self, eval_dataset):  # type: ignore[override]
        # In order, so outputs[i] is eval_dataset[i]: the Trainer's own length grouping
        # (train_sampling_strategy="group_by_length") would shuffle evaluation too.
        if self.args.world_size <= 1 and eval_dataset is not None:
            return torch.utils.data.SequentialSampler(eval_dataset)
        return None  # distributed: sharded in order, gathered back in order

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None,
                        ignore_keys=None, metric_key_prefix="eval"):  # fmt: skip
        out = super().evaluation_loop(
            dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix
        )
        if self.keep_outputs and out.predictions is not None:
            split = metric_key_prefix.removeprefix("eval").removeprefix("_") or "eval"
            epoch = round(float(self.state.epoch or 0.0), 2)
            self.outputs[(split, epoch)] = (out.predictions, out.label_ids)
        return out

    def training_step(self, model, inputs, num_items_in_batch=None):  # type: ignore[override]
        loss = super().training_step(model, inputs, num_items_in_batch)
        # One scalar sync per micro-batch; the Trainer's NaN filter already does the same.
        bad = (~torch.isfinite(loss.detach())).any().float()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(bad)  # every rank stops together, none hangs
        if bad.item():
            values = loss.detach().float().reshape(-1).tolist()
            value = next((v for v in values if not math.isfinite(v)), None)
            reason = "train loss is non-finite on another process"
            if value is not None:
                reason = f"train loss is {value}"
            raise NonFiniteError(reason, self.state.global_step + 1)
        return loss


class FiniteEvalCheck(TrainerCallback):
    """Raise :class:`NonFiniteError` when an evaluation reports a NaN or infinite number."""

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        for key, value in (metrics or {}).items():
            if isinstance(value, (int, float)) and not math.isfinite(value):
                what = "eval loss" if key.endswith("_loss") else "metric"
                raise NonFiniteError(f"{what} {key} is {value}", state.global_step)


@dataclass
class FitResult:
    """What :func:`fit` measured; ``trainer.model`` is the trained model.

    Attributes:
        epochs: one row per evaluated epoch (``train_loss`` and ``eval_*``).
        best: the row of the best epoch by ``best_key`` (``{}`` when nothing was evaluated).
        selected: the row of the best epoch by ``select_key`` (held-out selection);
            ``None`` when no ``select_key`` was given.
        params: the three parameter counts (:func:`lora.params.count_parameters`).
        train_seconds: wall time of ``trainer.train()``.
        train_samples_per_second: the Trainer's figure.
        steps: optimizer steps taken.
        memory: peak memory during training (:func:`peak_memory`).
        outputs: ``(split, epoch) -> (predictions, label_ids)`` of every evaluation when
            :func:`fit` was asked to keep them, else ``{}``.
    """

    trainer: Trainer
    epochs: list[dict[str, Any]]
    best: dict[str, Any]
    selected: dict[str, Any] | None
    params: dict[str, int]
    train_seconds: float
    train_samples_per_second: float | None
    steps: int
    memory: dict[str, float | None]
    outputs: dict[tuple[str, float], tuple[Any, Any]]


def best_epoch(epochs: list[dict[str, Any]], key: str, maximize: bool = True) -> dict[str, Any]:
    """The row of ``epochs`` with the best ``key`` (the first of ties); ``{}`` for none."""
    worst = -math.inf if maximize else math.inf
    pick = max if maximize else min
    return pick(epochs, key=lambda row: row.get(key, worst)) if epochs else {}


def close_progress_bars(trainer: Trainer) -> None:
    """Close the Trainer's open tqdm bars (left open when training raises)."""
    for callback in trainer.callback_handler.callbacks:
        for name in ("training_bar", "prediction_bar"):
            bar = getattr(callback, name, None)
            if bar is not None:
                bar.close()
                setattr(callback, name, None)


def fit(
    model: torch.nn.Module,
    args: TrainingArguments,
    *,
    train_dataset: Any,
    eval_dataset: dict[str, Any],
    data_collator: Any,
    best_key: str,
    maximize: bool = True,
    modules_to_save: Sequence[str] | None = None,
    compute_metrics: Any = None,
    callbacks: Sequence[TrainerCallback] = (),
    loraplus_lr_ratio: float | None = None,
    select_key: str | None = None,
    keep_outputs: bool = False,
) -> FitResult:
    """Train ``model`` with an HF Trainer and summarise the run.

    Args:
        best_key: the per-epoch entry that picks the best epoch, e.g.
            ``"eval_dev_accuracy"``; the first best wins a tie.
        maximize: best is the largest ``best_key`` (metrics) or, if False, the smallest
            (losses).
        modules_to_save: the method's trained head modules, for the parameter counts.
        callbacks: extra Trainer callbacks (e.g. one that snapshots the best weights).
        loraplus_lr_ratio: LoRA+ (Hayou et al. 2024): AdamW over
            :func:`lora.loraplus.loraplus_param_groups`, B at this times the learning rate;
            ``None`` keeps the Trainer's own AdamW.
        select_key: a second per-epoch entry that picks an epoch the same way, e.g.
            ``"eval_heldout_accuracy"`` on a held-out split of the training set.
        keep_outputs: keep every evaluation's predictions (``FitResult.outputs``); for
            small outputs such as classification logits, not a language model's.

    Raises:
        NonFiniteError: a training loss, eval loss or metric went NaN or infinite.
    """
    optimizers: tuple = (None, None)
    if loraplus_lr_ratio is not None:  # the Trainer still builds the schedule over these groups
        groups = loraplus_param_groups(
            model, args.learning_rate, loraplus_lr_ratio, args.weight_decay
        )
        for group in groups:
            group.pop("name")
        optimizer = torch.optim.AdamW(
            groups, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon
        )
        optimizers = (optimizer, None)
    trainer = CheckedTrainer(
        model=model,
        optimizers=optimizers,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=data_collator,
        compute_metrics=compute_metrics,
        callbacks=[FiniteEvalCheck(), *callbacks],
    )
    trainer.keep_outputs, trainer.outputs = keep_outputs, {}
    # counted before training: FSDP shards the parameters of `model` in place
    params = count_parameters(model, modules_to_save).as_dict()
    reset_peak_memory()
    start = time.perf_counter()
    try:
        out = trainer.train()
    except BaseException:
        close_progress_bars(trainer)  # else a failed run's bar prints after its error line
        raise
    train_seconds = time.perf_counter() - start
    memory = peak_memory()
    epochs = epoch_history(trainer.state.log_history)
    return FitResult(
        trainer=trainer,
        epochs=epochs,
        best=best_epoch(epochs, best_key, maximize),
        selected=None if select_key is None else best_epoch(epochs, select_key, maximize),
        params=params,
        train_seconds=train_seconds,
        train_samples_per_second=out.metrics.get("train_samples_per_second"),
        steps=trainer.state.global_step,
        memory=memory,
        outputs=trainer.outputs,
    )
