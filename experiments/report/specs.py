"""Every table from training records, one spec each: rows, columns and metric, the
reference row, the paper's values and claim, and the notes (Hu et al. 2021).

Paper values: Hu et al. 2021, arXiv 2106.09685 (Table 2, GLUE dev ×100, median of 5
seeds; Table 3, E2E; Tables 5, 6, 16, 18 and 14). ``prior`` marks the ``*`` rows the
paper copied from earlier work, ``houlsby_setup`` its ``†`` rows (sequence length 128,
fixed batch size, no MNLI initialisation). :mod:`experiments.report.render` turns a
spec into Markdown and CSV; :func:`layout_for` and :data:`BY_KIND` say which spec an
experiment gets.
"""

from __future__ import annotations

import functools
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from experiments.core.labels import (
    METHOD_LABELS,
    fmt_params,
    fmt_targets,
    method_label,
    method_names,
)
from experiments.glue.data import TASKS as GLUE_TASKS
from experiments.report.common import STALE_MARK, any_stale, footer, seeds_cell
from experiments.report.plots import plot_dev_loss, plot_lr_search, plot_rank_sweep
from experiments.report.render import (
    BOOTSTRAP,
    NLG_NOTE,
    Column,
    Comparison,
    Context,
    Layout,
    PaperRow,
    Pooled,
    Records,
    ScoreTable,
    claim_note,
    claim_terms,
    decimals,
    group_cells,
    italic,
    md_table,
    mean_cell,
    median_cell,
    missing_note,
    row_values,
    setting_text,
    short,
)
from experiments.report.stats import Claim

_POOLING = (
    "One cell pools only seeds: runs whose settings differ in anything but the seed are "
    "never pooled; settings that differ between rows are shown beside them."
)


def _notes(ctx: Context) -> list[str]:
    return ["", ctx.notes.strip()] if ctx.notes else []


def _task_name(task: str) -> str:
    return GLUE_TASKS[task].display if task in GLUE_TASKS else task.upper()


# == Table 2: GLUE ======================================================================

GLUE_COLUMNS = ("mnli", "sst2", "mrpc", "cola", "qnli", "qqp", "rte", "stsb")
_glue = functools.partial(row_values, GLUE_COLUMNS)
TABLE2: list[PaperRow] = [
    PaperRow("roberta-base", "full_ft", "RoB-base (FT)", "125.0M",
             _glue("87.6 94.8 90.2 63.6 92.8 91.9 78.7 91.2"), prior=True),
    PaperRow("roberta-base", "bitfit", "RoB-base (BitFit)", "0.1M",
             _glue("84.7 93.7 92.7 62.0 91.8 84.0 81.5 90.8"), prior=True),
    PaperRow("roberta-base", "adapter_d", "RoB-base (AdptD)", "0.3M",
             _glue("87.1 94.2 88.5 60.8 93.1 90.2 71.5 89.7"), prior=True),
    PaperRow("roberta-base", "adapter_d", "RoB-base (AdptD)", "0.9M",
             _glue("87.3 94.7 88.4 62.6 93.0 90.6 75.9 90.3"), prior=True),
    PaperRow("roberta-base", "lora", "RoB-base (LoRA)", "0.3M",
             _glue("87.5 95.1 89.7 63.4 93.3 90.8 86.6 91.5")),
    PaperRow("roberta-large", "full_ft", "RoB-large (FT)", "355.0M",
             _glue("90.2 96.4 90.9 68.0 94.7 92.2 86.6 92.4"), prior=True),
    PaperRow("roberta-large", "lora", "RoB-large (LoRA)", "0.8M",
             _glue("90.6 96.2 90.9 68.2 94.9 91.6 87.4 92.6")),
    PaperRow("roberta-large", "adapter_p", "RoB-large (AdptP)", "3.0M",
             _glue("90.2 96.1 90.2 68.3 94.8 91.9 83.8 92.1"), houlsby_setup=True),
    PaperRow("roberta-large", "adapter_p", "RoB-large (AdptP)", "0.8M",
             _glue("90.5 96.6 89.7 67.8 94.8 91.7 80.1 91.9"), houlsby_setup=True),
    PaperRow("roberta-large", "adapter_h", "RoB-large (AdptH)", "6.0M",
             _glue("89.9 96.2 88.7 66.5 94.7 92.1 83.4 91.0"), houlsby_setup=True),
    PaperRow("roberta-large", "adapter_h", "RoB-large (AdptH)", "0.8M",
             _glue("90.3 96.3 87.7 66.3 94.7 91.5 72.9 91.5"), houlsby_setup=True),
    PaperRow("roberta-large", "lora", "RoB-large (LoRA)", "0.8M",
             _glue("90.6 96.2 90.2 68.2 94.8 91.6 85.2 92.3"), houlsby_setup=True),
    PaperRow("deberta-v2-xxlarge", "full_ft", "DeB-XXL (FT)", "1500.0M",
             _glue("91.8 97.2 92.0 72.0 96.0 92.7 93.9 92.9"), prior=True),
    PaperRow("deberta-v2-xxlarge", "lora", "DeB-XXL (LoRA)", "4.7M",
             _glue("91.9 96.9 92.6 72.4 96.0 92.9 94.9 93.0")),
]  # fmt: skip

#: The paper's claim for its GLUE table, tested on every row against the FT row.
GLUE_CLAIM = Claim("the row performs on par with or better than FT, as the paper finds for "
                   "LoRA (abstract; §5.2, Table 2)", "at_least", 1.0)  # fmt: skip


def glue_protocol(records: Records) -> str:
    """``heldout`` when every record has held-out selection, else ``best`` (the paper's)."""
    ok = records and all("heldout" in r["metrics"] for r in records)
    return "heldout" if ok else "best"


def glue_score(record: dict[str, Any], proto: str) -> float:
    """The record's dev score (natural units) under ``proto``."""
    return record["metrics"]["heldout"]["main"] if proto == "heldout" else record["metrics"]["main"]


def _glue_columns(records: Records, proto: str) -> list[Column]:
    return [Column(t, GLUE_TASKS[t].display,
                   lambda r, t=t: 100 * glue_score(r, proto) if r["task"] == t else None)
            for t in GLUE_COLUMNS]  # fmt: skip


def dev_outputs(record: dict[str, Any], proto: str) -> tuple | None:
    """``(pred, label, index)`` of the dev set under ``proto``, or None without outputs."""
    p = (record.get("predictions") or {}).get(proto)
    return None if p is None else (p["pred"], p["label"], p["index"])


