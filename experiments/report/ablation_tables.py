"""Paper Tables 5, 6, 16 and 18 in the paper's layout, with its values beside ours.

An experiment whose name starts with ``table5_``, ``table6_``, ``table16_`` or
``table18_`` (``conf/experiment/table5_minilm.yaml`` ...) gets its table here instead of
the generic GLUE or E2E one (:func:`layout_for`). The rule of every table holds: a cell
pools only seeds. Records are grouped by their settings (:func:`settings_of`, plus the
task's own config) with the table's axis removed (the matrices and r for Table 5, r for
Tables 6 and 18, the training-set size and epochs for Table 16); settings that still
differ between rows are shown beside them, and rows with records from older code are
marked ‡.

GLUE cells are the median over seeds ×100 with the min–max in brackets (paper §D.1);
E2E cells the mean ± standard deviation (Table 3's convention).
"""

from __future__ import annotations

import functools
import json
import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from experiments.glue.data import TASKS as GLUE_TASKS
from experiments.report import compare
from experiments.report.common import (
    STALE_MARK,
    any_stale,
    flatten,
    fmt_params,
    fmt_value,
    footer,
    md_table,
    seeds_cell,
    settings_of,
    write_md_csv,
)
from experiments.report.labels import METHOD_LABELS, fmt_targets, method_label, method_names
from experiments.report.paper_numbers import (
    GLUE_COLUMNS,
    PAPER_TABLE5,
    PAPER_TABLE5_COLUMNS,
    PAPER_TABLE6,
    PAPER_TABLE6_RANKS,
    PAPER_TABLE16,
    PAPER_TABLE16_SIZES,
    PAPER_TABLE18,
)
from experiments.report.plots import plot_rank_sweep

Renderer = Callable[[str, list[dict[str, Any]], "str | None"], tuple[str, list[list[str]]]]

_POOLING = (
    "One cell pools only seeds: runs whose settings differ in anything but the seed are "
    "never pooled; settings that differ between rows are shown beside them."
)


# -- grouping --------------------------------------------------------------------------


def _settings(record: dict[str, Any]) -> dict[str, str]:
    """:func:`settings_of` plus the task's own config (E2E decoding), minus its name."""
    out = settings_of(record)
    task = {k: v for k, v in record.get("config", {}).get("task", {}).items() if k != "name"}
    if task:
        out.update(flatten(task, "task."))
    out["model"] = json.dumps(record["model"])
    out["task"] = json.dumps(record["task"])
    return out


def _group(records: list[dict[str, Any]], axes: tuple[str, ...]):
    """Records by (row settings without ``axes``, axis values), seeds pooled.

    Returns:
        ``(cells, differing)``: cells maps (row key, axis key) -> records, where both keys
        are tuples of (dotted setting, JSON value); ``differing`` lists the settings (not
        axes, not the method's name) whose values differ between row keys.
    """
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        flat = _settings(r)
        row = tuple(sorted((k, v) for k, v in flat.items() if k not in axes))
        axis = tuple((k, flat.get(k)) for k in axes)
        cells[(row, axis)].append(r)
    rows = {row for row, _ in cells}
    keys = sorted({k for row in rows for k, _ in row})
    differing = [k for k in keys if k != "method.name"
                 and len({dict(row).get(k) for row in rows}) > 1]  # fmt: skip
    return cells, differing


def _setting_text(row: tuple, keys: list[str]) -> list[str]:
    values = dict(row)
    return [fmt_value(json.loads(values[k])) if k in values else "" for k in keys]


def _short(key: str) -> str:
    """A setting's column name: its last dotted part (``train.lr`` -> ``lr``)."""
    return key.rsplit(".", 1)[-1]


