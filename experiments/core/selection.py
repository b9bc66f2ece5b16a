"""Learning-rate selection on held-out data: which trial of a search wins.

A search is a set of records at one seed that differ only in ``train.lr`` within each
(row, task); each carries held-out selection (``metrics.heldout.score``, GLUE's
``data.heldout``) or, for generation tasks, the dev loss of its best epoch
(``metrics.best.dev_loss``; the test set is what those tables report). The winner has the
best held-out score (the lowest dev loss), the smaller learning rate on a tie. The set a
table reports never enters the choice.

Two drivers choose this way: :func:`choose` for a preset's search (``experiments.choose_lr``,
the lr-search tables and plots), :func:`chosen_lr` for the successors comparison
(``experiments.successors`` and its table), whose trials are told apart by
:func:`config_key`.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.core.labels import method_names
from experiments.core.settings import flatten, settings_of

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


def unit_key(record: dict[str, Any]) -> str:
    """The record's settings but what a search varies: trials of one unit share it."""
    flat = flatten(record["config"])
    return json.dumps({k: v for k, v in flat.items()
                       if not any(k == p or k.startswith(p + ".") for p in _VARIED)},
                      sort_keys=True)  # fmt: skip


def _score(record: dict[str, Any]) -> tuple[str, float] | None:
    metrics = record["metrics"]
    if "heldout" in metrics:
        return "heldout", metrics["heldout"]["score"]
    loss = (metrics.get("best") or {}).get("dev_loss")
    return None if loss is None else ("dev_loss", -loss)


def _lr(record: dict[str, Any]) -> float:
    return float(record["config"]["train"]["lr"])


def _winner(scored: list[tuple[dict[str, Any], float]]) -> tuple[float, dict[float, float]]:
    """The chosen lr of (trial, score) pairs and every lr's score, sorted by lr: the best
    score wins, the smaller lr on a tie (an lr with two records counts its better one)."""
    scores: dict[float, float] = {}
    for r, score in scored:
        lr = _lr(r)
        scores[lr] = max(score, scores.get(lr, score))
    return max(scores, key=lambda v: (scores[v], -v)), dict(sorted(scores.items()))


def choose(records: list[dict[str, Any]]) -> dict[tuple[str, str], Choice]:
    """Per (row, task), the learning rate with the best held-out score (lowest dev loss).

    Args:
        records: ok records of one search, each with ``config.row`` and
            ``metrics.heldout`` or ``metrics.best.dev_loss``.

    Raises:
        ValueError: a record lacks a row or a selection score, or one (row, task) holds
            trials of different settings (besides lr) or seeds: they are not one search.
    """
    units: dict[tuple[str, str], list[tuple[dict, tuple[str, float]]]] = defaultdict(list)
    for r in records:
        row, score = r["config"].get("row"), _score(r)
        if row is None or score is None:
            raise ValueError(f"record {r.get('run_id')} has no row or no held-out selection "
                             "(data.heldout) or dev loss; it cannot be a search trial")  # fmt: skip
        units[(row, r["task"])].append((r, score))
    out = {}
    for (row, task), trials in sorted(units.items()):
        keys = {(unit_key(r), r["seed"]) for r, _ in trials}
        if len(keys) > 1:
            raise ValueError(f"the trials of {row} on {task} differ in more than train.lr "
                             f"({len(keys)} settings or seeds); one search per folder")  # fmt: skip
        criteria = {criterion for _, (criterion, _) in trials}
        if len(criteria) > 1:
            raise ValueError(f"the trials of {row} on {task} mix held-out and dev-loss selection")
        lr, scores = _winner([(r, value) for r, (_, value) in trials])
        out[(row, task)] = Choice(lr, scores, criteria.pop())
    return out


# -- the successors comparison: one search per (row, task) at one seed, beside other seeds


def config_key(record: dict[str, Any]) -> str:
    """Every setting of a record but the ones a unit varies (``train.lr``, the seed): two
    records are trials or seeds of one (method, task) unit only when their keys agree."""
    settings = settings_of(record)
    settings.pop("train.lr", None)
    return json.dumps(settings, sort_keys=True)


def budget_key(record: dict[str, Any]) -> str:
    """Every setting but the method, the lr and the seed: two experiments' records share
    it when they trained at the same budget (a table may borrow rows across them)."""
    return json.dumps({k: v for k, v in settings_of(record).items()
                       if k != "train.lr" and not k.startswith("method.")}, sort_keys=True)  # fmt: skip


def unit_trials(records: list[dict[str, Any]], row: str, task: str, seed: int,
                key: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """The records of one search: ``row`` on ``task`` at ``seed`` (and, with ``key``, of
    that :func:`config_key` only)."""
    return [r for r in records if row_of(r) == row and r["task"] == task and r["seed"] == seed
            and (key is None or config_key(r) == key)]  # fmt: skip


def tried(results_dir: str | Path, experiment: str, seed: int | None = None
          ) -> dict[tuple[str, str], set[float]]:  # fmt: skip
    """Every (row, task) -> the learning rates with a record in ``<results_dir>/runs/
    <experiment>``, ok or failed (a diverged step closes that side of a grid); with
    ``seed``, only the records at that seed."""
    out: dict[tuple[str, str], set[float]] = {}
    for path in (Path(results_dir) / "runs" / experiment).glob("*.json"):
        try:
            cfg = json.loads(path.read_text())["config"]
            if seed is not None and cfg["seed"] != seed:
                continue
            out.setdefault((cfg["row"], cfg["task"]["name"]), set()).add(float(cfg["train"]["lr"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def row_of(record: dict[str, Any]) -> str:
    """The record's method row: the preset's ``row``, else the method's label key."""
    return record["config"].get("row") or method_names(record["method"])[0]


def chosen_lr(
    records: list[dict[str, Any]], row: str, task: str, seed: int, key: str | None = None
) -> tuple[float, int] | None:
    """The learning rate a search chose for (``row``, ``task``) and its number of trials.

    The search's trials are the records of that row and task at the search's ``seed``
    with held-out selection (``metrics.heldout``); the chosen one has the best held-out
    score (the smaller learning rate on a tie), as in :func:`choose`. Failed trials leave
    no record and are not counted. ``key`` (:func:`config_key`) keeps only the trials of
    that configuration.

    Returns:
        ``(lr, trials)``, or None when no trial finished.
    """
    scored = [(r, score[1]) for r in unit_trials(records, row, task, seed, key)
              if (score := _score(r)) is not None and score[0] == "heldout"]  # fmt: skip
    if not scored:
        return None
    lr, scores = _winner(scored)
    return lr, len(scores)


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
