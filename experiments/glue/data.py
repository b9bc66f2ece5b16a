"""GLUE data: from a local folder in the standard GLUE layout, or from the Hub.

Local layout (what ``download_glue_data.py`` writes)::

    <data.dir>/glue/SST-2/train.tsv, dev.tsv        (or <data.dir>/SST-2/...)
    <data.dir>/glue/MNLI/train.tsv, dev_matched.tsv, dev_mismatched.tsv

The folder comes from ``data.dir=`` or ``LORA_DATA_DIR``; with neither set the
splits are read from the Hub dataset ``nyu-mll/glue``. Either way the columns and
label ids follow the Hub schema, so the rest of the harness sees one format.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, DatasetDict

from experiments.core.data import resolve_data_dir

HUB_DATASET = "nyu-mll/glue"
NLI_LABELS = {"entailment": 0, "not_entailment": 1}


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task as the paper evaluates it (Table 2).

    Attributes:
        name: harness name (``task.name``), e.g. ``"sst2"``.
        display: the paper's column name, e.g. ``"SST-2"``.
        folder: GLUE folder name in the local layout.
        text_fields: Hub column names of the one or two input texts.
        num_labels: classes; 1 for the STS-B regression.
        main_metric: the metric of the paper's table column (best epoch picked by it).
        eval_splits: eval name -> (local file, Hub split). The first is the main one.
        columns: local column -> Hub column (header names; ints for header-less CoLA).
        label_map: string labels of the local files -> Hub ids.
    """

    name: str
    display: str
    folder: str
    text_fields: tuple[str, ...]
    num_labels: int
    main_metric: str
    eval_splits: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {"dev": ("dev.tsv", "validation")}
    )
    columns: dict[str | int, str] = field(default_factory=dict)
    label_map: dict[str, int] | None = None
    has_header: bool = True

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1


TASKS: dict[str, GlueTask] = {
    t.name: t
    for t in [
        GlueTask(
            "mnli", "MNLI", "MNLI", ("premise", "hypothesis"), 3, "accuracy",
            eval_splits={
                "m": ("dev_matched.tsv", "validation_matched"),
                "mm": ("dev_mismatched.tsv", "validation_mismatched"),
            },
            columns={"sentence1": "premise", "sentence2": "hypothesis", "gold_label": "label"},
            label_map={"entailment": 0, "neutral": 1, "contradiction": 2},
        ),
        GlueTask(
            "sst2", "SST-2", "SST-2", ("sentence",), 2, "accuracy",
            columns={"sentence": "sentence", "label": "label"},
        ),
        GlueTask(
            "mrpc", "MRPC", "MRPC", ("sentence1", "sentence2"), 2, "accuracy",
            columns={"#1 String": "sentence1", "#2 String": "sentence2", "Quality": "label"},
        ),
        GlueTask(
            "cola", "CoLA", "CoLA", ("sentence",), 2, "matthews_correlation",
            columns={3: "sentence", 1: "label"}, has_header=False,
        ),
        GlueTask(
            "qnli", "QNLI", "QNLI", ("question", "sentence"), 2, "accuracy",
            columns={"question": "question", "sentence": "sentence", "label": "label"},
            label_map=NLI_LABELS,
        ),
        GlueTask(
            "qqp", "QQP", "QQP", ("question1", "question2"), 2, "accuracy",
            columns={"question1": "question1", "question2": "question2", "is_duplicate": "label"},
        ),
        GlueTask(
            "rte", "RTE", "RTE", ("sentence1", "sentence2"), 2, "accuracy",
            columns={"sentence1": "sentence1", "sentence2": "sentence2", "label": "label"},
            label_map=NLI_LABELS,
        ),
        GlueTask(
            "stsb", "STS-B", "STS-B", ("sentence1", "sentence2"), 1, "pearson",
            columns={"sentence1": "sentence1", "sentence2": "sentence2", "score": "label"},
        ),
    ]
}  # fmt: skip


def get_task(name: str) -> GlueTask:
    """Return the :class:`GlueTask` called ``name``.

    Raises:
        ValueError: unknown task; the message lists the known ones.
    """
    if name not in TASKS:
        raise ValueError(f"unknown GLUE task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]


def _local_path(root: Path, task: GlueTask, filename: str) -> Path:
    for candidate in (root / "glue" / task.folder / filename, root / task.folder / filename):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"GLUE file not found: {root / 'glue' / task.folder / filename}. Point data.dir= "
        "(or LORA_DATA_DIR) at a folder in the GLUE layout, or unset both to use the Hub "
        f"dataset {HUB_DATASET}"
    )


def read_tsv(path: Path, task: GlueTask) -> Dataset:
    """Parse one GLUE TSV into a Dataset with the Hub's columns and label ids."""
    columns: dict[str, list] = {hub: [] for hub in task.columns.values()}
    # utf-8-sig drops MRPC's BOM; QUOTE_NONE because GLUE text contains bare quotes.
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(rows) if task.has_header else None
        index = {c: (header.index(c) if header else c) for c in task.columns}
        for row in rows:
            if not row or len(row) <= max(index.values()):
                continue
            for col, hub in task.columns.items():
                value = row[index[col]]
                if hub == "label":
                    value = _label(value, task)
                columns[hub].append(value)
    return Dataset.from_dict(columns)


def _label(value: str, task: GlueTask) -> int | float:
    if task.is_regression:
        return float(value)
    if task.label_map is not None and value in task.label_map:
        return task.label_map[value]
    return int(value)


def data_files(task_name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The local files a run of ``task_name`` reads; ``[]`` when it reads the Hub.

    Raises:
        ValueError: unknown task.
        FileNotFoundError: a local file is missing.
    """
    task = get_task(task_name)
    root = resolve_data_dir(data_dir)
    if root is None:
        return []
    names = ["train.tsv", *(f for f, _ in task.eval_splits.values())]
    return [_local_path(root, task, f) for f in names]


def load_glue(task_name: str, data_dir: str | os.PathLike | None = None) -> DatasetDict:
    """Load ``train`` plus the task's eval splits (``dev``, or ``m``/``mm`` for MNLI).

    Args:
        task_name: one of :data:`TASKS`.
        data_dir: local GLUE folder; ``None`` falls back to ``LORA_DATA_DIR``, then the Hub.

    Returns:
        DatasetDict with text columns ``task.text_fields`` and ``label`` (int, or float
        for STS-B).

    Raises:
        ValueError: unknown task.
        FileNotFoundError: a local file is missing (the message names it and both options).
    """
    task = get_task(task_name)
    root = resolve_data_dir(data_dir)
    if root is None:
        from datasets import load_dataset

        hub = load_dataset(HUB_DATASET, task.name)
        splits = {"train": hub["train"]}
        splits.update({name: hub[split] for name, (_, split) in task.eval_splits.items()})
        keep = [*task.text_fields, "label"]
        return DatasetDict({k: v.select_columns(keep) for k, v in splits.items()})
    files = {"train": "train.tsv", **{n: f for n, (f, _) in task.eval_splits.items()}}
    return DatasetDict({k: read_tsv(_local_path(root, task, f), task) for k, f in files.items()})