def _glue_comparisons(columns: list[Column], proto: str) -> list[Comparison]:
    return [Comparison(c.key, c.head, lambda r, t=c.key: r["task"] == t,
                       functools.partial(dev_outputs, proto=proto),
                       GLUE_TASKS[c.key].main_metric, GLUE_CLAIM) for c in columns]  # fmt: skip


def _glue_difference_notes(ctx: Context) -> list[str]:
    note = claim_note(GLUE_CLAIM, ctx.ref["label"]) + (
        " The average pools the tasks' differences with the same seed draw; Δ cells are "
        "empty where a task lacks a run.")  # fmt: skip
    records = [r for row in ctx.rows for r in row["records"]]
    return ["", note, *_learning_curve(ctx), *missing_note(records, ctx.proto)]


def _learning_curve(ctx: Context) -> list[str]:
    """One notes line: each row's held-out score per epoch, mean over seeds, so that a
    reader sees whether the budget has flattened the curves."""
    if ctx.proto != "heldout":
        return []
    parts = []
    for c in ctx.columns:
        key = f"eval_heldout_{GLUE_TASKS[c.key].main_metric}"
        for row in ctx.rows:
            by_epoch: dict[float, list[float]] = defaultdict(list)
            for e in (e for r in row["records"] if r["task"] == c.key for e in r["epochs"]):
                if key in e:
                    by_epoch[e["epoch"]].append(100 * e[key])
            if by_epoch:
                means = (statistics.mean(v) for _, v in sorted(by_epoch.items()))
                parts.append(f"{c.head} {row['label']} " + " → ".join(f"{m:.1f}" for m in means))
    if not parts:
        return []
    return ["", "Held-out score by epoch (mean over seeds): " + "; ".join(parts) + "."]


def _glue_notes(ctx: Context) -> list[str]:
    epoch = ("the dev score at each run's epoch chosen on held-out training data "
             "(data.heldout)" if ctx.proto == "heldout" else "each run's best epoch")  # fmt: skip
    md = ["", "Scores ×100 on the dev sets: accuracy, Matthews correlation (CoLA), Pearson "
          f"(STS-B); median over seeds of {epoch}, and in brackets the min–max "
          "over seeds where a row has two or more. One row per configuration: only seeds are "
          "pooled; settings that differ between rows are columns (\"per task\": the setting "
          "differs between tasks, as in paper Table 9). \"# Params (paper count)\" excludes "
          "the task head, as the paper's tables do; \"with head\" counts every trainable "
          "parameter. Italic rows are the paper's numbers (Table 2): * = copied by the paper "
          "from prior work, † = Houlsby-like setup."]  # fmt: skip
    sizes: dict[str, set[int]] = {}
    for row in ctx.rows:
        for c in ctx.columns:
            first = next((r for r in row["records"] if r["task"] == c.key), None)
            if first is not None:
                sizes.setdefault(c.head, set()).add(first["data"]["train_size"])
    if sizes:
        md += ["", "Training examples per task: " + ", ".join(
            f"{head} " + "/".join(f"{n:,}" for n in sorted(ns)) for head, ns in sizes.items())
            + "."]  # fmt: skip
    md += _notes(ctx)
    if ctx.figure is not None:
        rank = ctx.figure.stem.endswith("_rank")
        what = "score against rank" if rank else "held-out score against lr"
        md += ["", f"![{what}]({ctx.figure.name})"]
    return md


def _glue_figure(records: Records, out: Path, stem: str) -> Path | None:
    return plot_rank_sweep(records, out / f"{stem}_rank.png") or plot_lr_search(
        records, out / f"{stem}_lr.png")  # fmt: skip


GLUE = ScoreTable(
    title="# {experiment}: GLUE dev results", columns=_glue_columns, paper=TABLE2,
    paper_seeds="5", paper_model="paper", scale=("roberta-base", "RoBERTa-base"),
    average=True, protocol=glue_protocol, reference="full_ft", comparisons=_glue_comparisons,
    lr_per_column=True, csv_layout=("counts", "stale", "spread", "deltas"), pad_paper_csv=True,
    difference_notes=_glue_difference_notes, notes=_glue_notes, figure=_glue_figure,
)  # fmt: skip


# == Table 3: E2E NLG ===================================================================

E2E_COLUMNS = ("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr")
_e2e = functools.partial(row_values, E2E_COLUMNS)
TABLE3: list[PaperRow] = [
    PaperRow("gpt2-medium", "full_ft", "GPT-2 M (FT)", "354.92M", _e2e("68.2 8.62 46.2 71.0 2.47"), prior=True),
    PaperRow("gpt2-medium", "adapter_l", "GPT-2 M (AdapterL)", "0.37M", _e2e("66.3 8.41 45.0 69.8 2.40"), prior=True),
    PaperRow("gpt2-medium", "adapter_l", "GPT-2 M (AdapterL)", "11.09M", _e2e("68.9 8.71 46.1 71.3 2.47"), prior=True),
    PaperRow("gpt2-medium", "adapter_h", "GPT-2 M (AdapterH)", "11.09M", _e2e("67.3 8.50 46.0 70.7 2.44")),
    PaperRow("gpt2-medium", "ft_top2", "GPT-2 M (FT^Top2)", "25.19M", _e2e("68.1 8.59 46.0 70.8 2.41"), prior=True),
    PaperRow("gpt2-medium", "prefix_layer", "GPT-2 M (PreLayer)", "0.35M", _e2e("69.7 8.81 46.1 71.4 2.49"), prior=True),
    PaperRow("gpt2-medium", "lora", "GPT-2 M (LoRA)", "0.35M", _e2e("70.4 8.85 46.8 71.8 2.53")),
    PaperRow("gpt2-large", "full_ft", "GPT-2 L (FT)", "774.03M", _e2e("68.5 8.78 46.0 69.9 2.45"), prior=True),
    PaperRow("gpt2-large", "adapter_l", "GPT-2 L (AdapterL)", "0.88M", _e2e("69.1 8.68 46.3 71.4 2.49")),
    PaperRow("gpt2-large", "adapter_l", "GPT-2 L (AdapterL)", "23.00M", _e2e("68.9 8.70 46.1 71.3 2.45")),
    PaperRow("gpt2-large", "prefix_layer", "GPT-2 L (PreLayer)", "0.77M", _e2e("70.3 8.85 46.2 71.7 2.47"), prior=True),
    PaperRow("gpt2-large", "lora", "GPT-2 L (LoRA)", "0.77M", _e2e("70.4 8.89 46.8 72.0 2.47")),
]  # fmt: skip
#: metric -> (head, factor to the paper's view, decimals as the paper prints them)
E2E_VIEW = {"BLEU": ("BLEU", 100, 1), "NIST": ("NIST", 1, 2), "METEOR": ("MET", 100, 1),
            "ROUGE_L": ("ROUGE-L", 100, 1), "CIDEr": ("CIDEr", 1, 2)}  # fmt: skip
