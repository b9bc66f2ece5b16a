"""Registry of task families: the tasks each knows, its runner, and the files it reads.

The entry points read it; task families never import each other, only ``experiments.core``.
:data:`TASK_NAMES` is light (no torch, transformers or datasets), so settings are checked
before anything heavy loads; :data:`FAMILIES` imports a family's runner when it is first
looked up
(``tests/test_config.py`` checks that both agree).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from experiments.core.runner import Family

#: family -> its task names, in the order error messages list them
TASK_NAMES: dict[str, tuple[str, ...]] = {
    "glue": ("mnli", "sst2", "mrpc", "cola", "qnli", "qqp", "rte", "stsb"),
    "e2e": ("e2e",),
    "webnlg": ("webnlg",),
    "dart": ("dart",),
}


def all_task_names() -> list[str]:
    """Every task name, over every family (light)."""
    return [name for names in TASK_NAMES.values() for name in names]


def _glue() -> Family:
    from experiments.core.runner import Family
    from experiments.glue import data as glue_data
    from experiments.glue.task import run_glue

    return Family(
        tasks=glue_data.TASKS,
        run=run_glue,
        data_files=lambda cfg: glue_data.data_files(cfg.task.name, cfg.data.dir),
        hub_dataset=glue_data.HUB_DATASET,
    )


def _e2e() -> Family:
    from experiments.core.runner import Family
    from experiments.e2e import data as e2e_data
    from experiments.e2e.task import TASKS as E2E_TASKS
    from experiments.e2e.task import run_e2e

    return Family(
        tasks=E2E_TASKS,
        run=run_e2e,
        data_files=lambda cfg: e2e_data.data_files(cfg.data.dir),
        hub_dataset=e2e_data.HUB_DATASET,
    )


# WebNLG and DART share one runner (experiments/webnlg/task.py)
def _webnlg() -> Family:
    from experiments.core.runner import Family
    from experiments.webnlg import data as webnlg_data
    from experiments.webnlg.task import run_webnlg

    return Family(
        tasks={"webnlg": "WebNLG 2017 challenge"},
        run=run_webnlg,
        data_files=lambda cfg: webnlg_data.data_files(cfg.data.dir),
        hub_dataset=webnlg_data.HUB_DATASET,
    )


def _dart() -> Family:
    from experiments.core.runner import Family
    from experiments.webnlg import dart as dart_data
    from experiments.webnlg.task import run_webnlg

    return Family(
        tasks={"dart": "DART v1.1.1"},
        run=run_webnlg,
        data_files=lambda cfg: dart_data.data_files(cfg.data.dir),
        hub_dataset=dart_data.HUB_DATASET,
    )


class _Families(Mapping):
    """family -> :class:`Family`, each family's modules imported on first access only, so
    a run imports (and its record lists, see ``code_files``) no other family's code."""

    _LOADERS: dict[str, Callable[[], Family]] = {
        "glue": _glue, "e2e": _e2e, "webnlg": _webnlg, "dart": _dart,
    }  # fmt: skip

    def __init__(self) -> None:
        self._loaded: dict[str, Family] = {}

    def __getitem__(self, name: str) -> Family:
        if name not in self._loaded:
            self._loaded[name] = self._LOADERS[name]()  # KeyError: not a family
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._LOADERS)

    def __len__(self) -> int:
        return len(self._LOADERS)


_cache: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    # ``from experiments.tasks import FAMILIES`` builds the lazy mapping only then
    if name == "FAMILIES":
        if "FAMILIES" not in _cache:
            _cache["FAMILIES"] = _Families()
        return _cache["FAMILIES"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def known_tasks() -> dict[str, Any]:
    """Task name -> task spec, over every family (imports the families)."""
    families = __getattr__("FAMILIES")
    return {name: spec for f in families.values() for name, spec in f.tasks.items()}


def data_fingerprint(cfg: DictConfig) -> str:
    """Fingerprint of the data a run of ``cfg`` reads (its task family lists the files).

    Raises:
        FileNotFoundError: a local data file is missing.
    """
    from experiments.core import records

    family = __getattr__("FAMILIES")[cfg.task.family]
    return records.data_fingerprint(family.data_files(cfg), family.hub_dataset)


def run_id(cfg: DictConfig) -> str:
    """The run id of ``cfg`` (:func:`experiments.core.records.run_id`) with its data."""
    from experiments.core import records

    return records.run_id(cfg, data_fingerprint(cfg))
