"""The E2E NLG table (paper Table 3) from result records.

One row per (model, method setting), columns the five official metrics on the paper's
view (BLEU, METEOR and ROUGE-L ×100; NIST and CIDEr raw), the **mean** over seeds as the
paper reports for Table 3 (§D.3, with the standard deviation when there are several
seeds), the three parameter counts, and the paper's own Table 3 row beside ours where
model and method match. :func:`experiments.report.tables.write_tables` calls
:func:`write_e2e_table` for the records whose task is ``e2e``.
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from experiments.core.records import method_tag
from experiments.report.paper_numbers import E2E_COLUMNS, TABLE3, PaperRow, paper_rows
from experiments.report.tables import METHOD_LABELS, fmt_params, row_identity

HEADS = {"BLEU": "BLEU", "NIST": "NIST", "METEOR": "MET", "ROUGE_L": "ROUGE-L", "CIDEr": "CIDEr"}
#: metric -> (factor to the paper's view, decimals as the paper prints them)
VIEW = {"BLEU": (100, 1), "NIST": (1, 2), "METEOR": (100, 1), "ROUGE_L": (100, 1), "CIDEr": (1, 2)}


def e2e_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Aggregate E2E records into one row per (model, method setting).

    Returns:
        Dicts with ``model``, ``method``, ``label``, the parameter counts, ``mean`` and
        ``std`` (metric -> value on the paper's view; std is None for one seed),
        ``seeds``, ``train_size`` and ``best_epochs``, sorted by model then method in
        the paper's order.
    """
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["model"], method_tag(r["method"]))].append(r)
    rows = []
    for (model, _tag), recs in groups.items():
        mean, std = {}, {}
        for metric, (factor, _) in VIEW.items():
            values = [factor * r["metrics"]["test"][metric] for r in recs]
            mean[metric] = statistics.mean(values)
            std[metric] = statistics.stdev(values) if len(values) > 1 else None
        rows.append(
            {
                **row_identity(model, recs),
                "mean": mean,
                "std": std,
                "seeds": len(recs),
                "train_size": recs[0]["data"]["train_size"],
                "best_epochs": [r["metrics"]["best_epoch"] for r in recs],
            }
        )
    order = list(METHOD_LABELS)
    rows.sort(key=lambda r: (r["model"], order.index(r["method"]) if r["method"] in order else 99,
                             r["label"]))  # fmt: skip
    return rows


