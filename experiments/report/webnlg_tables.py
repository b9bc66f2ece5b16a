"""The WebNLG table (paper Table 14) from result records.

One row per configuration (:func:`experiments.report.common.group_rows`); columns BLEU
(×100), METEOR and TER (fractions, as the paper prints them: ``.38``) on the unseen (U),
seen (S) and all (A) test categories, the **mean** over seeds (± standard deviation with
several seeds; the paper's ± rows are over 3 seeds), the three parameter counts and the
settings that differ between rows. The paper's GPT-2 M/L rows stand beside ours where
model and method match, else (another model) below the table for scale.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from experiments.report import compare
from experiments.report.common import (
    footer,
    group_rows,
    write_md_csv,
)
from experiments.report.e2e_tables import lora_ft_gap_note, score_table
from experiments.report.paper_numbers import PAPER_TABLE14, WEBNLG_COLUMNS, PaperRow

#: column key -> (metric, record subset, header)
COLUMNS = {
    f"{m}_{s[0].upper()}": (m, s, f"{head} {s[0].upper()}")
    for m, head in (("BLEU", "BLEU"), ("METEOR", "MET"), ("TER", "TER"))
    for s in ("unseen", "seen", "all")
}
#: metric -> decimals as the paper prints them (BLEU 46.5, METEOR .38, TER .53)
DECIMALS = {"BLEU": 1, "METEOR": 2, "TER": 2}


def webnlg_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of :func:`group_rows`, each with ``mean`` and ``std`` (column key of
    :data:`COLUMNS` -> value; std None for one seed) and ``seeds``.

    Raises:
        KeyError: a record lacks a subset (a DART record has only ``all``).
    """
    rows = group_rows(records)
    for row in rows:
        row["mean"], row["std"] = {}, {}
        for key, (metric, subset, _) in COLUMNS.items():
            values = [r["metrics"]["test"][subset][metric] for r in row["records"]]
            row["mean"][key] = statistics.mean(values)
            row["std"][key] = statistics.stdev(values) if len(values) > 1 else None
        row["seeds"] = len(row["records"])
    return rows


def _fmt(value: float, metric: str) -> str:
    text = f"{value:.{DECIMALS[metric]}f}"
    return text.removeprefix("0") if metric != "BLEU" else text  # the paper's ".38"


def _cell(value: float, std: float | None, metric: str) -> str:
    return _fmt(value, metric) + (f"±{_fmt(std, metric)}" if std is not None else "")


def _paper_cells(paper: PaperRow) -> list[str]:
    return [_fmt(paper.scores[k], COLUMNS[k][0]) for k in WEBNLG_COLUMNS]


def render_webnlg(
    experiment: str, records: list[dict[str, Any]], notes: str | None
) -> tuple[str, list[list[str]]]:
    """Markdown and CSV rows (header first) of one experiment's WebNLG table."""
    rows = webnlg_rows(records)
    md, csv_rows = score_table(
        f"# {experiment}: WebNLG test results (paper Table 14)", rows, WEBNLG_COLUMNS,
        [COLUMNS[k][2] for k in WEBNLG_COLUMNS],
        lambda row, k: _cell(row["mean"][k], row["std"][k], COLUMNS[k][0]), PAPER_TABLE14,
        _paper_cells,
    )  # fmt: skip
    md += [
        "",
        "BLEU ×100 (sacrebleu, `13a` tokenizer: multi-bleu-detok), METEOR 1.5 (`-l en -norm`, "
        "pycocoevalcap's jar) and TER (sacrebleu's Tercom, lowest over the references, "
        "averaged over outputs) as the WebNLG challenge's GenerationEval computes them on "
        "`gpt2_decode.py --lower --tokenize` text, at most 6 references per input; lower TER "
        "is better. U = unseen categories, S = seen, A = all. Mean over seeds (± standard "
        "deviation); each run decoded at its epoch of lowest dev loss. One row per "
        "configuration: only seeds are pooled; settings that differ between rows are "
        "columns. Italic rows are the paper's numbers (Table 14).",
    ]
    gap = lora_ft_gap_note(rows, "BLEU_A", "BLEU (all categories)", PAPER_TABLE14)
    md += ["", _data_note(records)] + (["", gap] if gap else [])
    if notes:
        md += ["", notes.strip()]
    md += ["", compare.NLG_NOTE]
    md += footer(records, any(r["stale"] for r in rows))
    return "\n".join(md) + "\n", csv_rows


def _data_note(records: list[dict[str, Any]]) -> str:
    data, decode = records[0]["data"], records[0]["decode"]
    train, available = data["train_size"], data["train_available"]
    subset = (f"a seeded subsample of {train:,} of the {available:,} pairs" if train < available
              else f"all {train:,} pairs")  # fmt: skip
    sizes = data["test_subset_sizes"]
    return (
        f"Training: {subset}; dev pairs for the best-epoch choice: {data['eval_sizes']['dev']:,}; "
        f"test: {sizes['all']:,} inputs ({sizes.get('seen', 0):,} seen, "
        f"{sizes.get('unseen', 0):,} unseen; {data['test_references']:,} references). "
        f"Decoding: beam {decode['num_beams']}, length penalty {decode['length_penalty']}, "
        f"no repeated {decode['no_repeat_ngram_size']}-grams, at most "
        f"{decode['max_new_tokens']} new tokens."
    )


def write_webnlg_table(
    out_dir: Path, stem: str, experiment: str, records: list[dict]
) -> list[Path]:
    """Write ``<out_dir>/<stem>.md`` and ``.csv`` for WebNLG ``records``; returns the paths."""
    md, rows = render_webnlg(experiment, records, records[-1]["config"].get("notes"))
    return write_md_csv(out_dir, stem, md, rows)
