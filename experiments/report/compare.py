"""Each table row against the table's reference row: the difference, its 95% interval
and a verdict on the paper's claim, from the records' per-example outputs.

A GLUE record stores its dev predictions at the reported epochs (``predictions.best``,
the paper's best dev epoch; ``predictions.heldout``, the epoch chosen on held-out
data). A table reads one protocol for every row (:func:`protocol`), pairs the rows' runs
by seed and their examples by dev-file index, and bootstraps the difference
(:mod:`experiments.report.stats`). Rows or tasks whose records lack per-example outputs
get empty cells, and the table says so (:func:`missing_note`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments.glue.data import TASKS as GLUE_TASKS
from experiments.report.stats import (
    SCHEME,
    Claim,
    Interval,
    paired_bootstrap,
    paired_bootstrap_average,
    verdict,
)

#: what the bootstrap draws: fixed, so that rebuilding a table gives the same bytes
N_RESAMPLES = 2000


def protocol(records: list[dict[str, Any]]) -> str:
    """``heldout`` when every record has held-out selection, else ``best`` (the paper's)."""
    ok = records and all("heldout" in r["metrics"] for r in records)
    return "heldout" if ok else "best"


def score(record: dict[str, Any], proto: str) -> float:
    """The record's dev score (natural units) under ``proto``."""
    return record["metrics"]["heldout"]["main"] if proto == "heldout" else record["metrics"]["main"]


def has_outputs(record: dict[str, Any], proto: str) -> bool:
    return proto in (record.get("predictions") or {})


def _by_seed(records: list[dict[str, Any]], proto: str) -> dict[int, tuple] | None:
    """seed -> (pred, label, index) arrays; None if any record lacks them."""
    if not records or not all(has_outputs(r, proto) for r in records):
        return None
    out = {}
    for r in records:
        p = r["predictions"][proto]
        out[r["seed"]] = (np.asarray(p["pred"]), np.asarray(p["label"]), np.asarray(p["index"]))
    return out


def task_inputs(row: dict, ref: dict, task: str, proto: str) -> tuple | None:
    """``(a, b, metric)`` for :func:`paired_bootstrap` on one task, or None."""
    a = _by_seed([r for r in row["records"] if r["task"] == task], proto)
    b = _by_seed([r for r in ref["records"] if r["task"] == task], proto)
    if a is None or b is None:
        return None
    return a, b, GLUE_TASKS[task].main_metric


def compare(row: dict, ref: dict, tasks: list[str], proto: str) -> dict[str, Interval | None]:
    """Per task and ``"avg"`` (every task present), the interval on row - ref in points."""
    inputs = {t: task_inputs(row, ref, t, proto) for t in tasks}
    out: dict[str, Interval | None] = {
        t: None if x is None else paired_bootstrap(*x, n_resamples=N_RESAMPLES)
        for t, x in inputs.items()
    }
    ready = [x for x in inputs.values() if x is not None]
    out["avg"] = (paired_bootstrap_average(ready, n_resamples=N_RESAMPLES)
                  if tasks and len(ready) == len(tasks) else None)  # fmt: skip
    return out


def cells(interval: Interval | None, claim: Claim) -> tuple[str, str]:
    """``("+1.2 [-0.3, +2.6]", "inconclusive")``, or two empty cells."""
    return ("", "") if interval is None else (interval.cell(), verdict(interval, claim))


def csv_values(interval: Interval | None, claim: Claim) -> list[str]:
    """``[diff, low, high, verdict]`` to 4 decimals, or four empty strings."""
    if interval is None:
        return ["", "", "", ""]
    nums = [f"{v:.4f}" for v in (interval.diff, interval.low, interval.high)]
    return [*nums, verdict(interval, claim)]


def claim_note(claim: Claim, reference: str) -> str:
    """The notes paragraph that says how the comparison columns are computed."""
    unit = "point" if claim.tolerance == 1 else "points"
    kind = (f"|Δ| ≤ {claim.tolerance:g} {unit}" if claim.kind == "matches"
            else f"Δ ≥ −{claim.tolerance:g} {unit}")  # fmt: skip
    tol = f"{claim.tolerance:g}"
    inside, outside = ((f"within ±{tol}", f"wholly outside ±{tol}") if claim.kind == "matches"
                       else (f"wholly above −{tol}", f"wholly below −{tol}"))  # fmt: skip
    return (f"Δ = row − {reference}, in points, the mean over paired seeds; {SCHEME} "
            f"{N_RESAMPLES:,} replicates, numpy seed 0. Claim: {claim.text} ({kind}). "
            f"Verdict: agrees when the interval lies {inside}, contradicts when it lies "
            f"{outside}, inconclusive otherwise.")  # fmt: skip


def missing_note(records: list[dict[str, Any]], proto: str = "best") -> list[str]:
    """A notes line when some records lack per-example outputs (their Δ cells are empty)."""
    n = sum(not has_outputs(r, proto) for r in records)
    if not n:
        return []
    return ["", f"Intervals missing: {n} of {len(records)} records predate per-example "
            "outputs, so their differences have no interval or verdict; rerun them to get "
            "these (records made by the current code store their dev predictions)."]  # fmt: skip


#: the line an NLG table (E2E, WebNLG) ends its notes with until its records have outputs
NLG_NOTE = ("Intervals missing: E2E and WebNLG records do not store per-MR outputs yet "
            "(decoded text, reference NLL), so differences between rows have no interval or "
            "verdict.")  # fmt: skip
