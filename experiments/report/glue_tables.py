"""The GLUE table (paper Table 2) from result records.

One row per configuration (:func:`experiments.report.common.group_rows`), columns the
tasks and their average: the median over seeds as the paper reports (§D.1), with the
min–max over seeds beside it when there are several, the three parameter counts, the
settings that differ between rows, and the paper's own row beside ours where model and
method match one of its rows.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from experiments.glue.data import TASKS as GLUE_TASKS
from experiments.report import compare
from experiments.report.common import (
    fmt_params,
    footer,
    group_rows,
    md_table,
    row_label,
    seeds_cell,
    setting_cell,
    setting_columns,
)
from experiments.report.labels import method_names
from experiments.report.paper_numbers import GLUE_COLUMNS, TABLE2, PaperRow, paper_rows
from experiments.report.stats import Claim

#: The paper's claim for its GLUE table, tested on every row against the FT row.
CLAIM = Claim("the row performs on par with or better than FT, as the paper finds for LoRA "
              "(abstract; §5.2, Table 2)", "at_least", 1.0)  # fmt: skip
REFERENCE = "full_ft"


def glue_rows(
    records: list[dict[str, Any]], proto: str = "best"
) -> tuple[list[str], list[dict[str, Any]]]:
    """The task columns present (paper order) and the rows of :func:`group_rows`, each
    with ``scores`` (task -> median ×100), ``spread`` (task -> (min, max) ×100, for ≥ 2
    seeds), ``seeds`` (task -> n), ``avg`` (None unless every task has a score),
    ``train_sizes`` and ``lrs`` (task -> learning rates). ``proto`` picks each run's
    score (:func:`experiments.report.compare.score`).
    """
    columns = [t for t in GLUE_COLUMNS if any(r["task"] == t for r in records)]
    rows = group_rows([r for r in records if r["task"] in GLUE_TASKS])
    for row in rows:
        row.update(scores={}, spread={}, seeds={}, train_sizes={}, lrs={})
        for task in columns:
            recs = [r for r in row["records"] if r["task"] == task]
            if not recs:
                continue
            values = [100 * compare.score(r, proto) for r in recs]
            row["lrs"][task] = sorted({r["config"]["train"]["lr"] for r in recs})
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
    """Markdown and CSV rows (header first) of one experiment's GLUE table.

    With exactly one FT row, every other row is compared with it (:func:`_comparison`):
    a section of the Markdown, and Δ columns in the CSV.
    """
    proto = compare.protocol(records)
    columns, rows = glue_rows(records, proto)
    refs = [row for row in rows if row["method"] == REFERENCE]
    ref = refs[0] if len(refs) == 1 and len(rows) > 1 else None
    deltas = {id(row): compare.compare(row, ref, columns, proto)
              for row in rows if ref is not None and row is not ref}  # fmt: skip
    settings = setting_columns(rows)
    heads = [GLUE_TASKS[c].display for c in columns]
    header = ["Model", "Method", "# Params (paper count)", "# Trainable (with head)", "# Total",
              *(name for _, name in settings), *heads, "Avg.", "Seeds"]  # fmt: skip
    md = [f"# {experiment}: GLUE dev results", ""]
    md += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    spread_heads = [f"{c}_{end}" for c in columns for end in ("min", "max")]
    delta_heads = [f"{c}_delta_{end}" for c in [*columns, "avg"]
                   for end in ("mean", "low", "high", "verdict")] if ref else []  # fmt: skip
    csv_rows = [["source", *header, "params_method", "params_trainable", "params_total",
                 "stale", *spread_heads, *delta_heads]]  # fmt: skip
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
        delta = [v for c in [*columns, "avg"] for v in compare.csv_values(
            deltas.get(id(row), {}).get(c), CLAIM)] if ref else []  # fmt: skip
        csv_rows.append(["ours", *lead, *medians, avg, seeds, *map(str, counts),
                         str(row["stale"]).lower(), *spread, *delta])  # fmt: skip
        for paper in paper_rows(TABLE2, row["model"], method_names(row["records"][0]["method"])[0]):
            if paper.display + paper.params in shown_paper:
                continue
            shown_paper.add(paper.display + paper.params)
            pl = ["paper", paper.display, paper.params, "", "", *blank_settings,
                  *_paper_cells(paper, columns), "5"]  # fmt: skip
            md.append("| " + " | ".join(f"*{c}*" if c else "" for c in pl) + " |")
            csv_rows.append(["paper", *pl, "", "", "", "",
                             *[""] * (len(spread_heads) + len(delta_heads))])  # fmt: skip
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
                                 "", *[""] * (len(spread_heads) + len(delta_heads))])  # fmt: skip
    if ref is not None:
        md += _comparison(rows, ref, columns, deltas, proto)
    epoch = ("the dev score at each run's epoch chosen on held-out training data "
             "(data.heldout)" if proto == "heldout" else "each run's best epoch")  # fmt: skip
    md += ["", "Scores ×100 on the dev sets: accuracy, Matthews correlation (CoLA), Pearson "
           f"(STS-B); median over seeds of {epoch}, and in brackets the min–max "
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
        what = (
            "score against rank" if figure.stem.endswith("_rank") else "held-out score against lr"
        )
        md += ["", f"![{what}]({figure.name})"]
    md += footer([r for row in rows for r in row["records"]], any(r["stale"] for r in rows))
    return "\n".join(md) + "\n", csv_rows


def _comparison(rows: list[dict], ref: dict, columns: list[str], deltas: dict,
                proto: str) -> list[str]:  # fmt: skip
    """The "Difference from FT" section: per row its learning rates, and per task and on
    average Δ = row − FT with its 95% interval and the verdict on :data:`CLAIM`."""
    heads = [GLUE_TASKS[c].display for c in columns]
    header = ["Method", *(f"lr {h}" for h in heads)]
    for h in [*heads, "Avg."]:
        header += [f"{h} Δ [95% CI]", f"{h} verdict"]
    lines = []
    for row in [ref, *(r for r in rows if r is not ref)]:
        lrs = [",".join(f"{v:g}" for v in row["lrs"].get(c, [])) for c in columns]
        if row is ref:
            lines.append([row_label(row), *lrs, *(["reference", ""] * (len(columns) + 1))])
            continue
        found = deltas[id(row)]
        lines.append([row_label(row), *lrs,
                      *(v for c in [*columns, "avg"] for v in compare.cells(found[c], CLAIM))])  # fmt: skip
    reference = ref["label"]
    md = ["", f"## Difference from {reference}", "", *md_table(header, lines)]
    md += ["", compare.claim_note(CLAIM, reference) + " The average pools the tasks' "
           "differences with the same seed draw; Δ cells are empty where a task lacks a run."]  # fmt: skip
    recs = [r for row in rows for r in row["records"]]
    return md + _learning_curve(rows, columns, proto) + compare.missing_note(recs, proto)


def _learning_curve(rows: list[dict], columns: list[str], proto: str) -> list[str]:
    """One notes line: each row's held-out score per epoch, mean over seeds, so that a
    reader sees whether the budget has flattened the curves."""
    if proto != "heldout":
        return []
    parts = []
    for c in columns:
        key = f"eval_heldout_{GLUE_TASKS[c].main_metric}"
        for row in rows:
            by_epoch: dict[float, list[float]] = defaultdict(list)
            points = [(e["epoch"], e[key]) for r in row["records"] if r["task"] == c
                      for e in r["epochs"] if key in e]  # fmt: skip
            for epoch, value in points:
                by_epoch[epoch].append(100 * value)
            if by_epoch:
                curve = " → ".join(f"{statistics.mean(v):.1f}" for _, v in sorted(by_epoch.items()))
                parts.append(f"{GLUE_TASKS[c].display} {row['label']} {curve}")
    return (
        ["", "Held-out score by epoch (mean over seeds): " + "; ".join(parts) + "."]
        if parts
        else []
    )
