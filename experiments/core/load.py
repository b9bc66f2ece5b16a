"""Read result records for the tables and the drivers that choose from them
(experiments/successors.py), skipping (with one warning each) what cannot be used.

Writing records stays in :mod:`experiments.core.records` (whose ``load_records`` takes
every ``status: ok`` record as it is); this side only reads, and checks. A record
counts when it parses, has the current ``schema_version``, ``status: ok`` and the keys
its table needs. A corrupt or old record costs one warning line naming the file, never
the other tables.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from experiments.core.records import SCHEMA_VERSION
from experiments.glue.data import TASKS as GLUE_TASKS

log = logging.getLogger(__name__)

#: Experiments written by the perf jobs (experiments/perf), one table per record name.
PERF_EXPERIMENTS = ("latency", "bench")
_COMMON = ("status", "experiment", "provenance")
#: Dotted keys each kind of record must have for its table.
REQUIRED = {
    "glue": ("model", "task", "method", "config", "metrics.main", "params.method",
             "params.trainable", "params.total", "data.train_size"),
    "e2e": ("model", "task", "method", "config", "metrics.test", "metrics.best_epoch",
            "params.method", "params.trainable", "params.total", "data.train_size",
            "data.train_available", "data.eval_sizes", "data.test_references", "decode"),
    "webnlg": ("model", "task", "method", "config", "metrics.test", "params.method",
               "params.trainable", "params.total", "data.train_size", "data.train_available",
               "data.eval_sizes", "data.test_subset_sizes", "data.test_references", "decode"),
    "latency": ("settings.name", "settings.preset", "points", "variants", "targets", "hardware"),
    "bench": ("settings.name", "models", "memory", "targets", "hardware"),
    "spectrum": ("model", "task", "method", "seed", "source.run_id", "source.row", "settings",
                 "spectrum"),
    "analysis": ("model", "task", "model_config", "source", "settings", "shape", "table7",
                 "figure3", "figure4"),
}  # fmt: skip


def kind(record: dict[str, Any]) -> str | None:
    """``glue``, ``e2e``, ``webnlg``, ``latency``, ``bench``, ``spectrum``, ``analysis``, or
    None for a record no table takes."""
    if record.get("experiment") in PERF_EXPERIMENTS:
        return record["experiment"]
    if record.get("kind") == "spectrum":  # experiments.spectrum: ΔW of a run's saved weights
        return "spectrum"
    if record.get("kind") == "analysis":  # experiments.analysis_job: paper §7 from adapters
        return "analysis"
    if record.get("task") == "e2e":
        return "e2e"
    if record.get("task") == "webnlg":  # DART (only an "all" subset) has no table yet
        return "webnlg"
    return "glue" if record.get("task") in GLUE_TASKS else None


def _missing(record: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    out = []
    for key in keys:
        node: Any = record
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                out.append(key)
                break
            node = node[part]
    return out


def problem(record: Any) -> str | None:
    """Why ``record`` cannot go into a table, or None when it can."""
    if not isinstance(record, dict):
        return "not a JSON object"
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        return f"schema_version {version!r}, expected {SCHEMA_VERSION} (older code; rerun it)"
    k = kind(record)
    if k is None:
        return f"no table for task {record.get('task')!r}"
    missing = _missing(record, _COMMON + REQUIRED[k])
    return f"missing {', '.join(missing)}" if missing else None


def _reject(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # strict JSON: a NaN score would poison a median


def load_records(results_dir: str | os.PathLike, experiment: str | None = None) -> list[dict]:
    """The usable ``status: ok`` records under ``results_dir/runs`` (one experiment, or all).

    Failed runs (``*.failed.json``, or another status) are left out silently; a file that
    does not parse or does not fit the current schema is left out with a warning.
    """
    root = Path(results_dir) / "runs"
    pattern = f"{experiment}/*.json" if experiment else "*/*.json"
    records = []
    for path in sorted(root.glob(pattern)):
        if path.name.endswith(".failed.json"):
            continue
        try:
            record = json.loads(path.read_text(), parse_constant=_reject)
        except (OSError, UnicodeDecodeError, ValueError) as err:
            log.warning("skipping %s: not readable JSON (%s)", path, err)
            continue
        if isinstance(record, dict) and record.get("status") not in (None, "ok"):
            continue
        why = problem(record)
        if why is not None:
            log.warning("skipping %s: %s", path, why)
            continue
        records.append(record)
    return records
