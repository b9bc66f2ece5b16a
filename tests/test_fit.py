"""The shared fit skeleton: best epoch, counts, runs that diverge stop with the step, and
held-out selection beside the paper's best dev epoch."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import TrainingArguments

from experiments.core.data import heldout_split
from experiments.core.fit import NonFiniteError, fit
from experiments.core.records import record_path
from experiments.core.schema import ConfigError
from experiments.tasks import run_id
from experiments.train import run
from tests.test_config import compose_cfg
from tests.test_harness import tiny_overrides


class Toy(torch.nn.Module):
    """y = w·x + b with a squared loss; ``nan_at`` poisons the loss of that training call."""

    def __init__(self, nan_at: int | None = None, nan_in_eval: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(2, 1)
        self.nan_at, self.nan_in_eval, self.train_calls = nan_at, nan_in_eval, 0

    def forward(self, x, labels):
        pred = self.linear(x).squeeze(-1)
        loss = ((pred - labels) ** 2).mean()
        if self.training:
            self.train_calls += 1
            if self.train_calls == self.nan_at:
                loss = loss * math.nan
        elif self.nan_in_eval:
            loss = loss * math.inf
        return {"loss": loss, "logits": pred}


def toy_data(n: int = 8) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    return [{"x": x[i], "labels": x[i].sum()} for i in range(n)]


def toy_fit(tmp_path, model, epochs=3, accumulation=1, **kwargs):
    args = TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=epochs, per_device_train_batch_size=2,
        gradient_accumulation_steps=accumulation, learning_rate=0.05, eval_strategy="epoch",
        logging_strategy="epoch", save_strategy="no", report_to=[], use_cpu=True,
        disable_tqdm=True, seed=0,
    )  # fmt: skip
    data = toy_data()
    return fit(model, args, train_dataset=data, eval_dataset={"dev": data[:4]},
               data_collator=None, modules_to_save=[], **kwargs)  # fmt: skip


def scripted_metric(values):
    """compute_metrics that returns the given accuracies, one per evaluation."""
    it = iter(values)
    return lambda p: {"accuracy": next(it)}


def test_fit_picks_the_best_epoch_by_key_and_direction(tmp_path):
    result = toy_fit(tmp_path, Toy(), compute_metrics=scripted_metric([0.5, 0.9, 0.7]),
                     best_key="eval_dev_accuracy")  # fmt: skip
    assert [e["epoch"] for e in result.epochs] == [1.0, 2.0, 3.0]
    assert result.best["epoch"] == 2.0 and result.best["eval_dev_accuracy"] == 0.9
    assert result.steps == 12 and result.params == {"method": 3, "trainable": 3, "total": 3}
    assert result.train_seconds > 0 and result.memory["peak_rss_mb"] > 0
    assert all(math.isfinite(e["train_loss"]) for e in result.epochs)

    lowest = toy_fit(tmp_path, Toy(), best_key="eval_dev_loss", maximize=False)
    losses = [e["eval_dev_loss"] for e in lowest.epochs]
    assert lowest.best["eval_dev_loss"] == min(losses) and losses[-1] < losses[0]


@pytest.mark.parametrize(("nan_at", "accumulation", "step"), [(3, 1, 3), (6, 1, 6), (3, 2, 2)])
def test_nan_train_loss_stops_at_its_optimizer_step(tmp_path, nan_at, accumulation, step):
    # Logged only per epoch (every 4 steps): the check must not wait for the log, and
    # the Trainer's own NaN filter would have hidden this loss in the running mean.
    with pytest.raises(NonFiniteError) as info:
        toy_fit(tmp_path, Toy(nan_at=nan_at), accumulation=accumulation, best_key="eval_dev_loss")
    assert (info.value.reason, info.value.step) == ("train loss is nan", step)
    assert str(info.value) == f"train loss is nan at step {step}"
    copy = pickle.loads(pickle.dumps(info.value))  # e.g. back from a joblib worker
    assert (copy.reason, copy.step, str(copy)) == ("train loss is nan", step, str(info.value))


def test_a_failed_run_leaves_no_progress_bar_open(tmp_path):
    """An open bar would print after the sweep's final error line (tqdm closes it late)."""
    from tqdm import tqdm

    args = TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=1, per_device_train_batch_size=2,
        learning_rate=0.05, eval_strategy="epoch", save_strategy="no", report_to=[],
        use_cpu=True, disable_tqdm=False, seed=0,
    )  # fmt: skip
    data = toy_data()
    with pytest.raises(NonFiniteError) as info:  # info keeps the Trainer alive
        fit(Toy(nan_at=2), args, train_dataset=data, eval_dataset={"dev": data[:4]},
            data_collator=None, modules_to_save=[], best_key="eval_dev_loss")  # fmt: skip
    assert info.value.step == 2
    assert not [bar for bar in tqdm._instances if not bar.disable]


