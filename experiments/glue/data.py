"""GLUE data: from a local folder in the standard GLUE layout, or from the Hub.

Local layout (what ``download_glue_data.py`` writes)::

    <data.dir>/glue/SST-2/train.tsv, dev.tsv        (or <data.dir>/SST-2/...)
    <data.dir>/glue/MNLI/train.tsv, dev_matched.tsv, dev_mismatched.tsv

The folder comes from ``data.dir=`` or ``LORA_DATA_DIR``; with neither set the
splits are read from the Hub dataset ``nyu-mll/glue``. Either way the columns and
label ids follow the Hub schema, so the rest of the harness sees one format.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, DatasetDict

from experiments.core.data import DataError, resolve_data_dir, text_lines

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
        has_header: the local files start with a header row (all but CoLA).
        num_fields: fields per row of a header-less file (CoLA: source, label, mark, text).
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
    num_fields: int | None = None

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    @property
    def labels(self) -> dict[str, int]:
        """Label strings of the local files -> Hub ids (``{}`` for the regression)."""
        if self.is_regression:
            return {}
        return self.label_map or {str(i): i for i in range(self.num_labels)}


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
            columns={3: "sentence", 1: "label"}, has_header=False, num_fields=4,
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


#: STS-B similarity scores lie in [0, 5] (Cer et al. 2017).
STSB_RANGE = (0.0, 5.0)


def read_tsv(path: Path, task: GlueTask) -> Dataset:
    """Parse one GLUE TSV into a Dataset with the Hub's columns and label ids.

    Checks as it reads: UTF-8, a header with the task's columns, every row with as many
    fields as the header, labels in the task's set (STS-B: a number in [0, 5]). Blank
    lines at the end of the file are allowed.

    Raises:
        DataError: one line, ``<path>:<line>: <problem>; <what was expected>``.
    """
    columns: dict[str, list] = {hub: [] for hub in task.columns.values()}
    lines = enumerate(text_lines(path), 1)  # BOM (MRPC) dropped
    if task.has_header:
        first = next(lines, None)
        expected = ", ".join(str(c) for c in task.columns)
        if first is None:
            raise DataError(f"{path}: empty file, expected a header with columns {expected}")
        header = _fields(first[1])
        missing = [c for c in task.columns if c not in header]
        if missing:
            raise DataError(
                f"{path}:1: header lacks column {missing[0]!r} ({task.display} needs "
                f"{expected}); header found: {', '.join(header)}"
            )
        index = {c: header.index(c) for c in task.columns}
        width = len(header)
    else:  # header-less (CoLA): the columns are field positions
        index = {c: int(c) for c in task.columns}
        width = task.num_fields or max(index.values()) + 1
    blank = None  # first blank line of a run; fine only at the end of the file
    for number, line in lines:
        if not line.strip("\r\n"):
            blank = blank or number
            continue
        if blank is not None:
            raise DataError(f"{path}:{blank}: blank line inside the data; remove it")
        row = _fields(line)
        if len(row) != width:
            what = "header's" if task.has_header else f"{task.display} format's"
            raise DataError(
                f"{path}:{number}: {len(row)} tab-separated fields, expected the {what} "
                f"{width}; the row is cut short or has a stray tab"
            )
        for col, hub in task.columns.items():
            value = row[index[col]]
            columns[hub].append(_label(value, task, path, number) if hub == "label" else value)
    if not columns["label"]:
        if task.has_header:
            raise DataError(f"{path}: no data rows after the header")
        raise DataError(f"{path}: empty file, expected rows of {width} tab-separated fields")
    return Dataset.from_dict(columns)


def _fields(line: str) -> list[str]:
    # GLUE text holds bare quotes, so no CSV quoting: one line is one row.
    return line.rstrip("\r\n").split("\t")


def _label(value: str, task: GlueTask, path: Path, line: int) -> int | float:
    if task.is_regression:
        low, high = STSB_RANGE
        try:
            score = float(value)
        except ValueError:
            score = math.nan
        if not low <= score <= high:  # NaN fails too
            raise DataError(
                f"{path}:{line}: label {value!r} is not a number in [{low:g}, {high:g}]"
            )
        return score
    labels = task.labels
    if value not in labels:
        raise DataError(f"{path}:{line}: label {value!r} not in {{{', '.join(labels)}}}")
    return labels[value]


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
