"""Figures built from records, for sweeps people would rather look at than read."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: files only
import matplotlib.pyplot as plt  # noqa: E402

from experiments.core.labels import method_label  # noqa: E402
from experiments.core.selection import Choice, choose  # noqa: E402
from experiments.glue.data import TASKS as GLUE_TASKS  # noqa: E402


def save_figure(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_rank_sweep(records: list[dict[str, Any]], path: Path) -> Path | None:
    """Score against LoRA rank r, one line per (task, target set): the median over seeds,
    and a band from the lowest to the highest seed where there are several.

    In the spirit of paper Table 6 (§7.2). Returns ``None`` (and writes nothing) when
    the records hold fewer than two ranks.
    """
    lora = [r for r in records if r["method"].get("name") == "lora" and r["task"] in GLUE_TASKS]
    if len({r["method"]["r"] for r in lora}) < 2:
        return None
    series: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in lora:
        targets = ",".join(f"W_{t}" if len(t) == 1 else t for t in r["method"]["targets"])
        series[(r["task"], targets)][r["method"]["r"]].append(100 * r["metrics"]["main"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for (task, targets), by_r in sorted(series.items()):
        ranks = sorted(by_r)
        medians = [statistics.median(by_r[k]) for k in ranks]
        (line,) = ax.plot(ranks, medians, marker="o",
                          label=f"{GLUE_TASKS[task].display}: {targets}")  # fmt: skip
        if any(len(by_r[k]) > 1 for k in ranks):
            ax.fill_between(ranks, [min(by_r[k]) for k in ranks], [max(by_r[k]) for k in ranks],
                            color=line.get_color(), alpha=0.15, linewidth=0)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel("LoRA rank r")
    seeds = max(len(v) for by_r in series.values() for v in by_r.values())
    ax.set_ylabel("dev score ×100")
    ax.set_title("Rank sweep" + (f": median of {seeds} seeds, band min-max" if seeds > 1 else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_lr_search(records: list[dict[str, Any]], path: Path) -> Path | None:
    """Held-out score against learning rate, one panel per task and one line per method:
    what a learning-rate search saw, with each method's winner circled.

    Returns ``None`` (and writes nothing) unless the records hold held-out selection and
    some (method, task) has two or more learning rates.
    """
    glue = [r for r in records if r["task"] in GLUE_TASKS and "heldout" in r["metrics"]]
    try:
        choices = choose(glue)
    except ValueError:  # not one search (no row, or several seeds per lr)
        return None
    if not any(len(c.scores) > 1 for c in choices.values()):
        return None
    labels = {r["config"]["row"]: method_label(r["method"]) for r in glue}
    series: dict[str, dict[str, Choice]] = defaultdict(dict)
    for (row, task), c in choices.items():
        series[task][row] = c
    tasks = sorted(series)
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for row, c in series[task].items():
            lrs = list(c.scores)
            scores = [100 * c.scores[v] for v in lrs]
            (line,) = ax.plot(lrs, scores, marker="o", label=labels[row])
            ax.plot([c.lr], [100 * c.scores[c.lr]], marker="o", markersize=12, fillstyle="none",
                    color=line.get_color())  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("held-out score ×100")
        ax.set_title(GLUE_TASKS[task].display)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Learning-rate search (circled: chosen, best held-out score)", fontsize=10)
    return save_figure(fig, path)


def plot_dev_loss(records: list[dict[str, Any]], path: Path) -> Path | None:
    """Dev loss against epoch, one line per run (method and learning rate): whether a
    generation run had converged at its budget, and which epoch it was scored at (marked).

    Returns ``None`` (and writes nothing) unless some run has two or more evaluations.
    """
    runs = [r for r in records if sum("eval_dev_loss" in e for e in r.get("epochs", [])) > 1]
    if not runs:
        return None
    several_seeds = len({r["seed"] for r in runs}) > 1
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in sorted(runs, key=lambda r: (method_label(r["method"]), r["config"]["train"]["lr"],
                                         r["seed"])):  # fmt: skip
        points = [(e["epoch"], e["eval_dev_loss"]) for e in r["epochs"] if "eval_dev_loss" in e]
        label = f"{method_label(r['method'])}, lr {r['config']['train']['lr']:g}"
        if several_seeds:
            label += f", seed {r['seed']}"
        (line,) = ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=label)
        best = r["metrics"].get("best_epoch")
        ax.plot([e for e, _ in points if e == best], [v for e, v in points if e == best],
                marker="o", markersize=9, fillstyle="none", color=line.get_color())  # fmt: skip
    ax.set_xlabel("epoch")
    ax.set_ylabel("dev loss (nats per token, label-smoothed)")
    ax.set_title("Dev loss by epoch (circled: the epoch scored on test)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)
