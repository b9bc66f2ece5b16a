"""The GLUE table (paper Table 2) from result records.

One row per configuration (:func:`experiments.report.common.group_rows`), columns the
tasks and their average: the median over seeds as the paper reports (§D.1), with the
min–max over seeds beside it when there are several, the three parameter counts, the
settings that differ between rows, and the paper's own row beside ours where model and
method match one of its rows.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from experiments.glue.data import TASKS as GLUE_TASKS
from experiments.report.common import (
    fmt_params,
    footer,
    group_rows,
    row_label,
    seeds_cell,
    setting_cell,
    setting_columns,
)
from experiments.report.labels import method_names
from experiments.report.paper_numbers import GLUE_COLUMNS, TABLE2, PaperRow, paper_rows


def glue_rows(records: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """The task columns present (paper order) and the rows of :func:`group_rows`, each
    with ``scores`` (task -> median ×100), ``spread`` (task -> (min, max) ×100, for ≥ 2
    seeds), ``seeds`` (task -> n), ``avg`` (None unless every task has a score) and
    ``train_sizes``.
    """
    columns = [t for t in GLUE_COLUMNS if any(r["task"] == t for r in records)]
    rows = group_rows([r for r in records if r["task"] in GLUE_TASKS])
    for row in rows:
        row.update(scores={}, spread={}, seeds={}, train_sizes={})
        for task in columns:
            recs = [r for r in row["records"] if r["task"] == task]
            if not recs:
                continue
            values = [100 * r["metrics"]["main"] for r in recs]
            row["scores"][task] = statistics.median(values)
            row["seeds"][task] = len(values)
            if len(values) > 1:
                row["spread"][task] = (min(values), max(values))
            row["train_sizes"][task] = recs[0]["data"]["train_size"]
        complete = len(row["scores"]) == len(columns)
        row["avg"] = statistics.mean(row["scores"].values()) if complete else None
    return columns, rows


def _score_cell(row: dict[str, Any], task: str) -> str:
    if task not in row["scores"]:
        return ""
    text = f"{row['scores'][task]:.1f}"
    if task in row["spread"]:
        lo, hi = row["spread"][task]
        text += f" ({lo:.1f}–{hi:.1f})"
    return text


def _paper_cells(row: PaperRow, columns: list[str]) -> list[str]:
    cells = [f"{row.scores[c]:.1f}" if c in row.scores else "" for c in columns]
    values = [row.scores[c] for c in columns if c in row.scores]
    avg = f"{statistics.mean(values):.1f}" if len(values) == len(columns) else ""
    return cells + [avg]


def render_glue(
    experiment: str,
    records: list[dict[str, Any]],
    notes: str | None,
    figure: Path | None = None,
) -> tuple[str, list[list[str]]]:
    """Markdown and CSV rows (header first) of one experiment's GLUE table."""
    columns, rows = glue_rows(records)
    settings = setting_columns(rows)
    heads = [GLUE_TASKS[c].display for c in columns]
    header = ["Model", "Method", "# Params (paper count)", "# Trainable (with head)", "# Total",
              *(name for _, name in settings), *heads, "Avg.", "Seeds"]  # fmt: skip
    md = [f"# {experiment}: GLUE dev results", ""]
    md += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    spread_heads = [f"{c}_{end}" for c in columns for end in ("min", "max")]
    csv_rows = [["source", *header, "params_method", "params_trainable", "params_total",
                 "stale", *spread_heads]]  # fmt: skip
    blank_settings = [""] * len(settings)
    shown_paper: set[str] = set()
    for row in rows:
        params = row["records"][0]["params"]
        counts = [params["method"], params["trainable"], params["total"]]
        avg = f"{row['avg']:.1f}" if row["avg"] is not None else ""
        lead = [row["model"], row_label(row), *(fmt_params(n) for n in counts),
                *(setting_cell(row, k) for k, _ in settings)]  # fmt: skip
        seeds = seeds_cell(row["seeds"].values())
        md.append("| " + " | ".join([*lead, *(_score_cell(row, c) for c in columns), avg, seeds])
                  + " |")  # fmt: skip
        medians = [f"{row['scores'][c]:.1f}" if c in row["scores"] else "" for c in columns]
        spread = [f"{row['spread'][c][i]:.1f}" if c in row["spread"] else ""
                  for c in columns for i in (0, 1)]  # fmt: skip
        csv_rows.append(["ours", *lead, *medians, avg, seeds, *map(str, counts),
                         str(row["stale"]).lower(), *spread])  # fmt: skip
        for paper in paper_rows(TABLE2, row["model"], method_names(row["records"][0]["method"])[0]):
            if paper.display + paper.params in shown_paper:
                continue
            shown_paper.add(paper.display + paper.params)
            pl = ["paper", paper.display, paper.params, "", "", *blank_settings,
                  *_paper_cells(paper, columns), "5"]  # fmt: skip
            md.append("| " + " | ".join(f"*{c}*" if c else "" for c in pl) + " |")
            csv_rows.append(["paper", *pl, "", "", "", "", *[""] * len(spread_heads)])
    if not shown_paper:
        md += ["", "For scale only (different model and budget), the paper's RoBERTa-base rows:",
               ""]  # fmt: skip
        md += ["| Paper row | # Params | " + " | ".join(heads) + " | Avg. |",
               "|" + "---|" * (len(heads) + 3)]  # fmt: skip
        methods = {r["method"] for r in rows}
        for paper in TABLE2:
            if paper.model == "roberta-base" and paper.method in methods:
                md.append(f"| {paper.display} | {paper.params} | "
                          + " | ".join(_paper_cells(paper, columns)) + " |")  # fmt: skip
                csv_rows.append(["paper", paper.model, paper.display, paper.params, "", "",
                                 *blank_settings, *_paper_cells(paper, columns), "5", "", "", "",
                                 "", *[""] * len(spread_heads)])  # fmt: skip
    md += ["", "Scores ×100 on the dev sets: accuracy, Matthews correlation (CoLA), Pearson "
           "(STS-B); median over seeds of each run's best epoch, and in brackets the min–max "
           "over seeds where a row has two or more. One row per configuration: only seeds are "
           "pooled; settings that differ between rows are columns (\"per task\": the setting "
           "differs between tasks, as in paper Table 9). \"# Params (paper count)\" excludes "
           "the task head, as the paper's tables do; \"with head\" counts every trainable "
           "parameter. Italic rows are the paper's numbers (Table 2): * = copied by the paper "
           "from prior work, † = Houlsby-like setup."]  # fmt: skip
    sizes: dict[str, set[int]] = {}
    for row in rows:
        for c, n in row["train_sizes"].items():
            sizes.setdefault(c, set()).add(n)
    if sizes:
        md += ["", "Training examples per task: " + ", ".join(
            f"{GLUE_TASKS[c].display} " + "/".join(f"{n:,}" for n in sorted(ns))
            for c, ns in sizes.items()) + "."]  # fmt: skip
    if notes:
        md += ["", notes.strip()]
    if figure is not None:
        md += ["", f"![score against rank]({figure.name})"]
    md += footer([r for row in rows for r in row["records"]], any(r["stale"] for r in rows))
    return "\n".join(md) + "\n", csv_rows
