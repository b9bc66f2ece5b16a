"""Build the paper-style tables from result records.

    python -m experiments.report.tables                 # every experiment under results/runs
    python -m experiments.report.tables --experiment demo

For each experiment it writes ``results/tables/<experiment>.md`` and ``.csv``: one
row per (model, method setting), columns the tasks and their average, the median
over seeds as the paper reports (§D.1), the three parameter counts, and the paper's
own row beside ours where model and method match one of its rows.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from experiments.core.records import load_records, method_tag
from experiments.glue.data import TASKS as GLUE_TASKS
from experiments.report.paper_numbers import GLUE_COLUMNS, TABLE2, PaperRow, paper_rows
from experiments.report.plots import plot_rank_sweep

METHOD_LABELS = {
    "full_ft": "FT",
    "lora": "LoRA",
    "ft_top2": "FT^Top2",
    "bitfit": "BitFit",
    "adapter_h": "AdapterH",
    "adapter_l": "AdapterL",
    "adapter_p": "AdapterP",
    "adapter_d": "AdapterD",
    "prefix_embed": "PreEmbed",
    "prefix_layer": "PreLayer",
}


def method_label(method: dict[str, Any]) -> str:
    """Paper-style label, e.g. ``LoRA (r=8, W_q,W_v)`` or ``AdapterH (r=16)``."""
    name = method.get("name") or method.get("method")
    label = METHOD_LABELS.get(name, name)
    if name == "lora":
        targets = ",".join(f"W_{t}" if len(t) == 1 else t for t in method.get("targets", []))
        return f"{label} (r={method.get('r')}, {targets})"
    details = [f"{k}={method[k]}" for k in ("r", "l_p", "l_i", "drop_first") if k in method]
    return f"{label} ({', '.join(details)})" if details else label


def fmt_params(n: int | None) -> str:
    if n is None:
        return ""
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e5:  # the paper writes 294,912 as 0.3M
        return f"{n / 1e6:.2f}M"
    return f"{n / 1e3:.1f}K" if n >= 1e3 else str(n)


def row_identity(model: str, recs: list[dict[str, Any]]) -> dict[str, Any]:
    """The part of a table row shared by every task family: model, method, three counts."""
    params = recs[0]["params"]
    return {
        "model": model,
        "method": recs[0]["method"].get("name"),
        "label": method_label(recs[0]["method"]),
        "params_method": params["method"],
        "params_trainable": params["trainable"],
        "params_total": params["total"],
    }


def glue_rows(records: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Aggregate GLUE records into rows keyed by (model, method setting).

    Returns the task columns present (paper order) and one dict per row with the
    median ×100 score per task, the average, seed counts and parameter counts.
    """
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        if r["task"] in GLUE_TASKS:
            groups[(r["model"], method_tag(r["method"]))].append(r)
    columns = [t for t in GLUE_COLUMNS if any(r["task"] == t for r in records)]
    rows = []
    for (model, _tag), recs in groups.items():
        scores, seeds, train_sizes = {}, {}, {}
        for task in columns:
            values = [100 * r["metrics"]["main"] for r in recs if r["task"] == task]
            if values:
                scores[task] = statistics.median(values)
                seeds[task] = len(values)
                train_sizes[task] = next(r["data"]["train_size"] for r in recs if r["task"] == task)
        rows.append(
            {
                **row_identity(model, recs),
                "scores": scores,
                "avg": statistics.mean(scores.values()) if len(scores) == len(columns) else None,
                "seeds": max(seeds.values(), default=0),
                "train_sizes": train_sizes,
            }
        )
    order = list(METHOD_LABELS)
    rows.sort(key=lambda r: (r["model"], order.index(r["method"]) if r["method"] in order else 99,
                             r["label"]))  # fmt: skip
    return columns, rows


def _paper_cells(row: PaperRow, columns: list[str]) -> list[str]:
    cells = [f"{row.scores[c]:.1f}" if c in row.scores else "" for c in columns]
    values = [row.scores[c] for c in columns if c in row.scores]
    avg = f"{statistics.mean(values):.1f}" if len(values) == len(columns) else ""
    return cells + [avg]