def _glue_cell(records: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """``80.1 (79.0–81.2)``: median ×100 over seeds, min–max when there are several; and
    the CSV tail of that cell: median, min, max, seeds, stale."""
    values = [100 * r["metrics"]["main"] for r in records]
    median = statistics.median(values)
    text = f"{median:.1f}"
    if len(values) > 1:
        text += f" ({min(values):.1f}–{max(values):.1f})"
    stats = [f"{median:.2f}", f"{min(values):.2f}", f"{max(values):.2f}", str(len(values)),
             str(any_stale(records)).lower()]  # fmt: skip
    return text, stats


def _e2e_cell(
    records: list[dict[str, Any]], metric: str, factor: float, decimals: int
) -> tuple[str, list[str]]:
    """``54.1±2.9``: mean over seeds ± sample std of a test metric or the dev loss; and
    the CSV tail of that cell: mean, min, max, seeds, stale."""
    values = [_e2e_value(r, metric, factor) for r in records]
    mean, _, text = _mean_std(values, decimals)
    stats = [f"{mean:.6g}", f"{min(values):.6g}", f"{max(values):.6g}", str(len(values)),
             str(any_stale(records)).lower()]  # fmt: skip
    return text, stats


def _italic(cells: list[str]) -> list[str]:
    return [f"*{c}*" if c else "" for c in cells]


def _train_sizes(records: list[dict[str, Any]]) -> str:
    by_task: dict[str, set[int]] = defaultdict(set)
    for r in records:
        by_task[r["task"]].add(r["data"]["train_size"])
    return "Training examples: " + ", ".join(
        f"{_task_name(t)} " + "/".join(f"{n:,}" for n in sorted(ns))
        for t, ns in sorted(by_task.items())
    ) + "."  # fmt: skip


def _task_name(task: str) -> str:
    return GLUE_TASKS[task].display if task in GLUE_TASKS else task.upper()


def _close(md: list[str], records: list[dict], stale: bool, notes: str | None) -> str:
    md += ["", _train_sizes(records)]
    if notes:
        md += ["", notes.strip()]
    nlg = any(r["task"] not in GLUE_TASKS for r in records)
    md += ["", compare.NLG_NOTE] if nlg else compare.missing_note(records)
    md += footer(records, stale)
    return "\n".join(md) + "\n"


# -- Table 5: which weight matrices ------------------------------------------------------


def render_table5(
    experiment: str, records: list[dict[str, Any]], notes: str | None
) -> tuple[str, list[list[str]]]:
    """Paper Table 5's layout: one column per configuration (matrices and r), one row per
    task (median ×100 over seeds, min–max), the paper's GPT-3 rows beneath.

    Returns:
        Markdown and CSV rows (header first; one CSV row per column and task).
    """
    records = [r for r in records if r["task"] in GLUE_TASKS or r["task"] == "e2e"]
    cells, differing = _group(records, ("task",))
    columns = sorted({row for row, _ in cells}, key=_table5_order)
    tasks = [t for t in GLUE_COLUMNS if any(r["task"] == t for r in records)]
    e2e = any(r["task"] == "e2e" for r in records)
    heads, ranks, params, seeds = [], [], [], []
    for col in columns:
        recs = [r for (row, _), rs in cells.items() if row == col for r in rs]
        heads.append(_table5_head(recs[0]["method"]) + (STALE_MARK if any_stale(recs) else ""))
        ranks.append(str(recs[0]["method"].get("r", "")))
        params.append(fmt_params(recs[0]["params"]["method"]))
        seeds.append(seeds_cell(len(rs) for (row, _), rs in cells.items() if row == col))
    shown = [k for k in differing if k not in ("method.targets", "method.r")]
    body = [["Rank r", *ranks], ["# Params (paper count)", *params]]
    body += [[_short(k), *(_setting_text(col, [k])[0] for col in columns)] for k in shown]
    csv_rows = [["source", "task", "weight_type", "r", *map(_short, shown), "score",
                 "score_min", "score_max", "seeds", "stale"]]  # fmt: skip
    # one row per GLUE task, then one per E2E metric: (row name, task, CSV task, cell)
    specs = [(_task_name(t), t, t, _glue_cell) for t in tasks]
    specs += [(name, "e2e", f"e2e_{metric}", functools.partial(_e2e_cell, metric=metric,
               factor=factor, decimals=decimals))
              for name, metric, factor, decimals in T5_E2E_ROWS if e2e]  # fmt: skip
    for name, task, csv_task, cell in specs:
        line = [name]
        for col, head, r in zip(columns, heads, ranks, strict=True):
            recs = cells.get((col, (("task", json.dumps(task)),)), [])
            if not recs:
                line.append("")
                continue
            text, stats = cell(recs)
            line.append(text)
            csv_rows.append(["ours", csv_task, head.rstrip(STALE_MARK), r,
                             *_setting_text(col, shown), *stats])  # fmt: skip
        body.append(line)
    body.append(["Seeds", *seeds])
    paper_at = {(tuple(t), r): i for i, (t, r) in enumerate(PAPER_TABLE5_COLUMNS)}
    for dataset, values in PAPER_TABLE5.items():
        line = []
        for col in columns:
            values_of = dict(col)
            i = paper_at.get((tuple(json.loads(values_of.get("method.targets", "[]"))),
                              json.loads(values_of.get("method.r", "null"))))  # fmt: skip
            line.append("" if i is None else f"{values[i]:.1f}")
        body.append(_italic([f"paper: {dataset}", *line]))
        for (targets, r), v in zip(PAPER_TABLE5_COLUMNS, values, strict=True):
            csv_rows.append(["paper", dataset, fmt_targets(list(targets)), str(r),
                             *[""] * len(shown), f"{v:.1f}", "", "", "", ""])  # fmt: skip
    md = [f"# {experiment}: which weight matrices to adapt (paper Table 5)", ""]
    md += md_table(["Weight type", *heads], body)
    glue = ("Dev scores ×100 (accuracy; Matthews correlation for CoLA, Pearson for STS-B): "
            "median over seeds of each run's best epoch, min–max in brackets. ") if tasks else ""  # fmt: skip
    md += ["", glue + _POOLING + " Italic rows are the paper's (Table 5: GPT-3 175B, "
           "18M-parameter budget, WikiSQL and MultiNLI accuracy; the caption's seed "
           "fluctuation in brackets), under the column with the same matrices and r."]  # fmt: skip
    if e2e:
        md += ["", "E2E rows: BLEU ×100 of the decoded test MRs and the dev loss at the chosen "
               "epoch (per token), mean ± std over seeds (Table 3's convention). With "
               "grouped-query attention W_k and W_v are narrower than W_q and W_o, so the "
               "same r is fewer parameters there (row \"# Params\")."]  # fmt: skip
    stale = any(STALE_MARK in h for h in heads)
    return _close(md, records, stale, notes), csv_rows


#: Table 5's E2E rows: (head, metric key as in :data:`T18_COLUMNS`, factor, decimals).
T5_E2E_ROWS = (("E2E BLEU", "BLEU", 100, 1), ("E2E val loss", "dev_loss", 1, 3))


def _table5_head(method: dict[str, Any]) -> str:
    if "targets" not in method:
        return method_label(method)
    names = method_names(method)
    variant = "" if names == ["lora"] else f" ({', '.join(METHOD_LABELS.get(n, n) for n in names)})"
    return fmt_targets(method["targets"]) + variant


def _table5_order(row: tuple) -> tuple:
    values = dict(row)
    targets = tuple(json.loads(values.get("method.targets", "[]")))
    r = json.loads(values.get("method.r", "0"))
    paper = [(tuple(t), pr) for t, pr in PAPER_TABLE5_COLUMNS]
    at = paper.index((targets, r)) if (targets, r) in paper else len(paper)
    return (at, len(targets), targets, r, row)


# -- Table 6: rank -------------------------------------------------------------------------


def render_table6(
    experiment: str, records: list[dict[str, Any]], notes: str | None
) -> tuple[str, list[list[str]]]:
    """Paper Table 6's layout: one row per (task, matrices), one column per r (median ×100
    over seeds, min–max), the paper's GPT-3 rows beneath.

    Returns:
        Markdown and CSV rows (header first; one CSV row per cell).
    """
    records = [r for r in records if r["task"] in GLUE_TASKS]
    cells, differing = _group(records, ("method.r",))
    ours = {json.loads(axis[0][1]) for _, axis in cells if axis[0][1] is not None}
    ranks = sorted(ours | set(PAPER_TABLE6_RANKS))
    rows = sorted({row for row, _ in cells}, key=lambda row: (
        GLUE_COLUMNS.index(json.loads(dict(row)["task"]))
        if json.loads(dict(row).get("task", "null")) in GLUE_COLUMNS else 99,
        len(json.loads(dict(row).get("method.targets", "[]"))), row))  # fmt: skip
    shown = [k for k in differing if k not in ("method.targets", "task")]
    header = ["Task", "Weight type", *map(_short, shown), *(f"r={r}" for r in ranks), "Seeds"]
    csv_rows = [["source", "task", "weight_type", *map(_short, shown), "r", "score", "score_min",
                 "score_max", "seeds", "stale"]]  # fmt: skip
    body, stale = [], False
    for row in rows:
        task = json.loads(dict(row)["task"])
        recs_at = {r: cells.get((row, (("method.r", json.dumps(r)),)), []) for r in ranks}
        recs = [x for rs in recs_at.values() for x in rs]
        weight = _table5_head(recs[0]["method"]) + (STALE_MARK if any_stale(recs) else "")
        stale |= any_stale(recs)
        line = [_task_name(task), weight, *_setting_text(row, shown)]
        for r, rs in recs_at.items():
            if not rs:
                line.append("")
                continue
            text, stats = _glue_cell(rs)
            line.append(text)
            csv_rows.append(["ours", task, weight.rstrip(STALE_MARK), *_setting_text(row, shown),
                             str(r), *stats])  # fmt: skip
        body.append(line + [seeds_cell(len(rs) for rs in recs_at.values() if rs)])
    for dataset, by_targets in PAPER_TABLE6.items():
        for targets, values in by_targets.items():
            at = dict(zip(PAPER_TABLE6_RANKS, values, strict=True))
            body.append(_italic([f"paper: {dataset}", fmt_targets(list(targets)),
                                 *[""] * len(shown),
                                 *(f"{at[r]:.1f}" if r in at else "" for r in ranks), ""]))  # fmt: skip
            csv_rows += [["paper", dataset, fmt_targets(list(targets)), *[""] * len(shown),
                          str(r), f"{v:.1f}", "", "", "", ""] for r, v in at.items()]  # fmt: skip
    md = [f"# {experiment}: LoRA rank r (paper Table 6)", ""]
    md += md_table(header, body)
    md += ["", "Dev scores ×100 (accuracy; Matthews correlation for CoLA, Pearson for STS-B): median over seeds of each run's "
           "best epoch, min–max in brackets. " + _POOLING + " Italic rows are the paper's "
           "(Table 6: GPT-3 175B on WikiSQL and MultiNLI; the caption's seed fluctuation in "
           "brackets), in the columns of the same r; the paper has no r beyond its five."]  # fmt: skip
    return _close(md, records, stale, notes), csv_rows


# -- Table 16: low-data regime -------------------------------------------------------------


def render_table16(
    experiment: str, records: list[dict[str, Any]], notes: str | None
) -> tuple[str, list[list[str]]]:
    """Paper Table 16's layout: one row per method configuration, one column per
    training-set size and its epochs (median ×100 over seeds), the paper's rows beneath.

    Returns:
        Markdown and CSV rows (header first; one CSV row per cell).
    """
    records = [r for r in records if r["task"] in GLUE_TASKS]
    axes = ("data.max_train_samples", "train.epochs")
    cells: dict[tuple, list[dict]] = defaultdict(list)
    grouped, differing = _group(records, axes)
    for (row, _), recs in grouped.items():
        for r in recs:  # the column is the size actually trained on, with its epochs
            cells[(row, (r["data"]["train_size"], r["config"]["train"]["epochs"]))].append(r)
    columns = sorted({col for _, col in cells})
    rows = sorted({row for row, _ in cells}, key=lambda row: (
        list(PAPER_TABLE16).index(json.loads(dict(row)["method.name"]))
        if json.loads(dict(row)["method.name"]) in PAPER_TABLE16 else 99, row))  # fmt: skip
    shown = [k for k in differing if not k.startswith("method.")]
    header = ["Method", *map(_short, shown),
              *(f"{n:,} ex., {e} ep." for n, e in columns), "Seeds"]  # fmt: skip
    csv_rows = [["source", "method", *map(_short, shown), "train_size", "epochs", "score",
                 "score_min", "score_max", "seeds", "stale"]]  # fmt: skip
    body, stale, methods = [], False, []
    medians: dict[tuple[str, tuple], float] = {}  # (method name, column) -> median ×100
    for row in rows:
        recs_at = {col: cells.get((row, col), []) for col in columns}
        recs = [x for rs in recs_at.values() for x in rs]
        label = method_label(recs[0]["method"]) + (STALE_MARK if any_stale(recs) else "")
        stale |= any_stale(recs)
        methods.append(recs[0]["method"].get("name"))
        line = [label, *_setting_text(row, shown)]
        for (n, e), rs in recs_at.items():
            if not rs:
                line.append("")
                continue
            text, stats = _glue_cell(rs)
            line.append(text)
            medians[(methods[-1], (n, e))] = float(stats[0])
            csv_rows.append(["ours", label.rstrip(STALE_MARK), *_setting_text(row, shown), str(n),
                             str(e), *stats])  # fmt: skip
        body.append(line + [seeds_cell(len(rs) for rs in recs_at.values() if rs)])
    md = [f"# {experiment}: low-data regime (paper Table 16)", ""]
    md += md_table(header, body)
    paper_head = ["Paper row", "MNLI(m)-100", "MNLI(m)-1k", "MNLI(m)-10k", "MNLI(m)-392K"]
    paper_body = []
    for name, (label, values) in PAPER_TABLE16.items():
        if name in methods or not methods:
            paper_body.append([label, *(f"{v:.1f}" for v in values)])
            csv_rows += [["paper", label, *[""] * len(shown), str(n), "", f"{v:.1f}", "", "",
                          "", ""] for n, v in zip(PAPER_TABLE16_SIZES, values, strict=True)]  # fmt: skip
    md += ["", "The paper's rows (Table 16: GPT-3 175B on MNLI-matched, full validation set), "
           "for the pattern only:", "", *md_table(paper_head, paper_body)]  # fmt: skip
    md += ["", "Dev scores ×100 (accuracy): median over seeds of each run's best epoch, min–max "
           "in brackets; columns are the training examples actually used and the epochs. "
           + _POOLING]  # fmt: skip
    if len(set(methods)) == len(methods):  # one row per method: orders are comparable
        md += _table16_orders(methods, columns, medians)
    return _close(md, records, stale, notes), csv_rows


def _table16_orders(methods: list[str], columns: list[tuple], medians: dict) -> list[str]:
    """Per training-set size the paper also ran: our methods' order against the paper's."""
    names = [m for m in methods if m in PAPER_TABLE16]
    lines = []
    for n, e in columns:
        if n not in PAPER_TABLE16_SIZES or any((m, (n, e)) not in medians for m in names):
            continue
        j = PAPER_TABLE16_SIZES.index(n)
        ours = sorted(names, key=lambda m: -medians[(m, (n, e))])
        paper = sorted(names, key=lambda m: -PAPER_TABLE16[m][1][j])
        same = "same order" if ours == paper else "**order differs**"
        lines.append(f"- {n:,} examples: ours {' > '.join(METHOD_LABELS[m] for m in ours)}; "
                     f"paper {' > '.join(METHOD_LABELS[m] for m in paper)} ({same})")  # fmt: skip
    if len(names) < 2 or not lines:
        return []
    return ["", "Ours against the paper, methods ordered by score at each size:", "", *lines]


# -- Table 18: rank on E2E -----------------------------------------------------------------

#: Table 18's columns: (head, metric key in metrics.test or "dev_loss", factor, decimals).
T18_COLUMNS = (("val loss", "dev_loss", 1, 2), ("BLEU", "BLEU", 100, 2), ("NIST", "NIST", 1, 4),
               ("METEOR", "METEOR", 1, 4), ("ROUGE_L", "ROUGE_L", 1, 4),
               ("CIDEr", "CIDEr", 1, 4))  # fmt: skip


def _e2e_value(record: dict[str, Any], key: str, factor: float) -> float:
    if key == "dev_loss":
        return record["metrics"]["best"]["dev_loss"]
    return factor * record["metrics"]["test"][key]


def _mean_std(values: list[float], decimals: int) -> tuple[float, float | None, str]:
    """An E2E cell: mean, sample std (None for one seed) and ``mean±std`` as printed."""
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else None
    return mean, std, f"{mean:.{decimals}f}" + ("" if std is None else f"±{std:.{decimals}f}")


def render_table18(
    experiment: str, records: list[dict[str, Any]], notes: str | None
) -> tuple[str, list[list[str]]]:
    """Paper Table 18's layout: one row per r (and any other differing setting), the dev
    loss at the chosen epoch and the five E2E metrics as the paper prints them (BLEU ×100;
    METEOR, ROUGE_L raw), mean ± std over seeds, each beside the paper's value at that r.

    Returns:
        Markdown and CSV rows (header first).
    """
    records = [r for r in records if r["task"] == "e2e"]
    cells, differing = _group(records, ())
    rows = sorted(cells, key=lambda key: (json.loads(dict(key[0]).get("method.r", "0")), key))
    shown = [k for k in differing if k != "method.r"]
    header = ["r", *map(_short, shown)]
    for head, *_ in T18_COLUMNS:
        header += [head, "paper"]
    header.append("Seeds")
    csv_rows = [["source", "r", *map(_short, shown), *(k for _, k, _, _ in T18_COLUMNS),
                 *(f"{k}_std" for _, k, _, _ in T18_COLUMNS), "seeds", "stale"]]  # fmt: skip
    body, stale, ours_r = [], False, set()
    for key in rows:
        recs = cells[key]
        r = recs[0]["method"].get("r")
        ours_r.add(r)
        stale |= any_stale(recs)
        paper = PAPER_TABLE18.get(r)
        line = [f"{r}{STALE_MARK if any_stale(recs) else ''}", *_setting_text(key[0], shown)]
        means, stds = [], []
        for i, (_, metric, factor, decimals) in enumerate(T18_COLUMNS):
            values = [_e2e_value(x, metric, factor) for x in recs]
            mean, std, text = _mean_std(values, decimals)
            means.append(f"{mean:.6g}")
            stds.append("" if std is None else f"{std:.6g}")
            line += [text, f"*{paper[i]:.{decimals}f}*" if paper else ""]
        body.append(line + [str(len(recs))])
        csv_rows.append(["ours", str(r), *_setting_text(key[0], shown), *means, *stds,
                         str(len(recs)), str(any_stale(recs)).lower()])  # fmt: skip
    for r, values in PAPER_TABLE18.items():
        csv_rows.append(["paper", str(r), *[""] * len(shown), *map(str, values),
                         *[""] * len(T18_COLUMNS), "1", ""])  # fmt: skip
    md = [f"# {experiment}: LoRA rank r on E2E NLG (paper Table 18)", ""]
    md += md_table(header, body)
    rest = [r for r in PAPER_TABLE18 if r not in ours_r]
    md += ["", "Ours: the dev loss of the epoch with the lowest dev loss (the one decoded) and "
           "the official e2e-metrics scores of the test MRs decoded from it; BLEU ×100, NIST, "
           "METEOR, ROUGE_L and CIDEr raw, as the paper prints Table 18; mean over seeds "
           "(± standard deviation). " + _POOLING + " Italic \"paper\" columns: Table 18 (GPT-2 "
           "M, E2E, after 26,000 steps, one run) at the same r. Our dev loss is per SmolLM2 "
           "token with the run's own loss settings (train.label_smoothing): compare its trend "
           "over r with the paper's, not its value"
           + (f"; the paper also has r = {', '.join(map(str, rest))}." if rest else ".")]  # fmt: skip
    if records:
        data = records[0]["data"]
        md += ["", f"Dev pairs: {data['eval_sizes']['dev']:,}; test: "
               f"{data['eval_sizes']['test_mrs']:,} MRs ({data['test_references']:,} "
               "references)."]  # fmt: skip
    return _close(md, records, stale, notes), csv_rows


# -- dispatch ------------------------------------------------------------------------------

LAYOUTS: dict[str, Renderer] = {
    "table5": render_table5,
    "table6": render_table6,
    "table16": render_table16,
    "table18": render_table18,
}


def layout_for(experiment: str) -> Renderer | None:
    """The renderer for an experiment named ``table5_*`` ... ``table18_*``, else None."""
    return LAYOUTS.get(experiment.split("_", 1)[0]) if "_" in experiment else None


def write_layout_table(out: Path, experiment: str, records: list[dict[str, Any]]) -> list[Path]:
    """Write ``<out>/<experiment>.md`` and ``.csv`` in the paper's layout (and, for a rank
    sweep on GLUE, ``<experiment>_rank.png``); returns the paths, empty when the
    experiment has no such layout or no records for it.
    """
    render = layout_for(experiment)
    if render is None or not records:
        return []
    md, rows = render(experiment, records, records[-1]["config"].get("notes"))
    written = write_md_csv(out, experiment, md, rows)
    if render is render_table6:
        figure = plot_rank_sweep(records, out / f"{experiment}_rank.png")
        if figure is not None:
            md += f"\n![dev score against rank]({figure.name})\n"
            (out / f"{experiment}.md").write_text(md)
            written.append(figure)
    return written
