"""Run one point (or, with ``-m``/a preset, a sweep) and write its result record.

    python -m experiments.train task=rte method=lora method.r=4
    python -m experiments.train experiment=demo          # the README's main job
    python -m experiments.train -m method.r=1,2,4,8 seed=1,2,3

A point whose record already exists is skipped, so a killed sweep resumes where it
stopped; a failing point writes a ``.failed.json`` record and the sweep goes on, then
ends with a summary and a non-zero exit. The Hydra main returns the point's
:func:`objective`, so Hydra's Optuna sweeper (``hydra/sweeper=lr_search``) can search a
setting such as ``train.lr`` on it. A bad setting stops with one line
(``error: ...``) within seconds: the settings are checked before torch, transformers
or datasets are imported. ``verbose=true`` (or ``HYDRA_FULL_ERROR=1``) adds tracebacks.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from experiments.core import distributed, runner
from experiments.core.data import DataError
from experiments.core.schema import (
    ConfigError,
    check_inputs,
    check_settings,
    register_configs,
    unknown_key_message,
    validate,
)
from experiments.tasks import TASK_NAMES, all_task_names

log = logging.getLogger("experiments.train")

register_configs()


def run(cfg: DictConfig) -> dict[str, Any] | None:
    """One point with every known task family (see :func:`experiments.core.runner.run`)."""
    check_settings(cfg, all_task_names(), TASK_NAMES)
    from experiments.tasks import FAMILIES  # torch, transformers: after the checks

    return runner.run(cfg, FAMILIES)


def run_point(cfg: DictConfig) -> runner.Outcome:
    """Check the settings (light), then run the point; a bad setting is an outcome too."""
    try:
        check_settings(cfg, all_task_names(), TASK_NAMES)  # light: no torch
        check_inputs(cfg)
        validate(cfg, all_task_names())  # the method's fields, through lora (torch)
        from experiments.tasks import FAMILIES  # transformers, datasets: after the checks

        return runner.run_point(cfg, FAMILIES)
    except (ConfigError, DataError) as err:
        if cfg.get("verbose"):
            traceback.print_exc()
        return runner.Outcome("config_error", reason=str(err), error=err)


def objective(outcome: runner.Outcome) -> float:
    """The score a search maximises: held-out selection's score when the run held out
    training data (``metrics.heldout.score``), else the main dev metric.

    A skipped point returns its recorded score, so a killed search that is run again
    sees the same values (and a seeded sampler proposes the same points). A failed point
    or a bad setting returns ``-inf``: the worst value, which Optuna still accepts
    (hydra-optuna-sweeper 1.2 stops the whole search on a NaN or an exception), and the
    sweep summary reports the point and makes the exit code non-zero.
    """
    record = outcome.record
    if outcome.status == "skipped" and outcome.path:
        try:
            record = json.loads(Path(outcome.path).read_text())
        except (OSError, ValueError):
            record = None
    if outcome.status not in ("done", "skipped") or not record or "metrics" not in record:
        return -math.inf
    metrics = record["metrics"]
    held = metrics.get("heldout")
    value = held["score"] if held else metrics.get("main")
    return float(value) if isinstance(value, (int, float)) else -math.inf


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    outcome = run_point(cfg)
    if outcome.status == "failed" and cfg.get("verbose") and outcome.error is not None:
        err = outcome.error
        traceback.print_exception(type(err), err, err.__traceback__)
    if HydraConfig.get().mode == RunMode.MULTIRUN:  # the sweep summary reports it
        if distributed.is_main():
            job = HydraConfig.get()
            runner.write_outcome(job.runtime.output_dir, outcome, list(job.overrides.task))
        if outcome.status == "config_error":
            log.error("error: %s", outcome.reason)
        return objective(outcome)
    if outcome.status == "config_error":
        sys.exit(f"error: {outcome.reason}")
    if outcome.status == "failed":
        sys.exit(f"error: {outcome.line()}")
    return objective(outcome)


def hydra_error_line(err: BaseException) -> str:
    """One line for an error Hydra raised while composing the config."""
    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    cause = err.__cause__
    if isinstance(err, MissingConfigException) and err.options:
        found = re.search(r"Could not find '([^']+)/([^'/]+)'", str(err))
        if found:
            group, value = found.groups()
            return (f"invalid setting {group}: {value!r} is not an option; allowed: "
                    f"{', '.join(sorted(err.options))}")  # fmt: skip
    unknown = isinstance(cause, (ConfigKeyError, ConfigAttributeError))
    if unknown and getattr(cause, "full_key", None):
        return unknown_key_message(str(cause.full_key))
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
        first = str(cause).strip().splitlines()[0]
        return f"invalid setting {cause.full_key}: {first}"
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    return " ".join(lines[:2]) if lines else type(err).__name__


def cli() -> None:
    """``python -m experiments.train``: one line and exit 1 for any error."""
    sys.argv += distributed.replica_overrides()  # torchrun ranks > 0: no run folder files
    verbose = os.environ.get("HYDRA_FULL_ERROR") == "1" or any(
        a.lstrip("+") in ("verbose=true", "verbose=True") for a in sys.argv[1:]
    )
    # Hydra re-raises its compose errors to us instead of printing several lines
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except Exception as err:
        if verbose:
            raise
        sys.exit(f"error: {hydra_error_line(err)}")
    if runner.LAST_SWEEP_FAILURES and runner.LAST_SWEEP_FAILURES[-1]:
        sys.exit(f"error: {runner.LAST_SWEEP_FAILURES[-1]} sweep point(s) failed or had a bad "
                 "setting; see the summary above")  # fmt: skip


if __name__ == "__main__":
    cli()