#: LoRA may trail FT by this much (BLEU points) and still count as matching the paper's
#: finding that LoRA matches or beats FT ("within 1 BLEU").
GAP_TOLERANCE = 1.0
#: The paper's claim for its NLG tables (§5.5, Tables 3 and 14), tested on every row's
#: test BLEU against the FT row with the same tolerance as the gap note.
BLEU_CLAIM = Claim("the row matches or beats FT on BLEU, as the paper finds for LoRA (§5.5, "
                   "Table 3)", "at_least", GAP_TOLERANCE)  # fmt: skip
#: The same finding on the test NLL (lower is better). The paper states no NLL claim: "on
#: par" is read as at most 0.05 nats per token worse (a perplexity ratio of e^0.05 ≈ 1.05).
NLL_CLAIM = Claim("the row's test NLL is no worse than FT's, the likelihood side of the "
                  "paper's finding that LoRA matches FT (§5.5; the paper gives no NLL, so "
                  "the tolerance, a perplexity ratio of about 1.05, is ours)", "at_most",
                  0.05)  # fmt: skip


def _test_outputs(record: dict[str, Any], *fields: str) -> tuple | None:
    """``predictions.test`` fields plus the test-set index, or None where any is missing."""
    p = (record.get("predictions") or {}).get("test") or {}
    return tuple(p[f] for f in (*fields, "index")) if all(f in p for f in fields) else None


def _bleu_arrays(record: dict[str, Any]) -> tuple | None:
    found = _test_outputs(record, "bleu_stats")  # per MR: the 9 sufficient statistics
    return None if found is None else (found[0], np.zeros(len(found[1])), found[1])


def _nlg_comparisons(bleu: bool):
    """The NLG tables' Δ columns: BLEU from per-MR statistics (E2E's scorer only), and
    the test NLL from the references' summed NLL and token counts."""
    nll = Comparison("NLL", "NLL", lambda r: True, lambda r: _test_outputs(r, "nll_sum", "tokens"),
                     "nll", NLL_CLAIM, scale=1.0, digits=3, same_model=True)  # fmt: skip
    bleu_ = Comparison("BLEU", "BLEU", lambda r: True, _bleu_arrays, "bleu", BLEU_CLAIM)
    return lambda columns, proto: [bleu_, nll] if bleu else [nll]


def _nlg_difference_notes(bleu: bool):
    """The notes closing an NLG table's Δ section: how each Δ is computed and judged."""

    def notes(ctx: Context) -> list[str]:
        terms = []
        if bleu:
            terms.append(("BLEU", "in points, the corpus BLEU of the drawn MRs from their "
                          "summed n-gram statistics (the table's BLEU, experiments.e2e.mteval)",
                          BLEU_CLAIM, ("BLEU point", "BLEU points")))  # fmt: skip
        terms.append(("NLL", "in nats per reference token: the drawn inputs' summed "
                      "teacher-forced NLL of their references over their summed tokens, lower "
                      "is better, and only between rows of one model (one tokenizer)",
                      NLL_CLAIM, ("nat per token", "nats per token")))  # fmt: skip
        parts = [f"{name} {how}" for name, how, *_ in terms]
        claims = []
        for name, _, claim, units in terms:
            bound, rule = claim_terms(claim, *units)
            claims.append(f"{name}: {claim.text} ({bound}); verdict {rule}")
        text = (f"Δ = row − {ctx.ref['label']}, the mean over paired seeds, test inputs paired "
                f"by their index in the test set: {'; '.join(parts)}. {BOOTSTRAP} Claims: "
                + ". ".join(claims) + ".")  # fmt: skip
        records = [r for row in ctx.rows for r in row["records"]]
        what = "per-input test outputs (decoded text, reference NLL" + (
            ", BLEU statistics)" if bleu else ")")  # fmt: skip
        return ["", text, *missing_note(records, "test", what, "these outputs")]

    return notes


def _nlg_end(ctx: Context) -> list[str]:
    """Without a reference row nothing is compared; say why no interval appears."""
    return ["", NLG_NOTE] if ctx.ref is None else []


def _e2e_columns(records: Records, proto: str) -> list[Column]:
    columns = [Column(m, head, lambda r, m=m, f=f: f * r["metrics"]["test"][m], median=False,
                      fmt=decimals(d), csv_fmt=decimals(4))
               for m, (head, f, d) in E2E_VIEW.items()]  # fmt: skip
    if any("NLL" in r["metrics"]["test"] for r in records):  # records since per-MR outputs
        columns.append(Column("NLL", "test NLL", lambda r: r["metrics"]["test"].get("NLL"),
                              median=False, fmt=decimals(3), csv_fmt=decimals(4)))  # fmt: skip
    return columns


def _e2e_figure(records: Records, out: Path, stem: str) -> Path | None:
    return plot_dev_loss(records, out / f"{stem}_dev_loss.png")


def lora_ft_gap_note(rows: list[dict[str, Any]], key: str, metric: str,
                     paper: list[PaperRow]) -> str | None:  # fmt: skip
    """One line: our LoRA − FT gap on column ``key`` against the paper's GPT-2 M gap.

    Per model, the best LoRA row against the best FT row (an lr sweep gives several), by
    the rows' pooled means (``row["cells"][key]``). The line says whether the gap agrees
    with the paper (LoRA ≥ FT − :data:`GAP_TOLERANCE`) or contradicts it. None when no
    model has both a LoRA and an FT row.
    """
    ref = {p.method: p.scores[key] for p in paper if p.model == "gpt2-medium"}
    paper_gap = ref["lora"] - ref["full_ft"] if {"lora", "full_ft"} <= set(ref) else None
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        best: dict[str, float] = {}
        for r in rows:
            if r["model"] == model and r["method"] in ("lora", "full_ft"):
                mean = r["cells"][key].center
                best[r["method"]] = max(best.get(r["method"], float("-inf")), mean)
        if len(best) < 2:
            continue
        gap = best["lora"] - best["full_ft"]
        verdict = ("agrees with the paper (LoRA matches or beats FT)" if gap >= -GAP_TOLERANCE
                   else "**contradicts the paper**, where LoRA matches or beats FT")  # fmt: skip
        out.append(f"{model}: LoRA − FT {metric} = {gap:+.1f} ({verdict})")
    if not out:
        return None
    paper_text = f"; paper GPT-2 M: {paper_gap:+.1f}" if paper_gap is not None else ""
    return (
        "LoRA − FT gap, best row of each (point estimates; the paired intervals and "
        "their verdicts are under Difference from FT): " + "; ".join(out) + paper_text + "."
    )


