"""The one path from records to a table: pooling over seeds, the paper's rows beside ours,
each row against a reference row with its interval and verdict, Markdown and CSV.

A table is a spec (:mod:`experiments.report.specs`). :class:`ScoreTable` is the generic
one: rows are configurations (:func:`experiments.report.common.group_rows`), columns
are scores (:class:`Column`), and with a reference row every other row's difference
from it comes with a paired-bootstrap interval (:mod:`experiments.report.stats`) and a
verdict on the paper's claim (:class:`Comparison`). :class:`Layout` is a table in the
paper's own layout, built from :func:`group_cells`. Markdown comes from tabulate in a
padding-free pipe format (a rebuilt table diffs cell by cell), CSV from the csv module.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import DataRow, TableFormat, tabulate

from experiments.core.labels import fmt_params, method_names
from experiments.core.settings import flatten, settings_of
from experiments.report.common import (
    any_stale,
    fmt_value,
    footer,
    group_rows,
    row_label,
    seeds_cell,
    setting_cell,
    setting_columns,
)
from experiments.report.stats import (
    SCHEME,
    Claim,
    Interval,
    paired_bootstrap,
    paired_bootstrap_average,
    verdict,
)

Records = list[dict[str, Any]]
#: what the bootstrap draws: fixed, so that rebuilding a table gives the same bytes
N_RESAMPLES = 2000

# -- output ----------------------------------------------------------------------------

_ROW = DataRow("| ", " | ", " |")
#: GitHub pipe table without padding: ``| a | b |`` under ``|---|---|``
PIPES = TableFormat(lineabove=None, linebelowheader=lambda widths, _: "|" + "---|" * len(widths),
                    linebetweenrows=None, linebelow=None, headerrow=_ROW, datarow=_ROW,
                    padding=0, with_header_hide=None)  # fmt: skip


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Markdown table lines (cells as given: no number parsing, no alignment padding)."""
    text = tabulate([list(r) for r in rows], list(header), tablefmt=PIPES,
                    disable_numparse=True, stralign=None, numalign=None)  # fmt: skip
    return text.split("\n")


def italic(cells: Iterable[str]) -> list[str]:
    """A paper row's cells in italics (empty cells stay empty)."""
    return [f"*{c}*" if c else "" for c in cells]