def test_nonfinite_eval_loss_or_metric_stops_the_run(tmp_path):
    with pytest.raises(NonFiniteError) as info:
        toy_fit(tmp_path, Toy(nan_in_eval=True), best_key="eval_dev_loss")
    assert (info.value.reason, info.value.step) == ("eval loss eval_dev_loss is inf", 4)
    with pytest.raises(NonFiniteError) as info:
        toy_fit(tmp_path, Toy(), compute_metrics=scripted_metric([0.5, np.nan]),
                best_key="eval_dev_accuracy")  # fmt: skip
    assert (info.value.reason, info.value.step) == ("metric eval_dev_accuracy is nan", 8)


def test_diverging_glue_run_fails_with_the_step_and_writes_no_ok_record(tiny_model_dir, tmp_path):
    overrides = tiny_overrides(tiny_model_dir, tmp_path, "task=rte", "method=full_ft",
                               "train.epochs=1", "train.warmup_ratio=0", "train.lr=1e30")  # fmt: skip
    cfg = compose_cfg(overrides)
    with pytest.raises(NonFiniteError) as info:
        run(cfg)
    # Step 1 trains at lr 1e30 from finite weights; the next forward pass overflows.
    assert info.value.step == 2 and info.value.reason.startswith("train loss is ")
    ok, failed = record_path(cfg, run_id(cfg)), record_path(cfg, run_id(cfg), failed=True)
    assert not ok.exists()
    record = json.loads(failed.read_text())  # written by the runner from the error
    assert record["status"] == "failed" and record["step"] == 2
    assert record["reason"] == info.value.reason and "metrics" not in record


class ToyLora(Toy):
    """Toy with a LoRA-named pair, so LoRA+ has a ``lora_B`` to speed up."""

    def __init__(self) -> None:
        super().__init__()
        self.lora_A = torch.nn.Parameter(torch.randn(1, 2) * 0.1)
        self.lora_B = torch.nn.Parameter(torch.zeros(1, 1))

    def forward(self, x, labels):
        out = super().forward(x, labels)
        pred = out["logits"] + (x @ self.lora_A.T @ self.lora_B.T).squeeze(-1)
        return {"loss": ((pred - labels) ** 2).mean(), "logits": pred}


def test_loraplus_gives_b_the_ratio_times_the_learning_rate(tmp_path):
    result = toy_fit(tmp_path, ToyLora(), epochs=1, best_key="eval_dev_loss", maximize=False,
                     loraplus_lr_ratio=16.0)  # fmt: skip
    optimizer = result.trainer.optimizer
    by_param = {id(p): g["initial_lr"] for g in optimizer.param_groups for p in g["params"]}
    model = result.trainer.model
    assert by_param[id(model.lora_B)] == pytest.approx(0.05 * 16)
    assert by_param[id(model.lora_A)] == pytest.approx(0.05)
    assert by_param[id(model.linear.bias)] == pytest.approx(0.05)
    plain = toy_fit(tmp_path, ToyLora(), epochs=1, best_key="eval_dev_loss", maximize=False)
    assert {g["initial_lr"] for g in plain.trainer.optimizer.param_groups} == {0.05}


def scripted_by_split(dev, heldout):
    """compute_metrics for eval sets ``{"dev", "heldout"}``: the Trainer evaluates them in
    that order every epoch, so the values alternate dev, heldout, dev, ..."""
    it = iter(v for pair in zip(dev, heldout, strict=True) for v in pair)
    return lambda p: {"accuracy": next(it)}