def _data_note(records: Records, test: str) -> str:
    data, decode = records[0]["data"], records[0]["decode"]
    train, available = data["train_size"], data["train_available"]
    subset = (f"a seeded subsample of {train:,} of the {available:,} pairs" if train < available
              else f"all {train:,} pairs")  # fmt: skip
    return (
        f"Training: {subset}; dev pairs for the best-epoch choice: {data['eval_sizes']['dev']:,}; "
        f"test: {test}. Decoding: beam {decode['num_beams']}, length penalty "
        f"{decode['length_penalty']}, no repeated {decode['no_repeat_ngram_size']}-grams, at "
        f"most {decode['max_new_tokens']} new tokens."
    )


def _e2e_notes(ctx: Context) -> list[str]:
    data = ctx.records[0]["data"]
    test = f"{data['eval_sizes']['test_mrs']:,} MRs ({data['test_references']:,} references)"
    gap = lora_ft_gap_note(ctx.rows, "BLEU", "BLEU", TABLE3)
    return [
        "", "BLEU, METEOR (MET) and ROUGE-L ×100, NIST and CIDEr raw, from the official "
        "e2e-metrics scorer (`measure_scores.py -p`) on the test MRs with their references "
        "grouped per MR; mean over seeds (± standard deviation) as the paper reports Table "
        "3, each run decoded at its epoch of lowest dev loss. One row per configuration: "
        "only seeds are pooled; settings that differ between rows are columns. "
        '"# Params (paper count)" excludes the task head; "with head" counts every trainable '
        "parameter. Italic rows are the paper's numbers (Table 3, 3 seeds; * = copied from "
        "Li & Liang 2021).",
        "", "The paper prints 0.35M trainable parameters for GPT-2 M LoRA (and 0.77M for "
        "GPT-2 L), but r=4 on W_q and W_v gives 2·24·1024·4 = 393,216 (0.39M) and "
        "2·36·1280·4 = 737,280 (0.74M), the shapes of the official code's MergedLinear and "
        "the size of its released checkpoint; our counts follow the code.",
        "", _data_note(ctx.records, test), *(["", gap] if gap else []), *_notes(ctx),
        *_nlg_end(ctx), *_dev_loss_notes(ctx),
    ]  # fmt: skip


def _dev_loss_notes(ctx: Context) -> list[str]:
    """Where the test NLL column exists, what it is; the dev-loss plot, with each row's
    last two dev losses (has the curve flattened?)."""
    md = []
    if any(c.key == "NLL" for c in ctx.columns):
        md += ["", "test NLL: the mean per-token negative log-likelihood (nats) of every "
               "reference of the scored test MRs under teacher forcing, without label "
               "smoothing; lower is better."]  # fmt: skip
    if ctx.figure is not None:
        tails = []
        for row in ctx.rows:
            for r in row["records"]:
                losses = [e["eval_dev_loss"] for e in r["epochs"] if "eval_dev_loss" in e]
                if len(losses) > 1:
                    tails.append(f"{method_label(r['method'])} lr {r['config']['train']['lr']:g}: "
                                 f"{losses[-2]:.3f} → {losses[-1]:.3f}")  # fmt: skip
        md += ["", "Dev loss at the last two epochs: " + "; ".join(tails) + ".",
               "", f"![dev loss by epoch]({ctx.figure.name})"]  # fmt: skip
    return md


E2E = ScoreTable(
    title="# {experiment}: E2E NLG test results", columns=_e2e_columns, paper=TABLE3,
    paper_seeds="3", scale=("gpt2-medium", "GPT-2 M"), notes=_e2e_notes,
    reference="full_ft", comparisons=_nlg_comparisons(bleu=True),
    difference_notes=_nlg_difference_notes(bleu=True), figure=_e2e_figure,
    csv_layout=("spread", "counts", "stale", "deltas"),
)  # fmt: skip


# == Table 14: WebNLG ===================================================================

#: column "<metric>_<U|S|A>" (unseen, seen, all categories), BLEU ×100, METEOR and TER
#: fractions; means only (the ± of three paper rows dropped).
WEBNLG_COLUMNS = tuple(f"{m}_{s}" for m in ("BLEU", "METEOR", "TER") for s in "USA")
_webnlg = functools.partial(row_values, WEBNLG_COLUMNS)
PAPER_TABLE14: list[PaperRow] = [
    PaperRow("gpt2-medium", "full_ft", "GPT-2 M (FT)", "354M", _webnlg("27.7 64.2 46.5 .30 .45 .38 .76 .33 .53")),
    PaperRow("gpt2-medium", "adapter_l", "GPT-2 M (AdapterL)", "0.37M", _webnlg("45.1 54.5 50.2 .36 .39 .38 .46 .40 .43")),
    PaperRow("gpt2-medium", "adapter_l", "GPT-2 M (AdapterL)", "11M", _webnlg("48.3 60.4 54.9 .38 .43 .41 .45 .35 .39")),
    PaperRow("gpt2-medium", "ft_top2", "GPT-2 M (FT^Top2)", "24M", _webnlg("18.9 53.6 36.0 .23 .38 .31 .99 .49 .72")),
    PaperRow("gpt2-medium", "prefix_layer", "GPT-2 M (Prefix)", "0.35M", _webnlg("45.6 62.9 55.1 .38 .44 .41 .49 .35 .40")),
    PaperRow("gpt2-medium", "lora", "GPT-2 M (LoRA)", "0.35M", _webnlg("46.7 62.1 55.3 .38 .44 .41 .46 .33 .39")),
    PaperRow("gpt2-large", "full_ft", "GPT-2 L (FT)", "774M", _webnlg("43.1 65.3 55.5 .38 .46 .42 .53 .33 .42")),
    PaperRow("gpt2-large", "adapter_l", "GPT-2 L (AdapterL)", "0.88M", _webnlg("49.8 61.1 56.0 .38 .43 .41 .44 .35 .39")),
    PaperRow("gpt2-large", "adapter_l", "GPT-2 L (AdapterL)", "23M", _webnlg("49.2 64.7 57.7 .39 .46 .43 .46 .33 .39")),
    PaperRow("gpt2-large", "prefix_layer", "GPT-2 L (Prefix)", "0.77M", _webnlg("47.7 63.4 56.3 .39 .45 .42 .48 .34 .40")),
    PaperRow("gpt2-large", "lora", "GPT-2 L (LoRA)", "0.77M", _webnlg("48.4 64.0 57.0 .39 .45 .42 .45 .32 .38")),
]  # fmt: skip