def write_md_csv(out: Path, stem: str, md: str, rows: list[list[Any]] | list[dict],
                 columns: Iterable[str] | None = None) -> list[Path]:  # fmt: skip
    """Write ``<out>/<stem>.md`` and its CSV twin (lists, or dicts in ``columns`` order)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.md").write_text(md)
    with open(out / f"{stem}.csv", "w", newline="") as f:
        if columns is None:
            csv.writer(f).writerows(rows)
        else:
            writer = csv.DictWriter(f, list(columns))
            writer.writeheader()
            writer.writerows(rows)
    return [out / f"{stem}.md", out / f"{stem}.csv"]


# -- the paper's rows ------------------------------------------------------------------


@dataclass(frozen=True)
class PaperRow:
    """One row of a paper table.

    Attributes:
        model: harness model name (``roberta-base`` ...).
        method: harness method name (``lora``, ``full_ft`` ...).
        label: the paper's row label.
        params: the paper's "# Trainable Parameters" as printed.
        scores: column key -> value as printed (×100 for GLUE; BLEU/MET/ROUGE-L ×100 for E2E).
        prior: ``*`` row (numbers from prior work).
        houlsby_setup: ``†`` row.
    """

    model: str
    method: str
    label: str
    params: str
    scores: dict[str, float] = field(default_factory=dict)
    prior: bool = False
    houlsby_setup: bool = False

    @property
    def display(self) -> str:
        return self.label + ("*" if self.prior else "") + ("†" if self.houlsby_setup else "")


def paper_rows(table: Sequence[PaperRow], model: str, method: str) -> list[PaperRow]:
    """Rows of ``table`` for a harness (model, method) pair; empty when none match."""
    return [row for row in table if row.model == model and row.method == method]


def row_values(keys: Sequence[str], text: str) -> dict[str, float]:
    """``"87.6 94.8"`` -> ``{keys[0]: 87.6, keys[1]: 94.8}``: a paper row as printed."""
    return dict(zip(keys, (float(v) for v in text.split()), strict=True))


# -- pooling over seeds ----------------------------------------------------------------


def decimals(n: int) -> Callable[[float], str]:
    """A number format with ``n`` decimals."""
    return lambda v: f"{v:.{n}f}"


@dataclass(frozen=True)
class Pooled:
    """One cell's values over seeds: the median with its min–max (paper §D.1, GLUE) or
    the mean with the sample standard deviation (§D.3, NLG)."""

    values: list[float]
    median: bool

    @property
    def center(self) -> float:
        return statistics.median(self.values) if self.median else statistics.mean(self.values)

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    def cell(self, fmt: Callable[[float], str]) -> str:
        """``80.1 (79.0–81.2)`` or ``54.1±2.9``; the centre alone for one seed."""
        text = fmt(self.center)
        if len(self.values) < 2:
            return text
        lo, hi = min(self.values), max(self.values)
        return f"{text} ({fmt(lo)}–{fmt(hi)})" if self.median else f"{text}±{fmt(self.std)}"


@dataclass(frozen=True)
class Column:
    """One score column.

    Attributes:
        key: its CSV name and the key of the paper's value (``sst2``, ``BLEU``).
        head: its Markdown name.
        value: a record's value in the table's units, None where it has none (another task).
        median: pool seeds by the median (min–max beside it), else by the mean (± std).
        fmt: the printed number (also the paper's); ``csv_fmt``: the CSV's.
    """

    key: str
    head: str
    value: Callable[[dict[str, Any]], float | None]
    median: bool = True
    fmt: Callable[[float], str] = decimals(1)
    csv_fmt: Callable[[float], str] = decimals(1)

    def pool(self, records: Records) -> Pooled | None:
        values = [v for v in map(self.value, records) if v is not None]
        return Pooled(values, self.median) if values else None


# -- a row against the reference row ---------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """One Δ column: row − reference on ``metric`` from the records' per-example outputs.

    Attributes:
        key, head: CSV and Markdown names.
        keep: which of a row's records it pairs (one task's).
        arrays: a record's ``(pred, label, index)`` for :func:`paired_bootstrap`, or None
            when it lacks per-example outputs.
        metric: a :data:`experiments.report.stats.METRICS` name; ``scale``: its units.
        claim: the paper's claim the verdict tests; ``digits``: the cell's decimals.
        same_model: pair only rows of the reference's model (per-token NLL depends on the
            tokenizer).
    """

    key: str
    head: str
    keep: Callable[[dict[str, Any]], bool]
    arrays: Callable[[dict[str, Any]], tuple | None]
    metric: str
    claim: Claim
    scale: float = 100.0
    digits: int = 1
    same_model: bool = False

    def inputs(self, row: dict[str, Any], ref: dict[str, Any]) -> tuple | None:
        """``(a, b, metric)`` for :func:`paired_bootstrap` on two table rows, or None (a
        record lacks outputs, or the rows may not be paired)."""
        if self.same_model and row["model"] != ref["model"]:
            return None
        a, b = self._by_seed(row["records"]), self._by_seed(ref["records"])
        return None if a is None or b is None else (a, b, self.metric)

    def _by_seed(self, records: Records) -> dict[int, tuple] | None:
        out = {}
        for r in (r for r in records if self.keep(r)):
            arrays = self.arrays(r)
            if arrays is None:
                return None
            out[r["seed"]] = tuple(np.asarray(x) for x in arrays)
        return out or None


def difference(row: dict[str, Any], ref: dict[str, Any], comparisons: Sequence[Comparison],
               average: bool) -> dict[str, Interval | None]:  # fmt: skip
    """Per comparison (and ``"avg"``: every one present, same seed draw) the interval on
    row − ref (table rows), in each comparison's units."""
    inputs = [(c, c.inputs(row, ref)) for c in comparisons]
    out: dict[str, Interval | None] = {
        c.key: None if x is None else paired_bootstrap(*x, scale=c.scale, n_resamples=N_RESAMPLES)
        for c, x in inputs
    }
    ready = [x for _, x in inputs if x is not None]
    if average:
        out["avg"] = (paired_bootstrap_average(ready, n_resamples=N_RESAMPLES)
                      if comparisons and len(ready) == len(comparisons) else None)  # fmt: skip
    return out


