"""Run one point of an experiment: validate, skip if done, train, write the record.

A point ends in one :class:`Outcome`: ``done`` (record written), ``skipped`` (record
exists), ``failed`` (the run raised: ``<id>.failed.json`` holds the reason and step) or
``config_error`` (a bad setting or data file: nothing written). In a sweep each job
leaves its outcome in its Hydra job folder and :class:`SweepSummary` prints them once
at the end; this works alike for in-process (basic) and worker-process (joblib) launchers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from experiments.core import distributed
from experiments.core.data import DataError
from experiments.core.records import (
    build_record,
    data_fingerprint,
    failure_record,
    is_stale,
    one_line,
    record_path,
    run_id,
    write_atomic,
)
from experiments.core.schema import (
    MODEL_HELP,
    ConfigError,
    check_inputs,
    nonfinite_path,
    validate,
)

log = logging.getLogger("experiments.train")
OUTCOME_FILE = "outcome.json"


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


class Outcome(NamedTuple):
    """How one point ended (see the module docstring for ``status``)."""

    status: str
    run_id: str | None = None
    reason: str | None = None
    step: int | None = None
    path: str | None = None  # the record written (or found)
    record: dict[str, Any] | None = None
    error: BaseException | None = None

    def line(self) -> str:
        """``run <id> failed at step N: <reason>; see <path>`` and the like."""
        if self.status == "failed":
            at = f" at step {self.step}" if self.step is not None else ""
            return f"run {self.run_id} failed{at}: {self.reason}; see {self.path}"
        if self.status == "config_error":
            return str(self.reason)
        return f"run {self.run_id} {self.status}: {self.path}"

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("status", "run_id", "reason", "step", "path")}


class NonFiniteResult(ValueError):
    """A finished run's result holds NaN or infinity: a failure, never an ok record."""


def _is_model_load_error(err: BaseException, cfg: DictConfig) -> bool:
    # transformers raises OSError naming the model (or the Hub) when it cannot load it
    text = str(err)
    return isinstance(err, OSError) and (
        str(cfg.model.pretrained) in text or "huggingface.co" in text
    )


def run_point(cfg: DictConfig, families: Families) -> Outcome:
    """Validate, skip if done, train, and write the record (or the failure record).

    Raises:
        ConfigError: a bad setting (before any model or data is loaded), a missing data
            file, or a model that cannot be loaded.
        DataError: a malformed data file.
    """
    family = cfg.task.family  # only this family loads: a run imports no other's code
    if family not in families or cfg.task.name not in families[family].tasks:
        raise ConfigError(
            f"invalid setting task.family: task {cfg.task.name!r} is not in family {family!r}"
        )
    fam = families[family]
    method = validate(cfg, fam.tasks)
    check_inputs(cfg)
    try:
        rid = run_id(cfg, data_fingerprint(fam.data_files(cfg), fam.hub_dataset))
    except FileNotFoundError as err:  # a local data file is missing: a setting to fix
        raise ConfigError(f"invalid setting data.dir: {one_line(err)}") from None
    done = record_path(cfg, rid)
    skip = done.exists()
    if skip and cfg.rerun_stale:
        try:
            skip = not is_stale(json.loads(done.read_text()))
        except (OSError, ValueError):  # unreadable record: rerun it
            skip = False
        if not skip:
            log.info("rerun %s: its record was made by other code (rerun_stale=true)", rid)
    # rank 0 decides, so that all ranks of a torchrun launch skip or none does
    if distributed.from_main(skip, cpu=bool(cfg.trainer.use_cpu)):
        log.info("skip %s: record exists at %s", rid, done)
        return Outcome("skipped", rid, path=str(done))
    log.info("run %s", rid)
    from experiments.core.training import log_summary, setup_logger  # heavy: transformers

    setup_logger(cfg, rid)
    output_dir = Path(cfg.paths.output_dir) / "runs" / cfg.experiment_name / rid
    failed = record_path(cfg, rid, failed=True)
    try:
        result = families[family].run(cfg, method, output_dir)
        if not distributed.is_main():  # one record per point, written by rank 0
            return Outcome("done", rid, path=str(done))
        record = build_record(cfg, rid, "ok", result)
        bad = nonfinite_path(record)
        if bad is not None:
            raise NonFiniteResult(f"{bad} is not finite")
    except (ConfigError, DataError):
        raise
    except Exception as err:
        if _is_model_load_error(err, cfg):
            raise ConfigError(
                f"invalid setting model.pretrained: cannot load {cfg.model.pretrained!r} "
                f"({one_line(err)[:200]}); {MODEL_HELP}"
            ) from err
        outcome = Outcome("failed", rid, one_line(err), getattr(err, "step", None),
                          str(failed), error=err)  # fmt: skip
        if distributed.is_main():  # rank 0 writes the failure record; replicas go on alike
            write_atomic(failed, failure_record(cfg, rid, err) | {"error": repr(err)})
        log.info("%s", outcome.line())
        return outcome
    write_atomic(done, record)  # replaces a stale record when rerun_stale=true
    failed.unlink(missing_ok=True)
    log.info("%s: %s = %.4f -> %s", rid, result["metrics"]["main_metric"],
             result["metrics"]["main"], done)  # fmt: skip
    log_summary(cfg, record)
    return Outcome("done", rid, path=str(done), record=record)


def run(cfg: DictConfig, families: Families) -> dict[str, Any] | None:
    """:func:`run_point`, returning the record (None when skipped).

    Raises:
        ConfigError, DataError: see :func:`run_point`.
        Exception: the run's own error, after its failure record is written.
    """
    outcome = run_point(cfg, families)
    if outcome.status == "failed":
        assert outcome.error is not None
        raise outcome.error
    return outcome.record


def write_outcome(folder: str | Path, outcome: Outcome, overrides: list[str]) -> None:
    """Leave a sweep job's outcome in its Hydra job folder for :class:`SweepSummary`."""
    path = Path(folder) / OUTCOME_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**outcome.to_json(), "overrides": overrides}))


#: set by :class:`SweepSummary`: the number of points that failed or had a bad setting
LAST_SWEEP_FAILURES: list[int] = []


def summarize(sweep_dir: str | Path) -> tuple[list[str], int]:
    """Summary lines of the outcomes under ``sweep_dir``, and how many points went wrong."""
    outcomes = []
    for path in sorted(Path(sweep_dir).rglob(OUTCOME_FILE)):
        try:
            outcomes.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    count = {s: sum(o["status"] == s for o in outcomes)
             for s in ("done", "skipped", "failed", "config_error")}  # fmt: skip
    lines = [f"sweep: {len(outcomes)} points: {count['done']} done, {count['skipped']} "
             f"skipped (record exists), {count['failed']} failed, {count['config_error']} "
             f"with a bad setting"]  # fmt: skip
    for o in outcomes:
        if o["status"] == "failed":
            at = f" at step {o['step']}" if o.get("step") is not None else ""
            lines.append(f"  failed: run {o['run_id']}{at}: {o['reason']}; see {o['path']}")
        elif o["status"] == "config_error":
            lines.append(f"  bad setting ({' '.join(o['overrides'])}): {o['reason']}")
    return lines, count["failed"] + count["config_error"]


class SweepSummary(Callback):
    """Hydra callback (``hydra.callbacks`` in conf/config.yaml): the sweep's summary.

    Reads the outcome files the jobs left (any launcher), prints the summary once, and
    records the failures for the entry point's exit code.
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not distributed.is_main():
            return
        lines, bad = summarize(config.hydra.sweep.dir)
        print("\n".join(lines), flush=True)
        LAST_SWEEP_FAILURES.append(bad)