def _cell(value: float, std: float | None, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return f"{text}±{std:.{decimals}f}" if std is not None else text


def _paper_line(paper: PaperRow) -> list[str]:
    """The paper's row in the table's columns (3 seeds; starred rows come from prior work)."""
    cells = [f"{paper.scores[m]:.{VIEW[m][1]}f}" for m in E2E_COLUMNS]
    return [paper.model, paper.display, paper.params, "", "", *cells, "3"]


def render_e2e(
    experiment: str, records: list[dict[str, Any]], notes: str | None
) -> tuple[str, list[list[str]]]:
    """Markdown and CSV rows (header first) of one experiment's E2E table."""
    rows = e2e_rows(records)
    header = ["Model", "Method", "# Params (paper count)", "# Trainable (with head)", "# Total",
              *(HEADS[m] for m in E2E_COLUMNS), "Seeds"]  # fmt: skip
    md = [f"# {experiment}: E2E NLG test results", ""]
    md += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    csv_rows = [["source", *header, *(f"{m}_std" for m in E2E_COLUMNS),
                 "params_method", "params_trainable", "params_total"]]  # fmt: skip
    shown: set[str] = set()
    for row in rows:
        cells = [_cell(row["mean"][m], row["std"][m], VIEW[m][1]) for m in E2E_COLUMNS]
        line = [row["model"], row["label"], fmt_params(row["params_method"]),
                fmt_params(row["params_trainable"]), fmt_params(row["params_total"]),
                *cells, str(row["seeds"])]  # fmt: skip
        md.append("| " + " | ".join(line) + " |")
        means = [f"{row['mean'][m]:.4f}" for m in E2E_COLUMNS]
        stds = ["" if row["std"][m] is None else f"{row['std'][m]:.4f}" for m in E2E_COLUMNS]
        counts = [str(row[k]) for k in ("params_method", "params_trainable", "params_total")]
        csv_rows.append(["ours", *line[:5], *means, str(row["seeds"]), *stds, *counts])
        for paper in paper_rows(TABLE3, row["model"], row["method"]):
            if paper.display + paper.params in shown:
                continue
            shown.add(paper.display + paper.params)
            md.append("| " + " | ".join(f"*{c}*" if c else "" for c in _paper_line(paper)) + " |")
            csv_rows.append(["paper", *_paper_line(paper)])
    if not shown:
        methods = {r["method"] for r in rows}
        scale = [p for p in TABLE3 if p.model == "gpt2-medium" and p.method in methods]
        if scale:
            md += ["", "For scale only (different model and budget), the paper's GPT-2 M rows:",
                   "", "| Paper row | # Params | " + " | ".join(HEADS[m] for m in E2E_COLUMNS)
                   + " |", "|" + "---|" * (len(E2E_COLUMNS) + 2)]  # fmt: skip
            for paper in scale:
                md.append(f"| {paper.display} | {paper.params} | "
                          + " | ".join(_paper_line(paper)[5:10]) + " |")  # fmt: skip
                csv_rows.append(["paper", *_paper_line(paper)])
    md += [
        "",
        "BLEU, METEOR (MET) and ROUGE-L ×100, NIST and CIDEr raw, from the official "
        "e2e-metrics scorer (`measure_scores.py -p`) on the test MRs with their references "
        "grouped per MR; mean over seeds (± standard deviation) as the paper reports Table "
        '3, each run decoded at its epoch of lowest dev loss. "# Params (paper count)" '
        'excludes the task head; "with head" counts every trainable parameter. Italic '
        "rows are the paper's numbers (Table 3, 3 seeds; * = copied from Li & Liang 2021).",
    ]
    md += ["", "The paper prints 0.35M trainable parameters for GPT-2 M LoRA (and 0.77M for "
           "GPT-2 L), but r=4 on W_q and W_v gives 2·24·1024·4 = 393,216 (0.39M) and "
           "2·36·1280·4 = 737,280 (0.74M), the shapes of the official code's MergedLinear and "
           "the size of its released checkpoint; our counts follow the code."]  # fmt: skip
    md += ["", _data_note(records)]
    if notes:
        md += ["", notes.strip()]
    return "\n".join(md) + "\n", csv_rows


def _data_note(records: list[dict[str, Any]]) -> str:
    data, decode = records[0]["data"], records[0]["decode"]
    train, available = data["train_size"], data["train_available"]
    subset = (f"a seeded subsample of {train:,} of the {available:,} pairs" if train < available
              else f"all {train:,} pairs")  # fmt: skip
    return (
        f"Training: {subset}; dev pairs for the best-epoch choice: {data['eval_sizes']['dev']:,}; "
        f"test: {data['eval_sizes']['test_mrs']:,} MRs ({data['test_references']:,} references). "
        f"Decoding: beam {decode['num_beams']}, length penalty {decode['length_penalty']}, "
        f"no repeated {decode['no_repeat_ngram_size']}-grams, at most "
        f"{decode['max_new_tokens']} new tokens."
    )


def write_e2e_table(out_dir: Path, stem: str, experiment: str, records: list[dict]) -> list[Path]:
    """Write ``<out_dir>/<stem>.md`` and ``.csv`` for E2E ``records``; returns the paths."""
    md, rows = render_e2e(experiment, records, records[-1]["config"].get("notes"))
    (out_dir / f"{stem}.md").write_text(md)
    with open(out_dir / f"{stem}.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return [out_dir / f"{stem}.md", out_dir / f"{stem}.csv"]