def cells(interval: Interval | None, claim: Claim, digits: int = 1) -> tuple[str, str]:
    """``("+1.2 [-0.3, +2.6]", "inconclusive")``, or two empty cells."""
    if interval is None:
        return "", ""
    return interval.cell(digits), verdict(interval, claim)


def csv_values(interval: Interval | None, claim: Claim) -> list[str]:
    """``[diff, low, high, verdict]`` to 4 decimals, or four empty strings."""
    if interval is None:
        return ["", "", "", ""]
    nums = [f"{v:.4f}" for v in (interval.diff, interval.low, interval.high)]
    return [*nums, verdict(interval, claim)]


def claim_terms(claim: Claim, unit: str = "point", units: str = "points") -> tuple[str, str]:
    """A claim as its bound (``Δ ≥ −1 point``) and its verdict rule, for the notes."""
    tol = f"{claim.tolerance:g}"
    inside, outside = {
        "matches": (f"within ±{tol}", f"wholly outside ±{tol}"),
        "at_least": (f"wholly above −{tol}", f"wholly below −{tol}"),
        "at_most": (f"wholly below +{tol}", f"wholly above +{tol}"),
    }[claim.kind]
    sign = {"matches": "|Δ| ≤ ", "at_least": "Δ ≥ −", "at_most": "Δ ≤ +"}[claim.kind]
    bound = f"{sign}{tol} {unit if claim.tolerance == 1 else units}"
    return bound, (f"agrees when the interval lies {inside}, contradicts when it lies "
                   f"{outside}, inconclusive otherwise")  # fmt: skip


#: how every interval is drawn, for the notes
BOOTSTRAP = f"{SCHEME} {N_RESAMPLES:,} replicates, numpy seed 0."


def claim_note(claim: Claim, reference: str) -> str:
    """The notes paragraph that says how a claim's Δ columns (in points) are computed and
    judged."""
    bound, rule = claim_terms(claim)
    return (f"Δ = row − {reference}, in points, the mean over paired seeds; {BOOTSTRAP} "
            f"Claim: {claim.text} ({bound}). Verdict: {rule}.")  # fmt: skip


def has_outputs(record: dict[str, Any], proto: str) -> bool:
    """Whether the record stores per-example outputs under ``predictions.<proto>``."""
    return proto in (record.get("predictions") or {})


def missing_note(records: Records, proto: str = "best", what: str = "per-example outputs",
                 stored: str = "their dev predictions") -> list[str]:  # fmt: skip
    """A notes line when some records lack per-example outputs (their Δ cells are empty)."""
    n = sum(not has_outputs(r, proto) for r in records)
    if not n:
        return []
    return ["", f"Intervals missing: {n} of {len(records)} records predate {what}, so their "
            "differences have no interval or verdict; rerun them to get these (records made "
            f"by the current code store {stored})."]  # fmt: skip


#: the line an NLG table (E2E, WebNLG) ends its notes with while none of its records has
#: per-MR outputs
NLG_NOTE = ("No intervals: E2E and WebNLG differences are paired per test MR against an FT "
            "row of the same model, and this table has none.")  # fmt: skip


# -- rows as configurations, columns as scores ----------------------------------------


@dataclass
class Context:
    """What a spec's notes see: the table's records, rows and columns, and its options."""

    experiment: str
    records: Records
    rows: list[dict[str, Any]]
    columns: list[Column]
    proto: str
    notes: str | None
    figure: Path | None
    ref: dict[str, Any] | None = None


