"""Run one point of an experiment: validate, skip if done, train, write the record."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import DictConfig

from experiments.core.records import build_record, record_path, run_id, write_atomic
from experiments.core.schema import ConfigError, validate
from experiments.core.training import log_summary, setup_logger

log = logging.getLogger("experiments.train")


class Family(NamedTuple):
    """One task family as the runner sees it (registered in ``experiments/tasks.py``).

    Attributes:
        tasks: task name -> task spec.
        run: ``run(cfg, method, output_dir) -> record part`` (metrics, params, timing ...).
        data_files: ``data_files(cfg) -> [Path]``, the local files a run reads (``[]``: Hub).
        hub_dataset: the Hub id read when no local folder is set.
    """

    tasks: dict[str, Any]
    run: Callable[..., dict[str, Any]]
    data_files: Callable[[DictConfig], list[Path]]
    hub_dataset: str


Families = dict[str, Family]


def run(cfg: DictConfig, families: Families) -> dict[str, Any] | None:
    """Validate, skip if done, train, and write the record. Returns the record.

    Raises:
        ConfigError: a bad setting (before any model or data is loaded).
    """
    known = {name: spec for f in families.values() for name, spec in f.tasks.items()}
    method = validate(cfg, known)
    family = cfg.task.family
    if family not in families or cfg.task.name not in families[family].tasks:
        raise ConfigError(
            f"invalid setting task.family: task {cfg.task.name!r} is not in family {family!r}"
        )
    rid = run_id(cfg)
    done = record_path(cfg, rid)
    if done.exists():
        log.info("skip %s: record exists at %s", rid, done)
        return None
    log.info("run %s", rid)
    setup_logger(cfg, rid)
    output_dir = Path(cfg.paths.output_dir) / "runs" / cfg.experiment_name / rid
    result = families[family].run(cfg, method, output_dir)
    record = build_record(cfg, rid, "ok", result)
    write_atomic(done, record)
    record_path(cfg, rid, failed=True).unlink(missing_ok=True)
    log.info("%s: %s = %.4f -> %s", rid, result["metrics"]["main_metric"],
             result["metrics"]["main"], done)  # fmt: skip
    log_summary(cfg, record)
    return record