def render_glue(
    experiment: str, records: list[dict[str, Any]], notes: str | None
) -> tuple[str, list[list[str]]]:
    """Markdown and CSV rows of one experiment's GLUE table."""
    columns, rows = glue_rows(records)
    heads = [GLUE_TASKS[c].display for c in columns]
    header = ["Model", "Method", "# Params (paper count)", "# Trainable (with head)",
              "# Total", *heads, "Avg.", "Seeds"]  # fmt: skip
    md = [f"# {experiment}: GLUE dev results", ""]
    md += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    csv_rows = [["source", *header, "params_method", "params_trainable", "params_total"]]
    shown_paper: set[str] = set()
    for row in rows:
        cells = [f"{row['scores'][c]:.1f}" if c in row["scores"] else "" for c in columns]
        avg = f"{row['avg']:.1f}" if row["avg"] is not None else ""
        line = [row["model"], row["label"], fmt_params(row["params_method"]),
                fmt_params(row["params_trainable"]), fmt_params(row["params_total"]),
                *cells, avg, str(row["seeds"])]  # fmt: skip
        md.append("| " + " | ".join(line) + " |")
        csv_rows.append(["ours", *line, str(row["params_method"]), str(row["params_trainable"]),
                         str(row["params_total"])])  # fmt: skip
        for paper in paper_rows(TABLE2, row["model"], row["method"]):
            if paper.display + paper.params in shown_paper:
                continue
            shown_paper.add(paper.display + paper.params)
            pl = ["paper", paper.display, paper.params, "", "", *_paper_cells(paper, columns), "5"]
            md.append("| " + " | ".join(f"*{c}*" if c else "" for c in pl) + " |")
            csv_rows.append(["paper", *pl, "", "", ""])
    if not shown_paper:
        md += [
            "",
            "For scale only (different model and budget), the paper's RoBERTa-base rows:",
            "",
        ]
        md += ["| Paper row | # Params | " + " | ".join(heads) + " | Avg. |",
               "|" + "---|" * (len(heads) + 3)]  # fmt: skip
        for paper in TABLE2:
            if paper.model == "roberta-base" and paper.method in {r["method"] for r in rows}:
                md.append(f"| {paper.display} | {paper.params} | "
                          + " | ".join(_paper_cells(paper, columns)) + " |")  # fmt: skip
                csv_rows.append(["paper", "roberta-base", paper.display, paper.params, "", "",
                                 *_paper_cells(paper, columns), "5", "", "", ""])  # fmt: skip
    md += ["", "Scores ×100 on the dev sets: accuracy, Matthews correlation (CoLA), Pearson "
           "(STS-B); median over seeds of each run's best epoch. \"# Params (paper count)\" "
           "excludes the task head, as the paper's tables do; \"with head\" counts every "
           "trainable parameter. Italic rows are the paper's numbers (Table 2): * = copied "
           "by the paper from prior work, † = Houlsby-like setup."]  # fmt: skip
    sizes = {c: s for row in rows for c, s in row["train_sizes"].items()}
    if sizes:
        md += ["", "Training examples per task: " + ", ".join(
            f"{GLUE_TASKS[c].display} {n:,}" for c, n in sizes.items()) + "."]  # fmt: skip
    if notes:
        md += ["", notes.strip()]
    return "\n".join(md) + "\n", csv_rows


def write_tables(results_dir: Path, experiment: str | None = None) -> list[Path]:
    """Render every experiment (or one) to ``results_dir/tables``; returns written paths."""
    records = load_records(results_dir, experiment)
    by_exp: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_exp[r["experiment"]].append(r)
    written = []
    out = results_dir / "tables"
    out.mkdir(parents=True, exist_ok=True)
    for exp, recs in sorted(by_exp.items()):
        e2e = [r for r in recs if r["task"] == "e2e"]
        if e2e:  # imported here: experiments.report.e2e_tables imports this module
            from experiments.report.e2e_tables import write_e2e_table

            stem = exp if len(e2e) == len(recs) else f"{exp}_e2e"
            written += write_e2e_table(out, stem, exp, e2e)
        glue = [r for r in recs if r["task"] in GLUE_TASKS]
        if not glue:
            continue
        notes = glue[-1]["config"].get("notes")
        md, rows = render_glue(exp, glue, notes)
        (out / f"{exp}.md").write_text(md)
        with open(out / f"{exp}.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
        written += [out / f"{exp}.md", out / f"{exp}.csv"]
        figure = plot_rank_sweep(glue, out / f"{exp}_rank.png")
        if figure is not None:
            with open(out / f"{exp}.md", "a") as f:
                f.write(f"\n![score against rank]({figure.name})\n")
            written.append(figure)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results-dir", default="results", type=Path)
    parser.add_argument("--experiment", default=None, help="one experiment; default: all")
    args = parser.parse_args(argv)
    written = write_tables(args.results_dir, args.experiment)
    if not written:
        raise SystemExit(f"no successful records under {args.results_dir / 'runs'}")
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