@dataclass(frozen=True)
class ScoreTable:
    """A table whose rows are configurations and whose columns are scores.

    One row per configuration (seeds pooled, :func:`group_rows`); the paper's rows beside
    ours where model and method match one, else its ``scale`` rows below the table; with
    one ``reference`` row, a "Difference from" section with every other row's Δ.

    Attributes:
        title: the heading, with ``{experiment}``.
        columns: ``columns(records, proto)`` -> the score columns; one that no record has
            a value for is left out.
        paper: the paper's rows; ``paper_seeds``: the Seeds cell of a paper row.
        paper_model: the Model cell of a paper row beside ours (None: its model).
        scale: (model, name) of the paper's rows shown for scale when none matches ours.
        average: an "Avg." column: the mean of the row's column centres, every one present.
        protocol: ``protocol(records)`` -> the key under ``predictions`` the Δ columns read.
        reference: the method of the reference row.
        comparisons: ``comparisons(columns, proto)`` -> the Δ columns against the reference.
        lr_per_column: the Δ section's learning rates per column (else one "lr" column).
        csv_layout: the CSV's blocks after the Markdown columns: ``spread`` (min and max,
            or std), ``counts`` (parameters), ``stale``, ``deltas``.
        pad_paper_csv: a paper row fills every CSV column (else it ends after Seeds).
        difference_notes: ``difference_notes(ctx)`` -> lines closing the Δ section.
        notes: ``notes(ctx)`` -> the lines after the tables (the footer follows).
        figure: ``figure(records, out, stem)`` -> a plot written beside the table, or None.
    """

    title: str
    columns: Callable[[Records, str], list[Column]]
    paper: Sequence[PaperRow]
    paper_seeds: str
    scale: tuple[str, str]
    notes: Callable[[Context], list[str]]
    paper_model: str | None = None
    average: bool = False
    protocol: Callable[[Records], str] = lambda records: "test"
    reference: str | None = None
    comparisons: Callable[[list[Column], str], list[Comparison]] = lambda columns, proto: []
    lr_per_column: bool = False
    csv_layout: tuple[str, ...] = ("spread", "counts", "stale", "deltas")
    pad_paper_csv: bool = False
    difference_notes: Callable[[Context], list[str]] = lambda ctx: []
    figure: Callable[[Records, Path, str], Path | None] | None = None

    def render(self, experiment: str, records: Records, notes: str | None = None,
               figure: Path | None = None) -> tuple[str, list[list[str]]]:  # fmt: skip
        """Markdown and CSV rows (header first) of one experiment's table."""
        proto = self.protocol(records)
        columns = [c for c in self.columns(records, proto)
                   if any(c.value(r) is not None for r in records)]  # fmt: skip
        rows = group_rows(records)
        for row in rows:
            row["cells"] = {c.key: c.pool(row["records"]) for c in columns}
            centres = [p.center for p in row["cells"].values() if p is not None]
            row["avg"] = statistics.mean(centres) if len(centres) == len(columns) else None
        refs = [row for row in rows if row["method"] == self.reference]
        ref = refs[0] if len(refs) == 1 and len(rows) > 1 else None
        comparisons = self.comparisons(columns, proto) if ref is not None else []
        for row in rows:
            row["delta"] = ({} if ref is None or row is ref
                            else difference(row, ref, comparisons, self.average))  # fmt: skip
        ctx = Context(experiment, records, rows, columns, proto, notes, figure, ref)
        md, csv_rows = self._table(ctx, comparisons)
        if ref is not None and comparisons:
            md += self._difference(ctx, comparisons)
        md += self.notes(ctx)
        md += footer([r for row in rows for r in row["records"]], any(r["stale"] for r in rows))
        return "\n".join(md) + "\n", csv_rows

    def _table(self, ctx: Context, comparisons: list[Comparison]
               ) -> tuple[list[str], list[list[str]]]:  # fmt: skip
        columns, rows = ctx.columns, ctx.rows
        settings = setting_columns(rows)
        heads = [c.head for c in columns] + (["Avg."] if self.average else [])
        header = ["Model", "Method", "# Params (paper count)", "# Trainable (with head)",
                  "# Total", *(name for _, name in settings), *heads, "Seeds"]  # fmt: skip
        deltas = [c.key for c in comparisons] + (["avg"] if self.average and comparisons else [])
        blocks = {
            "spread": [f"{c.key}_{end}" for c in columns
                       for end in (("min", "max") if c.median else ("std",))],
            "counts": ["params_method", "params_trainable", "params_total"],
            "stale": ["stale"],
            "deltas": [f"{k}_delta_{end}" for k in deltas
                       for end in ("mean", "low", "high", "verdict")],
        }  # fmt: skip
        csv_head = ["source", *header, *(h for b in self.csv_layout for h in blocks[b])]
        body, csv_rows = [], [csv_head]
        shown: set[str] = set()

        def paper_line(paper: PaperRow, model: str) -> list[str]:
            return [model, paper.display, paper.params, "", "", *[""] * len(settings),
                    *self._paper_cells(paper, columns), self.paper_seeds]  # fmt: skip

        def paper_csv(line: list[str]) -> list[str]:
            pad = len(csv_head) - 1 - len(line) if self.pad_paper_csv else 0
            return ["paper", *line, *[""] * pad]

        for row in rows:
            p = row["records"][0]["params"]
            counts = [p["method"], p["trainable"], p["total"]]
            pooled = [row["cells"][c.key] for c in columns]
            avg = [] if not self.average else [
                "" if row["avg"] is None else columns[0].fmt(row["avg"])]  # fmt: skip
            lead = [row["model"], row_label(row), *(fmt_params(n) for n in counts),
                    *(setting_cell(row, k) for k, _ in settings)]  # fmt: skip
            seeds = seeds_cell(len(x.values) for x in pooled if x is not None)
            shown_cells = ["" if x is None else x.cell(c.fmt)
                           for c, x in zip(columns, pooled, strict=True)]  # fmt: skip
            body.append([*lead, *shown_cells, *avg, seeds])
            values = {
                "spread": [v for c, x in zip(columns, pooled, strict=True)
                           for v in _spread(c, x)],
                "counts": list(map(str, counts)),
                "stale": [str(row["stale"]).lower()],
                "deltas": [v for k in deltas for v in csv_values(
                    row["delta"].get(k), self._claim(comparisons, k).claim)],
            }  # fmt: skip
            centres = ["" if x is None else c.csv_fmt(x.center)
                       for c, x in zip(columns, pooled, strict=True)]  # fmt: skip
            csv_rows.append(["ours", *lead, *centres, *avg, seeds,
                             *(v for b in self.csv_layout for v in values[b])])  # fmt: skip
            method = method_names(row["records"][0]["method"])[0]
            for paper in paper_rows(self.paper, row["model"], method):
                if paper.display + paper.params in shown:
                    continue
                shown.add(paper.display + paper.params)
                line = paper_line(paper, self.paper_model or paper.model)
                body.append(italic(line))
                csv_rows.append(paper_csv(line))
        md = [self.title.format(experiment=ctx.experiment), "", *md_table(header, body)]
        model, name = self.scale
        scale = [p for p in self.paper
                 if p.model == model and p.method in {r["method"] for r in rows}]  # fmt: skip
        if not shown and scale:
            md += ["", f"For scale only (different model and budget), the paper's {name} rows:",
                   "", *md_table(["Paper row", "# Params", *heads],
                                 [[p.display, p.params, *self._paper_cells(p, columns)]
                                  for p in scale])]  # fmt: skip
            csv_rows += [paper_csv(paper_line(p, p.model)) for p in scale]
        return md, csv_rows

    def _paper_cells(self, paper: PaperRow, columns: list[Column]) -> list[str]:
        values = [paper.scores.get(c.key) for c in columns]
        out = ["" if v is None else c.fmt(v) for c, v in zip(columns, values, strict=True)]
        if self.average:
            full = None not in values and columns
            out.append(columns[0].fmt(statistics.mean(values)) if full else "")
        return out

    @staticmethod
    def _claim(comparisons: list[Comparison], key: str) -> Comparison:
        """The comparison of a Δ key (``avg``: the first one's claim and digits)."""
        return next((c for c in comparisons if c.key == key), comparisons[0])

    def _difference(self, ctx: Context, comparisons: list[Comparison]) -> list[str]:
        """The "Difference from <reference>" section: per row its learning rates and per
        comparison (and on average) Δ = row − reference with its 95% interval and verdict."""
        ref, columns = ctx.ref, ctx.columns
        assert ref is not None
        lr_cols = [(f"lr {c.head}", c) for c in columns] if self.lr_per_column else [("lr", None)]
        keys = [(c.key, c.head) for c in comparisons] + ([("avg", "Avg.")] if self.average else [])
        header = ["Method", *(h for h, _ in lr_cols)]
        for _, head in keys:
            header += [f"{head} Δ [95% CI]", f"{head} verdict"]
        lines = []
        for row in [ref, *(r for r in ctx.rows if r is not ref)]:
            lrs = [",".join(f"{v:g}" for v in sorted({r["config"]["train"]["lr"]
                   for r in row["records"] if c is None or c.value(r) is not None}))
                   for _, c in lr_cols]  # fmt: skip
            if row is ref:
                lines.append([row_label(row), *lrs, *(["reference", ""] * len(keys))])
                continue
            found = [(row["delta"][k], self._claim(comparisons, k)) for k, _ in keys]
            lines.append([row_label(row), *lrs,
                          *(v for x, c in found for v in cells(x, c.claim, c.digits))])  # fmt: skip
        md = ["", f"## Difference from {ref['label']}", "", *md_table(header, lines)]
        return md + self.difference_notes(ctx)