def _fraction(value: float) -> str:
    return f"{value:.2f}".removeprefix("0")  # the paper's ".38"


def _webnlg_columns(records: Records, proto: str) -> list[Column]:
    subsets = {"U": "unseen", "S": "seen", "A": "all"}
    return [Column(key, f"{head} {key[-1]}",
                   lambda r, m=key[:-2], s=subsets[key[-1]]: r["metrics"]["test"][s][m],
                   median=False, fmt=decimals(1) if head == "BLEU" else _fraction,
                   csv_fmt=decimals(4))
            for key, head in zip(WEBNLG_COLUMNS, ["BLEU"] * 3 + ["MET"] * 3 + ["TER"] * 3,
                                 strict=True)]  # fmt: skip


def _webnlg_notes(ctx: Context) -> list[str]:
    data = ctx.records[0]["data"]
    sizes = data["test_subset_sizes"]
    test = (f"{sizes['all']:,} inputs ({sizes.get('seen', 0):,} seen, {sizes.get('unseen', 0):,}"
            f" unseen; {data['test_references']:,} references)")  # fmt: skip
    gap = lora_ft_gap_note(ctx.rows, "BLEU_A", "BLEU (all categories)", PAPER_TABLE14)
    return [
        "", "BLEU ×100 (sacrebleu, `13a` tokenizer: multi-bleu-detok), METEOR 1.5 (`-l en "
        "-norm`, pycocoevalcap's jar) and TER (sacrebleu's Tercom, lowest over the references, "
        "averaged over outputs) as the WebNLG challenge's GenerationEval computes them on "
        "`gpt2_decode.py --lower --tokenize` text, at most 6 references per input; lower TER "
        "is better. U = unseen categories, S = seen, A = all. Mean over seeds (± standard "
        "deviation); each run decoded at its epoch of lowest dev loss. One row per "
        "configuration: only seeds are pooled; settings that differ between rows are "
        "columns. Italic rows are the paper's numbers (Table 14).",
        "", _data_note(ctx.records, test), *(["", gap] if gap else []), *_notes(ctx),
        *_nlg_end(ctx),
    ]  # fmt: skip


WEBNLG = ScoreTable(
    title="# {experiment}: WebNLG test results (paper Table 14)", columns=_webnlg_columns,
    paper=PAPER_TABLE14, paper_seeds="3", scale=("gpt2-medium", "GPT-2 M"),
    notes=_webnlg_notes, reference="full_ft", comparisons=_nlg_comparisons(bleu=False),
    difference_notes=_nlg_difference_notes(bleu=False),
    csv_layout=("spread", "counts", "stale", "deltas"),
)  # fmt: skip


# == Tables 5, 6, 16, 18 in the paper's layout ==========================================
# A cell pools only seeds: records are grouped by their settings (plus the task's own
# config) with the table's axis removed (group_cells); settings that still differ between
# rows are shown beside them, and rows with records from older code are marked ‡. GLUE
# cells are the median over seeds ×100 with the min–max (§D.1); E2E cells the mean ± std.


def _glue_main(record: dict[str, Any]) -> float:
    return 100 * record["metrics"]["main"]


def _e2e_value(record: dict[str, Any], key: str, factor: float = 1) -> float:
    if key == "dev_loss":
        return record["metrics"]["best"]["dev_loss"]
    return factor * record["metrics"]["test"][key]


def _close(md: list[str], records: Records, stale: bool, notes: str | None) -> str:
    by_task: dict[str, set[int]] = defaultdict(set)
    for r in records:
        by_task[r["task"]].add(r["data"]["train_size"])
    md += ["", "Training examples: " + ", ".join(
        f"{_task_name(t)} " + "/".join(f"{n:,}" for n in sorted(ns))
        for t, ns in sorted(by_task.items())) + "."]  # fmt: skip
    if notes:
        md += ["", notes.strip()]
    nlg = any(r["task"] not in GLUE_TASKS for r in records)
    md += ["", NLG_NOTE] if nlg else missing_note(records)
    md += footer(records, stale)
    return "\n".join(md) + "\n"


def _weight_head(method: dict[str, Any]) -> str:
    """A Table 5/6 column or row name: the adapted matrices (and a LoRA variant's name)."""
    if "targets" not in method:
        return method_label(method)
    names = method_names(method)
    variant = "" if names == ["lora"] else f" ({', '.join(METHOD_LABELS.get(n, n) for n in names)})"
    return fmt_targets(method["targets"]) + variant


def _json(row: tuple, key: str, default: str) -> Any:
    return json.loads(dict(row).get(key, default))


# -- Table 5: which weight matrices --------------------------------------------------------

#: Paper Table 5 (§7.1; GPT-3 175B, 18M-parameter budget): the adapted matrices and r of
#: each column, then per dataset (with the caption's seed fluctuation) accuracy in %.
PAPER_TABLE5_COLUMNS: tuple[tuple[tuple[str, ...], int], ...] = (
    (("q",), 8), (("k",), 8), (("v",), 8), (("o",), 8),
    (("q", "k"), 4), (("q", "v"), 4), (("q", "k", "v", "o"), 2),
)  # fmt: skip
PAPER_TABLE5: dict[str, tuple[float, ...]] = {
    "WikiSQL (±0.5%)": (70.4, 70.0, 73.0, 73.2, 71.4, 73.7, 73.7),
    "MultiNLI (±0.1%)": (91.0, 90.8, 91.0, 91.3, 91.3, 91.3, 91.7),
}
#: Table 5's E2E rows: (head, metric key as in :data:`T18_COLUMNS`, factor, decimals).
T5_E2E_ROWS = (("E2E BLEU", "BLEU", 100, 1), ("E2E val loss", "dev_loss", 1, 3))


