"""Learning-rate selection on held-out data: which trial of a search wins.

A search is a set of records at one seed that differ only in ``train.lr`` within each
(row, task); each carries held-out selection (``metrics.heldout.score``, GLUE's
``data.heldout``) or, for generation tasks, the dev loss of its best epoch
(``metrics.best.dev_loss``; the test set is what those tables report). The winner has the
best held-out score (the lowest dev loss), the smaller learning rate on a tie. The set a
table reports never enters the choice.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

# what a search varies, or what never changes a result: left out of a unit's settings
_VARIED = ("train.lr", "seed", "row", "method", "task", "experiment_name", "notes", "hparams",
           "paths", "logger")  # fmt: skip


@dataclass(frozen=True)
class Choice:
    """The winner of one (row, task) search.

    Attributes:
        lr: the chosen learning rate.
        scores: every trial's score, higher is better, by lr: the held-out main metric
            (natural units), or minus the dev loss (nats per token).
        criterion: ``"heldout"`` or ``"dev_loss"``, which the scores are.
    """

    lr: float
    scores: dict[float, float]
    criterion: str = "heldout"

    @property
    def at_edge(self) -> bool:
        """The winner is the grid's smallest or largest lr: the optimum may lie outside."""
        return len(self.scores) > 1 and self.lr in (min(self.scores), max(self.scores))


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def unit_key(record: dict[str, Any]) -> str:
    """The record's settings but what a search varies: trials of one unit share it."""
    flat = _flat(record["config"])
    return json.dumps({k: v for k, v in sorted(flat.items())
                       if not any(k == p or k.startswith(p + ".") for p in _VARIED)},
                      sort_keys=True, default=str)  # fmt: skip


def _score(record: dict[str, Any]) -> tuple[str, float] | None:
    metrics = record["metrics"]
    if "heldout" in metrics:
        return "heldout", metrics["heldout"]["score"]
    loss = (metrics.get("best") or {}).get("dev_loss")
    return None if loss is None else ("dev_loss", -loss)


def choose(records: list[dict[str, Any]]) -> dict[tuple[str, str], Choice]:
    """Per (row, task), the learning rate with the best held-out score (lowest dev loss).

    Args:
        records: ok records of one search, each with ``config.row`` and
            ``metrics.heldout`` or ``metrics.best.dev_loss``.

    Raises:
        ValueError: a record lacks a row or a selection score, or one (row, task) holds
            trials of different settings (besides lr) or seeds: they are not one search.
    """
    units: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        row = r["config"].get("row")
        if row is None or _score(r) is None:
            raise ValueError(f"record {r.get('run_id')} has no row or no held-out selection "
                             "(data.heldout) or dev loss; it cannot be a search trial")  # fmt: skip
        units[(row, r["task"])].append(r)
    out = {}
    for (row, task), trials in sorted(units.items()):
        keys = {(unit_key(r), r["seed"]) for r in trials}
        if len(keys) > 1:
            raise ValueError(f"the trials of {row} on {task} differ in more than train.lr "
                             f"({len(keys)} settings or seeds); one search per folder")  # fmt: skip
        criteria = {_score(r)[0] for r in trials}
        if len(criteria) > 1:
            raise ValueError(f"the trials of {row} on {task} mix held-out and dev-loss selection")
        scores = {float(r["config"]["train"]["lr"]): _score(r)[1] for r in trials}
        lr = max(scores, key=lambda v: (scores[v], -v))
        out[(row, task)] = Choice(lr, dict(sorted(scores.items())), criteria.pop())
    return out


def next_step(lr: float, up: bool) -> float:
    """The grid's next point past ``lr`` in the 1-3-10 half-decade pattern
    (3e-3 -> 1e-2, 1e-3 -> 3e-3, 3e-5 -> 1e-5); other values step by sqrt(10)."""
    exponent = math.floor(math.log10(lr))
    mantissa = round(lr / 10**exponent, 6)
    steps = {(1.0, True): 3.0, (3.0, True): 10.0, (3.0, False): 1.0, (1.0, False): 0.3}
    factor = steps.get((mantissa, up))
    if factor is None:
        return float(f"{lr * 10 ** (0.5 if up else -0.5):.1e}")
    return float(f"{factor * 10**exponent:.1e}")


def extensions(choices: dict[tuple[str, str], Choice], tried: dict[tuple[str, str], set[float]]
               ) -> list[tuple[str, str, float]]:  # fmt: skip
    """Points that would tell whether a winner at the grid's edge is the optimum.

    For each (row, task) whose winner is the largest (smallest) lr tried, the next
    half-decade step up (down), unless a run at it was already tried (``tried``: every
    lr with a record, ok or failed; a diverged step closes that side).
    """
    out = []
    for (row, task), c in choices.items():
        if not c.at_edge:
            continue
        step = next_step(c.lr, up=c.lr == max(c.scores))
        if step not in tried.get((row, task), set()):
            out.append((row, task, step))
    return out
