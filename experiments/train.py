"""Run one point (or, with ``-m``/a preset, a sweep) and write its result record.

    python -m experiments.train task=rte method=lora method.r=4
    python -m experiments.train experiment=demo          # the README's main job
    python -m experiments.train -m method.r=1,2,4,8 seed=1,2,3

A point whose record already exists is skipped, so a killed sweep resumes where it
stopped; a failing point writes a ``.failed.json`` record and the sweep goes on.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from experiments.e2e_task import TASKS as E2E_TASKS
from experiments.e2e_task import run_e2e
from experiments.glue_data import TASKS as GLUE_TASKS
from experiments.glue_task import run_glue
from experiments.records import build_record, record_path, run_id, write_atomic
from experiments.schema import ConfigError, register_configs, validate
from experiments.training import log_summary, setup_logger

log = logging.getLogger("experiments.train")

#: task family -> (known task names, runner)
FAMILIES: dict[str, tuple[dict[str, Any], Callable[..., dict[str, Any]]]] = {
    "glue": (GLUE_TASKS, run_glue),
    "e2e": (E2E_TASKS, run_e2e),
}

register_configs()


def known_tasks() -> dict[str, Any]:
    return {name: spec for tasks, _ in FAMILIES.values() for name, spec in tasks.items()}


def run(cfg: DictConfig) -> dict[str, Any] | None:
    """Validate, skip if done, train, and write the record. Returns the record.

    Raises:
        ConfigError: a bad setting (before any model or data is loaded).
    """
    method = validate(cfg, known_tasks())
    family = cfg.task.family
    if family not in FAMILIES or cfg.task.name not in FAMILIES[family][0]:
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
    result = FAMILIES[family][1](cfg, method, output_dir)
    record = build_record(cfg, rid, "ok", result)
    write_atomic(done, record)
    record_path(cfg, rid, failed=True).unlink(missing_ok=True)
    log.info("%s: %s = %.4f -> %s", rid, result["metrics"]["main_metric"],
             result["metrics"]["main"], done)  # fmt: skip
    log_summary(cfg, record)
    return record


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        run(cfg)
    except ConfigError as err:
        if not multirun:
            sys.exit(f"error: {err}")
        log.error("%s", err)
    except Exception as err:  # one failed point must not stop the sweep
        rid = run_id(cfg)
        write_atomic(
            record_path(cfg, rid, failed=True),
            build_record(
                cfg, rid, "failed", None, error=repr(err), traceback=traceback.format_exc()
            ),
        )
        log.exception("run %s failed; wrote %s", rid, record_path(cfg, rid, failed=True))
        if not multirun:
            raise


if __name__ == "__main__":
    main()
