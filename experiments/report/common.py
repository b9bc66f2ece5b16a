"""Helpers every table shares: number formats, rows as configurations, provenance, files.

A table row is one configuration: records are grouped by their resolved config minus
the seed (and minus what never changes a result), so seeds are the only thing pooled.
Settings that differ between rows become columns of their own (:func:`setting_columns`).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from experiments.core.labels import (
    fmt_params,  # noqa: F401  (re-exported: report modules written against it import it here)
    method_label,
    method_order,
)
from experiments.core.records import is_stale
from experiments.core.settings import settings_of

# Part of the method: shown through the label, never as a setting column of their own.
_METHOD_KEYS = ("method", "model")
PER_TASK = "per task"
STALE_MARK = "‡"
STALE_NOTE = (
    f"{STALE_MARK} made by older code than the current tree; rerun with `rerun_stale=true`."
)


def fmt_value(value: Any) -> str:
    """A setting's value in a cell: ``5e-04``, ``q,v``, ``none``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ",".join(fmt_value(v) for v in value)
    return str(value)


# -- rows as configurations ------------------------------------------------------------


def _is_method_key(key: str) -> bool:
    return key.split(".")[0] in _METHOD_KEYS


def group_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Split records into table rows, one per configuration; seeds pool inside a row.

    A row starts as one (model, method config). Inside it, a setting that takes two
    values on the same task (an lr or data-size sweep) splits the row; one that differs
    only between tasks (paper Table 9's per-task lr) stays a per-task setting.

    Returns:
        Dicts with ``model``, ``method`` (name), ``label``, ``records`` (the row's, every
        task), ``settings`` (dotted key -> JSON value, or :data:`PER_TASK`) and ``stale``,
        in the paper's method order.
    """
    by_method: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        by_method[(r["model"], json.dumps(r["method"], sort_keys=True))].append(r)
    rows = []
    for (model, _), recs in by_method.items():
        flat = [settings_of(r) for r in recs]
        keys = sorted({k for f in flat for k in f})
        seen: dict[tuple[str, str], set] = defaultdict(set)
        for r, f in zip(recs, flat, strict=True):
            for k in keys:
                seen[(r["task"], k)].add(f.get(k))
        axes = sorted({k for (_, k), values in seen.items() if len(values) > 1})
        split: dict[tuple, list[int]] = defaultdict(list)
        for i, f in enumerate(flat):
            split[tuple(f.get(k) for k in axes)].append(i)
        for members in split.values():
            row_recs = [recs[i] for i in members]
            settings = {}
            for k in keys:
                values = {flat[i].get(k) for i in members}
                settings[k] = values.pop() if len(values) == 1 else PER_TASK
            rows.append({
                "model": model,
                "method": row_recs[0]["method"].get("name"),
                "label": method_label(row_recs[0]["method"]),
                "records": row_recs,
                "settings": settings,
                "stale": any_stale(row_recs),
            })  # fmt: skip
    rows.sort(key=lambda r: (r["model"], method_order(r["records"][0]["method"]), r["label"],
                             sorted(r["settings"].items(), key=str)))  # fmt: skip
    return rows


def setting_columns(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Settings that differ between rows, as (dotted key, column name) in config order.

    Method settings count only between rows with the same label (the label shows the
    rest); others between any two rows.
    """
    keys = list(dict.fromkeys(k for row in rows for k in row["settings"]))
    shown = []
    for k in keys:
        if _is_method_key(k):
            by_label = defaultdict(set)
            for row in rows:
                by_label[(row["model"], row["label"])].add(row["settings"].get(k))
            differs = any(len(v) > 1 for v in by_label.values())
        else:
            differs = len({row["settings"].get(k) for row in rows}) > 1
        if differs:
            shown.append(k)
    return [(k, _short_name(k, shown)) for k in shown]


def _short_name(key: str, keys: list[str]) -> str:
    """Shortest dotted suffix of ``key`` that no other key in ``keys`` ends with."""
    parts = key.split(".")
    for n in range(1, len(parts) + 1):
        suffix = ".".join(parts[-n:])
        if not any(o != key and (o == suffix or o.endswith("." + suffix)) for o in keys):
            return suffix
    return key


def setting_cell(row: dict[str, Any], key: str) -> str:
    value = row["settings"].get(key)
    if value is None:
        return ""
    return PER_TASK if value == PER_TASK else fmt_value(json.loads(value))


def seeds_cell(counts: Iterable[int]) -> str:
    """``3``, or ``2–3`` when tasks have different numbers of seeds."""
    counts = list(counts)
    if not counts:
        return "0"
    lo, hi = min(counts), max(counts)
    return str(lo) if lo == hi else f"{lo}–{hi}"


def any_stale(records: Iterable[dict[str, Any]]) -> bool:
    """Whether any of ``records`` was made by code other than the current tree."""
    return any(is_stale(r) for r in records)


def row_label(row: dict[str, Any]) -> str:
    """The row's method label, marked when its records come from older code."""
    return row["label"] + (STALE_MARK if row["stale"] else "")


def hardware_line(hw: dict[str, Any]) -> str:
    """One-line summary of a perf record's ``hardware``, for table notes."""
    where = f"GPU {hw['gpu']} (CUDA {hw['cuda']})" if hw["gpu"] else f"CPU {hw['cpu']}"
    return f"{where}, {hw['threads']} torch threads, torch {hw['torch']}"


# -- provenance ------------------------------------------------------------------------


def provenance_line(records: list[dict[str, Any]]) -> str:
    """Which commits and dates a table's records come from (deterministic in the records)."""
    commits: Counter[str] = Counter()
    dirty: set[str] = set()
    dates = []
    for r in records:
        prov = r.get("provenance", {})
        commit = (prov.get("git_commit") or "unknown")[:7]
        commits[commit] += 1
        if prov.get("git_dirty"):
            dirty.add(commit)
        if prov.get("finished_at"):
            dates.append(prov["finished_at"][:10])
    parts = [
        f"{c}{' + uncommitted changes' if c in dirty else ''}"
        + (f" ({_runs(n)})" if len(commits) > 1 else "")
        for c, n in sorted(commits.items(), key=lambda cn: (-cn[1], cn[0]))
    ]
    when = ""
    if dates:
        lo, hi = min(dates), max(dates)
        when = f", finished {lo}" if lo == hi else f", finished {lo} to {hi}"
    commit = "commits" if len(commits) > 1 else "commit"
    return f"Built from {_runs(len(records))} at {commit} {', '.join(parts)}{when}."


def _runs(n: int) -> str:
    return "1 run" if n == 1 else f"{n} runs"


def footer(records: list[dict[str, Any]], stale: bool) -> list[str]:
    """Closing markdown lines of every table: the stale note (if any) and provenance."""
    return (["", STALE_NOTE] if stale else []) + ["", provenance_line(records)]


def latest(records: list[dict[str, Any]], key: Callable[[dict], str]) -> dict[str, dict]:
    """The most recently finished record per ``key(record)`` (one table per key)."""
    out: dict[str, dict] = {}
    for r in sorted(records, key=lambda r: r.get("provenance", {}).get("finished_at") or ""):
        out[key(r)] = r
    return out
