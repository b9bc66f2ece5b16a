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
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from experiments.core import runner
from experiments.core.records import build_record, record_path, run_id, write_atomic
from experiments.core.schema import ConfigError, register_configs
from experiments.tasks import FAMILIES

log = logging.getLogger("experiments.train")

register_configs()


def run(cfg: DictConfig) -> dict[str, Any] | None:
    """One point with every known task family (see :func:`experiments.core.runner.run`)."""
    return runner.run(cfg, FAMILIES)


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