def _table5_order(row: tuple) -> tuple:
    targets, r = tuple(_json(row, "method.targets", "[]")), _json(row, "method.r", "0")
    paper = [(tuple(t), pr) for t, pr in PAPER_TABLE5_COLUMNS]
    at = paper.index((targets, r)) if (targets, r) in paper else len(paper)
    return (at, len(targets), targets, r, row)


def render_table5(experiment: str, records: Records, notes: str | None,
                  figure: Path | None = None) -> tuple[str, list[list[str]]]:  # fmt: skip
    """Paper Table 5's layout: one column per configuration (matrices and r), one row per
    task (median ×100 over seeds, min–max; E2E: BLEU and dev loss, mean ± std), the paper's
    GPT-3 rows beneath. CSV: one row per column and task."""
    records = [r for r in records if r["task"] in GLUE_TASKS or r["task"] == "e2e"]
    cells, differing = group_cells(records, ("task",))
    columns = sorted({row for row, _ in cells}, key=_table5_order)
    tasks = [t for t in GLUE_COLUMNS if any(r["task"] == t for r in records)]
    e2e = any(r["task"] == "e2e" for r in records)
    heads, ranks, params, seeds = [], [], [], []
    for col in columns:
        recs = [r for (row, _), rs in cells.items() if row == col for r in rs]
        heads.append(_weight_head(recs[0]["method"]) + (STALE_MARK if any_stale(recs) else ""))
        ranks.append(str(recs[0]["method"].get("r", "")))
        params.append(fmt_params(recs[0]["params"]["method"]))
        seeds.append(seeds_cell(len(rs) for (row, _), rs in cells.items() if row == col))
    shown = [k for k in differing if k not in ("method.targets", "method.r")]
    body = [["Rank r", *ranks], ["# Params (paper count)", *params]]
    body += [[short(k), *(setting_text(col, [k])[0] for col in columns)] for k in shown]
    csv_rows = [["source", "task", "weight_type", "r", *map(short, shown), "score",
                 "score_min", "score_max", "seeds", "stale"]]  # fmt: skip
    # one row per GLUE task, then one per E2E metric: (row name, task, CSV task, cell)
    lines = [(_task_name(t), t, t, functools.partial(median_cell, value=_glue_main))
             for t in tasks]  # fmt: skip
    lines += [(name, "e2e", f"e2e_{metric}", functools.partial(
        mean_cell, value=functools.partial(_e2e_value, key=metric, factor=factor), digits=digits))
        for name, metric, factor, digits in T5_E2E_ROWS if e2e]  # fmt: skip
    for name, task, csv_task, cell in lines:
        line = [name]
        for col, head, r in zip(columns, heads, ranks, strict=True):
            recs = cells.get((col, (("task", json.dumps(task)),)), [])
            text, stats = cell(recs) if recs else ("", None)
            line.append(text)
            if stats:
                csv_rows.append(["ours", csv_task, head.rstrip(STALE_MARK), r,
                                 *setting_text(col, shown), *stats])  # fmt: skip
        body.append(line)
    body.append(["Seeds", *seeds])
    paper_at = {(tuple(t), r): i for i, (t, r) in enumerate(PAPER_TABLE5_COLUMNS)}
    for dataset, values in PAPER_TABLE5.items():
        at = [paper_at.get((tuple(_json(col, "method.targets", "[]")),
                            _json(col, "method.r", "null"))) for col in columns]  # fmt: skip
        body.append(italic([f"paper: {dataset}", *("" if i is None else f"{values[i]:.1f}"
                                                    for i in at)]))  # fmt: skip
        for (targets, r), v in zip(PAPER_TABLE5_COLUMNS, values, strict=True):
            csv_rows.append(["paper", dataset, fmt_targets(list(targets)), str(r),
                             *[""] * len(shown), f"{v:.1f}", "", "", "", ""])  # fmt: skip
    md = [f"# {experiment}: which weight matrices to adapt (paper Table 5)", ""]
    md += md_table(["Weight type", *heads], body)
    glue = ("Dev scores ×100 (accuracy; Matthews correlation for CoLA, Pearson for STS-B): "
            "median over seeds of each run's best epoch, min–max in brackets. ")  # fmt: skip
    glue = glue if tasks else ""
    md += ["", glue + _POOLING + " Italic rows are the paper's (Table 5: GPT-3 175B, "
           "18M-parameter budget, WikiSQL and MultiNLI accuracy; the caption's seed "
           "fluctuation in brackets), under the column with the same matrices and r."]  # fmt: skip
    if e2e:
        md += ["", "E2E rows: BLEU ×100 of the decoded test MRs and the dev loss at the chosen "
               "epoch (per token), mean ± std over seeds (Table 3's convention). With "
               "grouped-query attention W_k and W_v are narrower than W_q and W_o, so the "
               "same r is fewer parameters there (row \"# Params\")."]  # fmt: skip
    return _close(md, records, any(STALE_MARK in h for h in heads), notes), csv_rows


# -- Table 6: rank -------------------------------------------------------------------------

#: Paper Table 6 (§7.2; GPT-3 175B): dataset -> adapted matrices -> accuracy (%) at each
#: r of :data:`PAPER_TABLE6_RANKS`.
PAPER_TABLE6_RANKS = (1, 2, 4, 8, 64)
PAPER_TABLE6: dict[str, dict[tuple[str, ...], tuple[float, ...]]] = {
    "WikiSQL (±0.5%)": {
        ("q",): (68.8, 69.6, 70.5, 70.4, 70.0),
        ("q", "v"): (73.4, 73.3, 73.7, 73.8, 73.5),
        ("q", "k", "v", "o"): (74.1, 73.7, 74.0, 74.0, 73.9),
    },
    "MultiNLI (±0.1%)": {
        ("q",): (90.7, 90.9, 91.1, 90.7, 90.7),
        ("q", "v"): (91.3, 91.4, 91.3, 91.6, 91.4),
        ("q", "k", "v", "o"): (91.2, 91.7, 91.7, 91.5, 91.4),
    },
}


