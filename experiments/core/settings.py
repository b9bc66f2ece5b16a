"""A record's settings as flat dotted keys: what makes two records one configuration.

A table row pools the seeds of one configuration (:mod:`experiments.report.common`);
a learning-rate search's trials are one configuration but for the lr
(:mod:`experiments.core.selection`). Both compare records by these keys.
"""

from __future__ import annotations

import json
from typing import Any

# Left out of a record's settings: what core/records.py leaves out of a run's identity
# (_NOT_IDENTITY and data.dir), the seed (pooled), the task (a column of its own) and
# `row`, a preset's name for the hparams it picks (their resolved values are in the config).
_NOT_SETTINGS = ("paths", "logger", "notes", "hparams", "rerun_stale", "verbose", "seed", "task",
                 "experiment_name", "row")  # fmt: skip


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config -> ``{"prefix.dotted.key": JSON value}`` (empty dicts kept as ``{}``)."""
    if isinstance(node, dict) and node:
        out = {}
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: json.dumps(node, sort_keys=True)}


def settings_of(record: dict[str, Any]) -> dict[str, str]:
    """The record's config as ``dotted.key -> JSON value``, less what is not a setting."""
    config = {k: v for k, v in record.get("config", {}).items() if k not in _NOT_SETTINGS}
    config["data"] = {k: v for k, v in config.get("data", {}).items() if k != "dir"}
    return flatten(config)
