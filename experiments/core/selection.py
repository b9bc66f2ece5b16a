"""Learning-rate selection on held-out data: which trial of a search wins.

A search is a set of records at one seed that differ only in ``train.lr`` within each
(row, task); each carries held-out selection (``metrics.heldout.score``, GLUE's
``data.heldout``). The winner has the best held-out score, the smaller learning rate on
a tie. The dev set a table reports never enters the choice.
"""

from __future__ import annotations

import json
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
        scores: every trial's held-out score (main metric, natural units), by lr.
        run_ids: the trials' run ids, by lr.
    """

    lr: float
    scores: dict[float, float]
    run_ids: dict[float, str]

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


def choose(records: list[dict[str, Any]]) -> dict[tuple[str, str], Choice]:
    """Per (row, task), the learning rate with the best held-out score.

    Args:
        records: ok records of one search, each with ``config.row`` and
            ``metrics.heldout``.

    Raises:
        ValueError: a record lacks held-out selection or a row, or one (row, task) holds
            trials of different settings (besides lr) or seeds: they are not one search.
    """
    units: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        row = r["config"].get("row")
        if row is None or "heldout" not in r["metrics"]:
            raise ValueError(f"record {r['run_id']} has no row or no held-out selection "
                             "(data.heldout); it cannot be a search trial")  # fmt: skip
        units[(row, r["task"])].append(r)
    out = {}
    for (row, task), trials in sorted(units.items()):
        keys = {(unit_key(r), r["seed"]) for r in trials}
        if len(keys) > 1:
            raise ValueError(f"the trials of {row} on {task} differ in more than train.lr "
                             f"({len(keys)} settings or seeds); one search per folder")  # fmt: skip
        scores = {float(r["config"]["train"]["lr"]): r["metrics"]["heldout"]["score"]
                  for r in trials}  # fmt: skip
        lr = max(scores, key=lambda v: (scores[v], -v))
        ids = {float(r["config"]["train"]["lr"]): r["run_id"] for r in trials}
        out[(row, task)] = Choice(lr, dict(sorted(scores.items())), dict(sorted(ids.items())))
    return out