def render_table6(experiment: str, records: Records, notes: str | None,
                  figure: Path | None = None) -> tuple[str, list[list[str]]]:  # fmt: skip
    """Paper Table 6's layout: one row per (task, matrices), one column per r (median ×100
    over seeds, min–max), the paper's GPT-3 rows beneath. CSV: one row per cell."""
    records = [r for r in records if r["task"] in GLUE_TASKS]
    cells, differing = group_cells(records, ("method.r",))
    ours = {json.loads(axis[0][1]) for _, axis in cells if axis[0][1] is not None}
    ranks = sorted(ours | set(PAPER_TABLE6_RANKS))
    order = list(GLUE_COLUMNS)
    rows = sorted({row for row, _ in cells}, key=lambda row: (
        order.index(_json(row, "task", "null")) if _json(row, "task", "null") in order else 99,
        len(_json(row, "method.targets", "[]")), row))  # fmt: skip
    shown = [k for k in differing if k not in ("method.targets", "task")]
    header = ["Task", "Weight type", *map(short, shown), *(f"r={r}" for r in ranks), "Seeds"]
    csv_rows = [["source", "task", "weight_type", *map(short, shown), "r", "score", "score_min",
                 "score_max", "seeds", "stale"]]  # fmt: skip
    body, stale = [], False
    for row in rows:
        task = _json(row, "task", "null")
        recs_at = {r: cells.get((row, (("method.r", json.dumps(r)),)), []) for r in ranks}
        recs = [x for rs in recs_at.values() for x in rs]
        weight = _weight_head(recs[0]["method"])
        stale |= any_stale(recs)
        line = [_task_name(task), weight + (STALE_MARK if any_stale(recs) else ""),
                *setting_text(row, shown)]  # fmt: skip
        for r, rs in recs_at.items():
            text, stats = median_cell(rs, _glue_main) if rs else ("", None)
            line.append(text)
            if stats:
                csv_rows.append(["ours", task, weight, *setting_text(row, shown), str(r), *stats])
        body.append(line + [seeds_cell(len(rs) for rs in recs_at.values() if rs)])
    for dataset, by_targets in PAPER_TABLE6.items():
        for targets, values in by_targets.items():
            at = dict(zip(PAPER_TABLE6_RANKS, values, strict=True))
            cells = [f"{at[r]:.1f}" if r in at else "" for r in ranks]
            body.append(italic([f"paper: {dataset}", fmt_targets(list(targets)),
                                *[""] * len(shown), *cells, ""]))  # fmt: skip
            csv_rows += [["paper", dataset, fmt_targets(list(targets)), *[""] * len(shown),
                          str(r), f"{v:.1f}", "", "", "", ""] for r, v in at.items()]  # fmt: skip
    md = [f"# {experiment}: LoRA rank r (paper Table 6)", "", *md_table(header, body)]
    md += ["", "Dev scores ×100 (accuracy; Matthews correlation for CoLA, Pearson for STS-B): "
           "median over seeds of each run's best epoch, min–max in brackets. " + _POOLING
           + " Italic rows are the paper's (Table 6: GPT-3 175B on WikiSQL and MultiNLI; the "
           "caption's seed fluctuation in brackets), in the columns of the same r; the paper "
           "has no r beyond its five."]  # fmt: skip
    text = _close(md, records, stale, notes)
    if figure is not None:
        text += f"\n![dev score against rank]({figure.name})\n"
    return text, csv_rows


# -- Table 16: low-data regime -------------------------------------------------------------

#: Paper Table 16 (App. F.3; GPT-3 175B, MNLI-matched validation accuracy %): training
#: examples of each column, then method -> (the paper's label, one value per column).
PAPER_TABLE16_SIZES = (100, 1_000, 10_000, 392_702)
PAPER_TABLE16: dict[str, tuple[str, tuple[float, ...]]] = {
    "full_ft": ("GPT-3 (Fine-Tune)", (60.2, 85.8, 88.9, 89.5)),
    "prefix_embed": ("GPT-3 (PrefixEmbed)", (37.6, 75.2, 79.5, 88.6)),
    "prefix_layer": ("GPT-3 (PrefixLayer)", (48.3, 82.5, 85.9, 89.6)),
    "lora": ("GPT-3 (LoRA)", (63.8, 85.6, 89.2, 91.7)),
}


def render_table16(experiment: str, records: Records, notes: str | None,
                   figure: Path | None = None) -> tuple[str, list[list[str]]]:  # fmt: skip
    """Paper Table 16's layout: one row per method configuration, one column per
    training-set size and its epochs (median ×100 over seeds), the paper's rows beneath.
    CSV: one row per cell."""
    records = [r for r in records if r["task"] in GLUE_TASKS]
    grouped, differing = group_cells(records, ("data.max_train_samples", "train.epochs"))
    cells: dict[tuple, Records] = defaultdict(list)
    for (row, _), recs in grouped.items():
        for r in recs:  # the column is the size actually trained on, with its epochs
            cells[(row, (r["data"]["train_size"], r["config"]["train"]["epochs"]))].append(r)
    columns = sorted({col for _, col in cells})
    order = list(PAPER_TABLE16)
    rows = sorted({row for row, _ in cells}, key=lambda row: (
        order.index(_json(row, "method.name", "null"))
        if _json(row, "method.name", "null") in order else 99, row))  # fmt: skip
    shown = [k for k in differing if not k.startswith("method.")]
    header = ["Method", *map(short, shown),
              *(f"{n:,} ex., {e} ep." for n, e in columns), "Seeds"]  # fmt: skip
    csv_rows = [["source", "method", *map(short, shown), "train_size", "epochs", "score",
                 "score_min", "score_max", "seeds", "stale"]]  # fmt: skip
    body, stale, methods = [], False, []
    medians: dict[tuple[str, tuple], float] = {}  # (method name, column) -> median ×100
    for row in rows:
        recs_at = {col: cells.get((row, col), []) for col in columns}
        recs = [x for rs in recs_at.values() for x in rs]
        label = method_label(recs[0]["method"])
        stale |= any_stale(recs)
        methods.append(recs[0]["method"].get("name"))
        line = [label + (STALE_MARK if any_stale(recs) else ""), *setting_text(row, shown)]
        for (n, e), rs in recs_at.items():
            text, stats = median_cell(rs, _glue_main) if rs else ("", None)
            line.append(text)
            if stats:
                medians[(methods[-1], (n, e))] = float(stats[0])
                csv_rows.append(["ours", label, *setting_text(row, shown), str(n), str(e),
                                 *stats])  # fmt: skip
        body.append(line + [seeds_cell(len(rs) for rs in recs_at.values() if rs)])
    md = [f"# {experiment}: low-data regime (paper Table 16)", "", *md_table(header, body)]
    paper_body = []
    for name, (label, values) in PAPER_TABLE16.items():
        if name in methods or not methods:
            paper_body.append([label, *(f"{v:.1f}" for v in values)])
            csv_rows += [["paper", label, *[""] * len(shown), str(n), "", f"{v:.1f}", *[""] * 4]
                         for n, v in zip(PAPER_TABLE16_SIZES, values, strict=True)]  # fmt: skip
    paper_head = ["Paper row", "MNLI(m)-100", "MNLI(m)-1k", "MNLI(m)-10k", "MNLI(m)-392K"]
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

