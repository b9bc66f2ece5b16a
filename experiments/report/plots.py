"""Figures built from records, for sweeps people would rather look at than read."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: files only
import matplotlib.pyplot as plt  # noqa: E402

from experiments.glue.data import TASKS as GLUE_TASKS  # noqa: E402


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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
