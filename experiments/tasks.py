"""Registry of task families: the tasks each knows, its runner, and the files it reads.

The entry points read it; task families never import each other, only ``experiments.core``.
"""

from __future__ import annotations

from typing import Any

from experiments.core.runner import Family
from experiments.e2e import data as e2e_data
from experiments.e2e.task import TASKS as E2E_TASKS
from experiments.e2e.task import run_e2e
from experiments.glue import data as glue_data
from experiments.glue.task import run_glue

FAMILIES: dict[str, Family] = {
    "glue": Family(
        tasks=glue_data.TASKS,
        run=run_glue,
        data_files=lambda cfg: glue_data.data_files(cfg.task.name, cfg.data.dir),
        hub_dataset=glue_data.HUB_DATASET,
    ),
    "e2e": Family(
        tasks=E2E_TASKS,
        run=run_e2e,
        data_files=lambda cfg: e2e_data.data_files(cfg.data.dir),
        hub_dataset=e2e_data.HUB_DATASET,
    ),
}


def known_tasks() -> dict[str, Any]:
    """Task name -> task spec, over every family."""
    return {name: spec for f in FAMILIES.values() for name, spec in f.tasks.items()}