def _spread(column: Column, pooled: Pooled | None) -> list[str]:
    """A cell's CSV spread: min and max (median columns) or the std (mean columns)."""
    if column.median:
        if pooled is None or len(pooled.values) < 2:
            return ["", ""]
        return [column.csv_fmt(min(pooled.values)), column.csv_fmt(max(pooled.values))]
    std = None if pooled is None else pooled.std
    return ["" if std is None else column.csv_fmt(std)]


# -- tables in the paper's layout ------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """A table in the paper's own layout (paper Tables 5, 6, 16, 18), for experiments
    named ``<prefix>_*``: ``render(experiment, records, notes, figure)`` -> Markdown and
    CSV rows; ``figure(records, out, stem)`` -> a plot it links, or None."""

    prefix: str
    render: Callable[[str, Records, str | None, Path | None], tuple[str, list[list[str]]]]
    figure: Callable[[Records, Path, str], Path | None] | None = None


def _settings(record: dict[str, Any]) -> dict[str, str]:
    """:func:`settings_of` plus the task's own config (E2E decoding), minus its name."""
    out = settings_of(record)
    task = {k: v for k, v in record.get("config", {}).get("task", {}).items() if k != "name"}
    if task:
        out.update(flatten(task, "task."))
    out["model"] = json.dumps(record["model"])
    out["task"] = json.dumps(record["task"])
    return out