def test_heldout_selection_can_pick_another_epoch_than_the_paper(tmp_path):
    data = toy_data()
    args = TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=3, per_device_train_batch_size=2,
        learning_rate=0.05, eval_strategy="epoch", logging_strategy="epoch",
        save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
    )  # fmt: skip
    result = fit(Toy(), args, train_dataset=data[:6],
                 eval_dataset={"dev": data[:4], "heldout": data[6:]}, data_collator=None,
                 modules_to_save=[],
                 compute_metrics=scripted_by_split([0.5, 0.9, 0.7], [0.8, 0.6, 0.7]),
                 best_key="eval_dev_accuracy", select_key="eval_heldout_accuracy")  # fmt: skip
    assert result.best["epoch"] == 2.0 and result.best["eval_dev_accuracy"] == 0.9
    sel = result.selected
    assert sel["epoch"] == 1.0 and sel["eval_heldout_accuracy"] == 0.8
    assert sel["eval_dev_accuracy"] == 0.5  # the dev score the paper's protocol would not report
    assert toy_fit(tmp_path, Toy(), best_key="eval_dev_loss", maximize=False).selected is None


def test_heldout_split_is_seeded_disjoint_and_before_the_subsample():
    rows = [{"i": i} for i in range(50)]
    train, held = heldout_split(rows, 10, seed=1)
    assert len(held) == 10 and len(train) == 40
    assert {r["i"] for r in train}.isdisjoint(r["i"] for r in held)
    assert {r["i"] for r in train} | {r["i"] for r in held} == set(range(50))
    assert heldout_split(rows, 10, seed=1) == (train, held)  # seeded
    assert heldout_split(rows, 10, seed=2)[1] != held  # another seed, another split
    assert [r["i"] for r in held] == sorted(r["i"] for r in held)  # file order kept
    assert heldout_split(rows, None, seed=1) == (rows, None)
    with pytest.raises(ValueError, match=r"data.heldout=50 leaves no training example"):
        heldout_split(rows, 50, seed=1)
    # a datasets.Dataset splits alike, by position
    ds = Dataset.from_list(rows)
    ds_train, ds_held = heldout_split(ds, 10, seed=1)
    assert ds_held["i"] == [r["i"] for r in held] and ds_train["i"] == [r["i"] for r in train]


def test_glue_run_records_both_protocols(tiny_model_dir, tmp_path):
    overrides = tiny_overrides(tiny_model_dir, tmp_path, "task=sst2", "method=lora",
                               "train.epochs=3", "data.heldout=8")  # fmt: skip
    cfg = compose_cfg(overrides)
    record = run(cfg)
    assert record["data"]["train_size"] == 32 - 8
    assert record["data"]["eval_sizes"] == {"dev": 8, "heldout": 8}
    epochs = {e["epoch"]: e for e in record["epochs"]}
    held = record["metrics"]["heldout"]
    chosen = epochs[held["epoch"]]
    assert held["score"] == chosen["eval_heldout_accuracy"]
    assert held["score"] == max(e["eval_heldout_accuracy"] for e in record["epochs"])
    assert held["main"] == chosen["eval_dev_accuracy"]  # dev score at the held-out epoch
    assert record["metrics"]["main"] == max(e["eval_dev_accuracy"] for e in record["epochs"])
    assert record["config"]["data"]["heldout"] == 8
    # off by default: no held-out split, no metrics.heldout
    plain = run(compose_cfg(tiny_overrides(tiny_model_dir, tmp_path, "task=sst2", "method=lora")))
    assert "heldout" not in plain["metrics"] and plain["data"]["train_size"] == 32
    assert plain["data"]["eval_sizes"] == {"dev": 8}


def test_glue_heldout_checks(tiny_model_dir, tmp_path):
    too_many = compose_cfg(tiny_overrides(tiny_model_dir, tmp_path, "task=sst2", "data.heldout=32"))
    with pytest.raises(ConfigError, match=r"^invalid setting data.heldout=32 leaves no training"):
        run(too_many)
    with pytest.raises(ConfigError, match=r"^invalid setting data.heldout: must be > 0"):
        run(compose_cfg(tiny_overrides(tiny_model_dir, tmp_path, "data.heldout=0")))
    with pytest.raises(ConfigError, match=r"^invalid setting data.heldout: held-out selection "
                       r"is implemented for GLUE tasks only"):  # fmt: skip
        run(compose_cfg(tiny_overrides(tiny_model_dir, tmp_path, "task=e2e", "data.heldout=4")))