#: Paper Table 18 (App. H.2; GPT-2 M on E2E after 26,000 steps, one run): r ->
#: (val loss, BLEU, NIST, METEOR, ROUGE_L, CIDEr) as printed (METEOR, ROUGE_L raw).
PAPER_TABLE18: dict[int, tuple[float, float, float, float, float, float]] = {
    1: (1.23, 68.72, 8.7215, 0.4565, 0.7052, 2.4329),
    2: (1.21, 69.17, 8.7413, 0.4590, 0.7052, 2.4639),
    4: (1.18, 70.38, 8.8439, 0.4689, 0.7186, 2.5349),
    8: (1.17, 69.57, 8.7457, 0.4636, 0.7196, 2.5196),
    16: (1.16, 69.61, 8.7483, 0.4629, 0.7177, 2.4985),
    32: (1.16, 69.33, 8.7736, 0.4642, 0.7105, 2.5255),
    64: (1.16, 69.24, 8.7174, 0.4651, 0.7180, 2.5070),
    128: (1.16, 68.73, 8.6718, 0.4628, 0.7127, 2.5030),
    256: (1.16, 68.92, 8.6982, 0.4629, 0.7128, 2.5012),
    512: (1.16, 68.78, 8.6857, 0.4637, 0.7128, 2.5025),
    1024: (1.17, 69.37, 8.7495, 0.4659, 0.7149, 2.5090),
}
#: Table 18's columns: (head, metric key in metrics.test or "dev_loss", factor, decimals).
T18_COLUMNS = (("val loss", "dev_loss", 1, 2), ("BLEU", "BLEU", 100, 2), ("NIST", "NIST", 1, 4),
               ("METEOR", "METEOR", 1, 4), ("ROUGE_L", "ROUGE_L", 1, 4),
               ("CIDEr", "CIDEr", 1, 4))  # fmt: skip


def render_table18(experiment: str, records: Records, notes: str | None,
                   figure: Path | None = None) -> tuple[str, list[list[str]]]:  # fmt: skip
    """Paper Table 18's layout: one row per r (and any other differing setting), the dev
    loss at the chosen epoch and the five E2E metrics as the paper prints them (BLEU ×100;
    METEOR, ROUGE_L raw), mean ± std over seeds, each beside the paper's value at that r."""
    records = [r for r in records if r["task"] == "e2e"]
    cells, differing = group_cells(records, ())
    rows = sorted(cells, key=lambda key: (_json(key[0], "method.r", "0"), key))
    shown = [k for k in differing if k != "method.r"]
    header = ["r", *map(short, shown), *(h for head, *_ in T18_COLUMNS for h in (head, "paper")),
              "Seeds"]  # fmt: skip
    csv_rows = [["source", "r", *map(short, shown), *(k for _, k, _, _ in T18_COLUMNS),
                 *(f"{k}_std" for _, k, _, _ in T18_COLUMNS), "seeds", "stale"]]  # fmt: skip
    body, stale, ours_r = [], False, set()
    for key in rows:
        recs = cells[key]
        r = recs[0]["method"].get("r")
        ours_r.add(r)
        stale |= any_stale(recs)
        paper = PAPER_TABLE18.get(r)
        line = [f"{r}{STALE_MARK if any_stale(recs) else ''}", *setting_text(key[0], shown)]
        means, stds = [], []
        for i, (_, metric, factor, digits) in enumerate(T18_COLUMNS):
            pooled = Pooled([_e2e_value(x, metric, factor) for x in recs], median=False)
            means.append(f"{pooled.center:.6g}")
            stds.append("" if pooled.std is None else f"{pooled.std:.6g}")
            line += [pooled.cell(decimals(digits)), f"*{paper[i]:.{digits}f}*" if paper else ""]
        body.append(line + [str(len(recs))])
        csv_rows.append(["ours", str(r), *setting_text(key[0], shown), *means, *stds,
                         str(len(recs)), str(any_stale(recs)).lower()])  # fmt: skip
    for r, values in PAPER_TABLE18.items():
        csv_rows.append(["paper", str(r), *[""] * len(shown), *map(str, values),
                         *[""] * len(T18_COLUMNS), "1", ""])  # fmt: skip
    md = [f"# {experiment}: LoRA rank r on E2E NLG (paper Table 18)", "", *md_table(header, body)]
    rest = ", ".join(str(r) for r in PAPER_TABLE18 if r not in ours_r)
    md += ["", "Ours: the dev loss of the epoch with the lowest dev loss (the one decoded) and "
           "the official e2e-metrics scores of the test MRs decoded from it; BLEU ×100, NIST, "
           "METEOR, ROUGE_L and CIDEr raw, as the paper prints Table 18; mean over seeds "
           "(± standard deviation). " + _POOLING + " Italic \"paper\" columns: Table 18 (GPT-2 "
           "M, E2E, after 26,000 steps, one run) at the same r. Our dev loss is per SmolLM2 "
           "token with the run's own loss settings (train.label_smoothing): compare its trend "
           "over r with the paper's, not its value"
           + (f"; the paper also has r = {rest}." if rest else ".")]  # fmt: skip
    if records:
        data = records[0]["data"]
        md += ["", f"Dev pairs: {data['eval_sizes']['dev']:,}; test: "
               f"{data['eval_sizes']['test_mrs']:,} MRs ({data['test_references']:,} "
               "references)."]  # fmt: skip
    return _close(md, records, stale, notes), csv_rows


# == which spec an experiment gets ======================================================


def _rank_plot(records: Records, out: Path, stem: str) -> Path | None:
    return plot_rank_sweep(records, out / f"{stem}_rank.png")


LAYOUTS = {
    layout.prefix: layout
    for layout in (
        Layout("table5", render_table5),
        Layout("table6", render_table6, _rank_plot),
        Layout("table16", render_table16),
        Layout("table18", render_table18),
    )
}
#: the table of each record kind (experiments.core.load.kind) outside the layouts
BY_KIND = {"e2e": E2E, "webnlg": WEBNLG, "glue": GLUE}


def layout_for(experiment: str) -> Layout | None:
    """The paper layout of an experiment named ``table5_*`` ... ``table18_*``, else None."""
    return LAYOUTS.get(experiment.split("_", 1)[0]) if "_" in experiment else None
