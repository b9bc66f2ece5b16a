"""Registry of task families: which tasks the harness knows and the runner of each family.

The entry points read it; task families never import each other, only ``experiments.core``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from experiments.e2e.task import TASKS as E2E_TASKS
from experiments.e2e.task import run_e2e
from experiments.glue.data import TASKS as GLUE_TASKS
from experiments.glue.task import run_glue

#: task family -> (known task names, runner)
FAMILIES: dict[str, tuple[dict[str, Any], Callable[..., dict[str, Any]]]] = {
    "glue": (GLUE_TASKS, run_glue),
    "e2e": (E2E_TASKS, run_e2e),
}


def known_tasks() -> dict[str, Any]:
    """Task name -> task spec, over every family."""
    return {name: spec for tasks, _ in FAMILIES.values() for name, spec in tasks.items()}