def group_cells(records: Records, axes: tuple[str, ...]) -> tuple[dict[tuple, Records], list[str]]:
    """Records by (row settings without ``axes``, axis values), seeds pooled.

    Returns:
        ``(cells, differing)``: cells maps (row key, axis key) -> records, where both keys
        are tuples of (dotted setting, JSON value); ``differing`` lists the settings (not
        axes, not the method's name) whose values differ between row keys.
    """
    cells: dict[tuple, Records] = defaultdict(list)
    for r in records:
        flat = _settings(r)
        row = tuple(sorted((k, v) for k, v in flat.items() if k not in axes))
        cells[(row, tuple((k, flat.get(k)) for k in axes))].append(r)
    rows = {row for row, _ in cells}
    keys = sorted({k for row in rows for k, _ in row})
    differing = [k for k in keys if k != "method.name"
                 and len({dict(row).get(k) for row in rows}) > 1]  # fmt: skip
    return cells, differing


def setting_text(row: tuple, keys: list[str]) -> list[str]:
    """The values of ``keys`` in a row key of :func:`group_cells`, as printed."""
    values = dict(row)
    return [fmt_value(json.loads(values[k])) if k in values else "" for k in keys]


def short(key: str) -> str:
    """A setting's column name: its last dotted part (``train.lr`` -> ``lr``)."""
    return key.rsplit(".", 1)[-1]


def median_cell(records: Records, value: Callable[[dict], float]) -> tuple[str, list[str]]:
    """``80.1 (79.0–81.2)`` and the CSV tail of that cell: median, min, max, seeds, stale."""
    values = [value(r) for r in records]
    pooled = Pooled(values, median=True)
    stats = [f"{pooled.center:.2f}", f"{min(values):.2f}", f"{max(values):.2f}",
             str(len(values)), str(any_stale(records)).lower()]  # fmt: skip
    return pooled.cell(decimals(1)), stats


def mean_cell(records: Records, value: Callable[[dict], float],
              digits: int) -> tuple[str, list[str]]:  # fmt: skip
    """``54.1±2.9`` and the CSV tail of that cell: mean, min, max, seeds, stale."""
    values = [value(r) for r in records]
    pooled = Pooled(values, median=False)
    stats = [f"{pooled.center:.6g}", f"{min(values):.6g}", f"{max(values):.6g}",
             str(len(values)), str(any_stale(records)).lower()]  # fmt: skip
    return pooled.cell(decimals(digits)), stats
