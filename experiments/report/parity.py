"""The factor study's table and figure (conf/experiment/parity.yaml, ``make parity``).

One block of rows per factor (target set at a matched count, lr ratio, batch size, rank),
each LoRA cell against FT at the same batch size: the difference per task and on average,
with the paired interval and the verdict of :data:`GLUE_CLAIM`. The base cells (FT and
LoRA r=8 on W_q,W_v at batch 16) are the demo's records, read from ``runs/demo``. The
notes answer the study's questions from the intervals; the figure plots the average
difference against each factor.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from experiments.core.labels import fmt_params, fmt_targets
from experiments.core.load import load_records
from experiments.glue.data import TASKS as GLUE_TASKS
from experiments.report.common import STALE_MARK, any_stale, footer
from experiments.report.plots import save_figure
from experiments.report.render import (
    N_RESAMPLES,
    Layout,
    Records,
    cells,
    claim_note,
    csv_values,
    md_table,
    missing_note,
)
from experiments.report.specs import GLUE_CLAIM, dev_outputs, glue_score
from experiments.report.stats import Interval, paired_bootstrap_average

EXPERIMENT = "parity"
TASKS = ("sst2", "stsb")
PROTO = "heldout"  # every run reports the dev score at its best held-out epoch
#: the demo's rows that are the study's base cells: FT and LoRA at batch 16
BORROWED = ("demo", ("full_ft", "lora"))
TARGET_ROWS = ("qkvo_r4", "mlp_r3", "all_r2")
LR_ROWS = ("lr_x1", "lr_x3", "lr_x10", "lr_x30")
RANK_ROWS = ("r1", "r4", "r16", "r64")


def with_base(results_dir: Path, records: Records) -> Records:
    """The study's records plus the demo's FT and LoRA records (its base cells)."""
    experiment, rows = BORROWED
    base = [r for r in load_records(results_dir, experiment) if r["config"].get("row") in rows]
    return base + records  # the study's own last: its notes are the table's


@dataclass
class Cell:
    """One configuration's records (all seeds and tasks) and what the table shows of it."""

    factor: str
    setting: str
    records: Records
    x: Any = None  # the factor's value in the figure

    def of(self, task: str) -> Records:
        return [r for r in self.records if r["task"] == task]

    @property
    def method(self) -> dict[str, Any]:
        return self.records[0]["method"]

    def lr(self, task: str) -> str:
        recs = self.of(task)
        return f"{recs[0]['config']['train']['lr']:g}" if recs else ""


def _row(records: Records, row: str) -> Records:
    return [r for r in records if r["config"].get("row") == row]


def _targets(method: dict[str, Any]) -> str:
    return fmt_targets(method.get("targets"))


def _ratio(cell: Cell, ft: Cell, task: str) -> float | None:
    a, b = cell.of(task), ft.of(task)
    if not a or not b:
        return None
    return a[0]["config"]["train"]["lr"] / b[0]["config"]["train"]["lr"]


def build_cells(records: Records) -> tuple[list[tuple[Cell, Cell | None]], dict[str, Cell]]:
    """Every (cell, its FT reference) in table order, and the FT cell per batch size."""
    ft = {"16": Cell("base", "FT", _row(records, "full_ft"), 16),
          "8": Cell("batch", "FT, batch 8", _row(records, "ft_b8"), 8),
          "128": Cell("batch", "FT, batch 128", _row(records, "ft_b128"), 128)}  # fmt: skip
    base = _row(records, "lora")
    out: list[tuple[Cell, Cell | None]] = []
    if ft["16"].records:
        out.append((ft["16"], None))
    if base:
        out.append((Cell("base", "LoRA r=8, W_q,W_v", base, "W_q,W_v"), ft["16"]))
    for row in TARGET_ROWS:
        if recs := _row(records, row):
            m = recs[0]["method"]
            out.append((Cell("targets", f"{_targets(m)}, r={m['r']}", recs, _targets(m)), ft["16"]))
    for row in LR_ROWS:
        if recs := _row(records, row):
            ratio = int(row.removeprefix("lr_x"))
            recs += _same_as_base(recs, row, base)
            out.append((Cell("lr ratio", f"{ratio}× FT's lr", recs, ratio), ft["16"]))
    for b in ("8", "128"):
        if ft[b].records:
            out.append((ft[b], None))
        if recs := _row(records, f"lora_b{b}"):
            out.append((Cell("batch", f"LoRA, batch {b}", recs, int(b)), ft[b]))
    for row in RANK_ROWS:
        if recs := _row(records, row):
            m = recs[0]["method"]
            out.append((Cell("rank", f"r={m['r']}, {_targets(m)}", recs, m["r"]), ft["16"]))
    return out, ft


def _same_as_base(recs: Records, row: str, base: Records) -> Records:
    """The base LoRA records of the tasks where ``row`` has none because its lr there is the
    base's (STS-B at 30× FT's lr): the same configuration, trained once."""
    planned = recs[0]["config"].get("hparams", {}).get(row, {}).get("lr", {})
    have = {r["task"] for r in recs}
    return [r for r in base if r["task"] not in have
            and planned.get(r["task"]) == r["config"]["train"]["lr"]]  # fmt: skip


def _arrays(records: Records) -> dict[int, tuple] | None:
    arrays = {r["seed"]: dev_outputs(r, PROTO) for r in records}
    return None if not arrays or None in arrays.values() else arrays


#: intervals by the records' identities and the tasks, so that the table, its notes and the
#: figure of one build share them; each entry keeps its records alive, so no id is reused
_INTERVALS: dict[tuple, tuple[Records, Records, Interval | None]] = {}


def compare(a: Cell, b: Cell, tasks: tuple[str, ...]) -> Interval | None:
    """Interval on A − B in points: one task, or the average over ``tasks`` (one seed draw)."""
    key = (tuple(map(id, a.records)), tuple(map(id, b.records)), tasks)
    if key not in _INTERVALS:
        _INTERVALS[key] = (a.records, b.records, _interval(a, b, tasks))
    return _INTERVALS[key][2]


def _interval(a: Cell, b: Cell, tasks: tuple[str, ...]) -> Interval | None:
    pairs = [(_arrays(a.of(t)), _arrays(b.of(t)), GLUE_TASKS[t].main_metric) for t in tasks]
    if any(x is None or y is None for x, y, _ in pairs):
        return None
    return paired_bootstrap_average(pairs, n_resamples=N_RESAMPLES)


def _score(cell: Cell, task: str) -> str:
    values = [100 * glue_score(r, PROTO) for r in cell.of(task)]
    if not values:
        return ""
    mid = f"{statistics.median(values):.1f}"
    return mid if len(values) < 2 else f"{mid} ({min(values):.1f}–{max(values):.1f})"


def _steps(cell: Cell) -> str:
    r = cell.records[0]
    batch = r["config"]["train"]["batch_size"]
    return f"{batch} / {-(-r['data']['train_size'] // batch) * r['config']['train']['epochs']:,}"


def _fmt(x: Interval | None) -> str:
    return "no interval" if x is None else f"{x.diff:+.1f} [{x.low:+.1f}, {x.high:+.1f}]"


def _findings(pairs: list[tuple[Cell, Cell | None]], ft: dict[str, Cell]) -> list[str]:
    """The study's questions, answered from the intervals (empty parts are skipped)."""
    deltas = {id(c): compare(c, ref, TASKS) for c, ref in pairs if ref is not None}
    by = {f: [(c, deltas[id(c)]) for c, ref in pairs if c.factor == f and ref is not None]
          for f in ("base", "targets", "lr ratio", "batch", "rank")}  # fmt: skip
    base = next((c for c, _ in by["base"]), None)
    lines = []
    ratios = list(by["lr ratio"])
    if base is not None:
        searched = [_ratio(base, ft["16"], t) for t in TASKS]
        if all(searched):
            ratios.append((Cell("lr ratio", "searched", base.records,
                                "/".join(f"{s:.0f}" for s in searched)), by["base"][0][1]))  # fmt: skip
    if ratios:
        best = max(ratios, key=lambda cx: _heldout(cx[0]))
        listing = "; ".join(f"{c.x}×: held-out {100 * _heldout(c):.1f}, dev LoRA − FT {_fmt(x)}"
                            for c, x in ratios)  # fmt: skip
        lines.append(f"**Learning-rate ratio.** By held-out score (the selection data, mean "
                     f"over tasks and seeds ×100) LoRA is best at {best[0].x}× FT's lr"
                     f"{' (SST-2/STS-B: the searched lr)' if best[0].setting == 'searched' else ''}"
                     f": {listing}. Schulman et al. (2025) put LoRA's best lr at about 10× "
                     "FT's, 15× for runs of ≤ 100 steps.")  # fmt: skip
    if base is not None and by["targets"]:
        parts = []
        for c, _ in by["targets"]:
            x = compare(c, base, TASKS)
            parts.append(f"{c.setting} ({fmt_params(c.records[0]['params']['method'])}) − "
                         f"W_q,W_v r=8: {_fmt(x)}, {_beyond(x)}")  # fmt: skip
        lines.append("**Target set at a ≈matched count** (avg over tasks, against the base LoRA "
                     "cell): " + "; ".join(parts) + ". Each at W_q,W_v's searched lr; "
                     "`parity_target_lr.md` gives each target set its own lr search. Schulman "
                     "et al. (2025) find attention-only LoRA behind MLP and all-linear LoRA at "
                     "a matched count.")  # fmt: skip
    batch = [(c.x, x, c) for c, x in by["batch"]] + [(16, x, c) for c, x in by["base"]]
    if len(batch) > 1:
        listing = "; ".join(f"batch {b} ({_steps(c).split(' / ')[1]} steps): {_fmt(x)}"
                            for b, x, c in sorted(batch, key=lambda t: t[0]))  # fmt: skip
        lines.append(f"**Batch size** (LoRA − FT at the same batch, avg; each method at its "
                     f"batch-16 lr, not re-tuned per batch, 2 epochs): {listing}. Schulman et "
                     "al. (2025), re-tuning the lr in every condition, find LoRA pays more than "
                     "FT at large batch.")  # fmt: skip
    if by["rank"]:
        listing = "; ".join(f"r={c.x} ({fmt_params(c.records[0]['params']['method'])}): "
                            f"{_fmt(x)}" for c, x in by["rank"])  # fmt: skip
        lines.append(f"**Rank** on {_targets(by['rank'][0][0].method)} (LoRA − FT, avg): "
                     f"{listing}. Schulman et al. (2025) find low rank falls behind once the "
                     "training data exceed its capacity.")  # fmt: skip
    return lines


def _heldout(cell: Cell) -> float:
    """The cell's mean held-out score over tasks and seeds (what selection may use)."""
    return statistics.fmean(r["metrics"]["heldout"]["score"] for r in cell.records)


def _beyond(x: Interval | None) -> str:
    if x is None or not (math.isfinite(x.low) and math.isfinite(x.high)):
        return "unresolved"
    return "interval wholly above 0" if x.low > 0 else (
        "interval wholly below 0" if x.high < 0 else "interval spans 0")  # fmt: skip


def render(experiment: str, records: Records, notes: str | None,
           figure: Path | None = None) -> tuple[str, list[list[str]]]:  # fmt: skip
    """The table: one row per cell, its scores, and LoRA − FT per task and on average."""
    pairs, ft = build_cells(records)
    heads = [GLUE_TASKS[t].display for t in TASKS]
    header = ["Factor", "Setting", "# Params", *(f"lr {h}" for h in heads), "Batch / steps",
              *heads, *(f"{h} {s}" for h in [*heads, "Avg."] for s in ("Δ [95% CI]", "verdict")),
              "Seeds"]  # fmt: skip
    csv_rows = [["factor", "setting", "params", *(f"lr_{t}" for t in TASKS), "batch_size",
                 *TASKS, *(f"{k}_{s}" for k in [*TASKS, "avg"]
                           for s in ("diff", "low", "high", "verdict")), "seeds", "stale"]]  # fmt: skip
    lines = []
    for cell, ref in pairs:
        per = [compare(cell, ref, (t,)) if ref else None for t in TASKS]
        avg = compare(cell, ref, TASKS) if ref else None
        stale = any_stale(cell.records)
        counts = [len({r["seed"] for r in cell.of(t)}) for t in TASKS]
        seeds = str(counts[0]) if len(set(counts)) == 1 else "/".join(map(str, counts))
        if ref is None:
            diff_cells = ["reference", ""] * (len(TASKS) + 1)
        elif not ref.records:
            diff_cells = ["no FT reference", ""] * (len(TASKS) + 1)
        else:
            diff_cells = [v for x in [*per, avg] for v in cells(x, GLUE_CLAIM)]
        lines.append([cell.factor, cell.setting + (STALE_MARK if stale else ""),
                      fmt_params(cell.records[0]["params"]["method"]),
                      *(cell.lr(t) for t in TASKS), _steps(cell),
                      *(_score(cell, t) for t in TASKS), *diff_cells, seeds])  # fmt: skip
        csv_rows.append([cell.factor, cell.setting, str(cell.records[0]["params"]["method"]),
                         *(cell.lr(t) for t in TASKS),
                         str(cell.records[0]["config"]["train"]["batch_size"]),
                         *(_score(cell, t).split(" ")[0] for t in TASKS),
                         *(v for x in [*per, avg] for v in csv_values(x, GLUE_CLAIM)),
                         seeds, str(stale)])  # fmt: skip
    md = [f"# {experiment}: when does LoRA match FT? One factor at a time", ""]
    md += md_table(header, lines)
    md += ["", "Dev scores ×100 (accuracy for SST-2, Pearson for STS-B): median over seeds of "
           "the dev score at each run's best held-out epoch, min–max in brackets. Every LoRA "
           "row is compared with FT at the same batch size (the rows marked reference). "
           "\"# Params\" counts the method's parameters without the task head; "
           "\"Batch / steps\": the batch size and the optimizer steps of a run. The base cells "
           "(FT and LoRA r=8 on W_q,W_v, batch 16) are the demo's records (`runs/demo` "
           "beside this study's). \"Seeds\": per task where they differ (SST-2/STS-B)."]  # fmt: skip
    md += ["", claim_note(GLUE_CLAIM, "FT") + " The average pools both tasks with one seed draw."]
    findings = _findings(pairs, ft)
    if findings:
        md += ["", "## Findings", "", *(f"- {line}" for line in findings)]
    if notes:
        md += ["", notes.strip()]
    if figure is not None:
        md += ["", f"![LoRA − FT against each factor]({figure.name})"]
    every = list({id(r): r for c, _ in pairs for r in c.records}.values())  # each run once
    md += missing_note(every, PROTO)
    md += footer(every, any(STALE_MARK in line[1] for line in lines))
    return "\n".join(md) + "\n", csv_rows


def figure(records: Records, out: Path, stem: str) -> Path | None:
    """LoRA − FT per task (95% interval bars) against each factor, one panel per factor;
    the base cell appears in every panel it belongs to. None without two points."""
    pairs, _ = build_cells(records)
    panels = [("targets", "target set (matched count)", None),
              ("lr ratio", "LoRA lr / FT lr", 10), ("batch", "batch size", 2),
              ("rank", "rank r", 2)]  # fmt: skip
    points: dict[tuple[str, str], dict[Any, Interval]] = defaultdict(dict)
    rank = next((c.method for c, _ in pairs if c.factor == "rank"), None)
    for cell, ref in pairs:
        for task in TASKS if ref is not None and ref.records else ():
            x = compare(cell, ref, (task,))
            if x is None or not all(map(math.isfinite, (x.diff, x.low, x.high))):
                continue
            if cell.factor not in ("base", "targets"):
                points[(cell.factor, task)][cell.x] = x
                continue
            points[("targets", task)][cell.x] = x
            if rank is not None and cell.method.get("targets") == rank.get("targets"):
                points[("rank", task)][cell.method["r"]] = x  # the rank block's own set
            if cell.factor == "base":
                points[("batch", task)][16] = x
                points[("lr ratio", task)][_ratio(cell, ref, task)] = x  # one point per lr
    used = [p for p in panels if any(len(points[(p[0], t)]) > 1 for t in TASKS)]
    if not used:
        return None
    fig, axes = plt.subplots(1, len(used), figsize=(3.3 * len(used), 3.5), squeeze=False)
    for ax, (key, label, base) in zip(axes[0], used, strict=True):
        names = sorted({str(x) for t in TASKS for x in points[(key, t)]})
        for i, task in enumerate(TASKS):
            pts = sorted(points[(key, task)].items(), key=lambda p: names.index(str(p[0]))
                         if base is None else p[0])  # fmt: skip
            xs = [names.index(str(x)) + 0.1 * i if base is None else x * (1.08 ** i)
                  for x, _ in pts]  # fmt: skip
            ys = [v.diff for _, v in pts]
            # a percentile interval need not hold its point estimate: no negative bar
            err = [[max(0.0, v.diff - v.low) for _, v in pts],
                   [max(0.0, v.high - v.diff) for _, v in pts]]  # fmt: skip
            ax.errorbar(xs, ys, yerr=err, fmt="o", capsize=3, label=GLUE_TASKS[task].display)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.axhline(-GLUE_CLAIM.tolerance, color="grey", linestyle="--", linewidth=0.8)
        if base is None:
            ax.set_xticks(range(len(names)), names, rotation=30, fontsize=7)
        else:
            ax.set_xscale("log", base=base)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("LoRA − FT (points)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("LoRA − FT at the same batch size, 95% intervals; dashed: −1 point", fontsize=9)
    return save_figure(fig, out / f"{stem}.png")


PARITY = Layout(EXPERIMENT, render, figure)


# -- the ΔW spectrum of the study's runs (experiments.spectrum) ------------------------


def _setting(record: dict[str, Any]) -> str:
    m, row = record["method"], record["source"]["row"]
    what = "FT" if m["name"] == "full_ft" else f"LoRA r={m['r']}, {_targets(m)}"
    lr = f"lr {record['source']['lr']:g}" if row.startswith("lr_x") else ""
    return ", ".join(x for x in (what, f"batch {record['source']['batch_size']}", lr) if x)


def render_spectrum(experiment: str, records: Records, notes: str | None,
                    figure: Path | None = None) -> tuple[str, list[list[str]]]:  # fmt: skip
    """Effective rank and intruder count of ΔW per setting, task, matrix and layer, each the
    mean over seeds; FT's and LoRA's averages over layers in the notes."""
    groups: dict[tuple[str, str, str], dict[int, list[dict]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in records:
        for e in r["spectrum"]:
            groups[(_setting(r), r["task"], e["matrix"])][e["layer"]].append(e)
    layers = sorted({e["layer"] for r in records for e in r["spectrum"]})
    order = {m: i for i, m in enumerate(("q", "k", "v", "o", "ffn_in", "ffn_out"))}

    def sort_key(key: tuple[str, str, str]) -> tuple:
        numbers = tuple(float(n) for n in re.findall(r"[\d.]+(?:e-?\d+)?", key[0]))
        return (not key[0].startswith("FT"), re.sub(r"[\d.]+", "", key[0]), numbers, key[1],
                order[key[2]])  # fmt: skip

    keys = sorted(groups, key=sort_key)
    header = ["Setting", "Task", "Matrix", *(f"L{i}" for i in layers), "Mean", "Seeds"]
    csv_rows = [["setting", "task", "matrix", "layer", "effective_rank", "intruders", "seeds"]]
    lines = []
    for key in keys:
        by_layer, cells_ = groups[key], []
        for layer in layers:
            es = by_layer.get(layer, [])
            if not es:
                cells_.append("")
                continue
            er = statistics.fmean(e["effective_rank"] for e in es)
            intr = statistics.fmean(e["intruders"] for e in es)
            cells_.append(f"{er:.1f} / {intr:.1f}")
            csv_rows.append([*key, str(layer), f"{er:.2f}", f"{intr:.2f}", str(len(es))])
        every = [e for es in by_layer.values() for e in es]
        mean = (f"{statistics.fmean(e['effective_rank'] for e in every):.1f} / "
                f"{statistics.fmean(e['intruders'] for e in every):.1f}")  # fmt: skip
        seeds = str(max(len(es) for es in by_layer.values()))
        lines.append([key[0], GLUE_TASKS[key[1]].display, _matrix_name(key[2]), *cells_, mean,
                      seeds])  # fmt: skip
    settings = records[0]["settings"]
    md = [f"# {experiment}: the spectrum of ΔW, FT against LoRA", ""]
    md += md_table(header, lines)
    md += ["", f"Each cell: effective rank of ΔW (the fewest singular values holding "
           f"{settings['energy']:.0%} of ‖ΔW‖²_F; Biderman et al. 2024) / intruder dimensions "
           f"(of the top {settings['k']} left singular vectors of W0 + ΔW, those whose largest "
           f"|cos| against every left singular vector of W0 is below {settings['eps']:g}; "
           "Shuttleworth et al. 2024, §3), each the mean over seeds. ΔW = W_tuned − W0 for FT, "
           "(α/r)·B·A for LoRA; only matrices the run changed have a row. Computed by "
           "`python -m experiments.spectrum` from the weights the study's runs saved "
           "(lora.analysis.effective_rank, intruder_dimensions)."]  # fmt: skip
    md += ["", *_spectrum_findings(records)]
    md += ["", "Paper context (Table 7, §7.3): ΔW amplifies directions of W that W "
           "does not emphasise, with a low intrinsic rank; these two measures test the later "
           "claims that FT's update is of far higher rank (Biderman et al.) and that LoRA, "
           "unlike FT, adds new high-ranking directions (Shuttleworth et al.)."]  # fmt: skip
    md += footer(records, any_stale(records))
    return "\n".join(md) + "\n", csv_rows


def _matrix_name(name: str) -> str:
    return f"W_{name}" if len(name) == 1 else name


def _spectrum_findings(records: Records) -> list[str]:
    """FT against LoRA r=8 on W_q,W_v at each batch size both ran, over the matrices both
    change (W_q, W_v), every layer, task and seed."""
    k = records[0]["settings"]["k"]
    pooled: dict[tuple[int, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        m, row = r["method"], r["source"]["row"]
        if m["name"] == "full_ft":
            who = "FT"
        elif m.get("targets") == ["q", "v"] and m.get("r") == 8 and not row.startswith("lr_x"):
            who = "LoRA"
        else:
            continue
        for e in r["spectrum"]:
            if e["matrix"] in ("q", "v"):
                for key in ("effective_rank", "intruders"):
                    pooled[(r["source"]["batch_size"], who)][key].append(e[key])
    parts = []
    for batch in sorted({b for b, _ in pooled}):
        ft, lo = pooled.get((batch, "FT")), pooled.get((batch, "LoRA"))
        if ft and lo:
            mean = statistics.fmean
            parts.append(f"batch {batch}: effective rank {mean(ft['effective_rank']):.1f} (FT) "
                         f"vs {mean(lo['effective_rank']):.1f} (LoRA), intruders "
                         f"{mean(ft['intruders']):.2f} vs {mean(lo['intruders']):.2f} of the "
                         f"top {k}")  # fmt: skip
    if not parts:
        return []
    return ["FT against LoRA (r=8, W_q,W_v), means over W_q and W_v of every layer, task and "
            "seed, at each batch size with both: " + "; ".join(parts) + ". LoRA's effective "
            "rank is at most r by construction; at d = 384 a random direction has |cos| of "
            "about 1/√384 ≈ 0.05 with each of W0's singular vectors, so the 0.5 threshold "
            "flags only directions far from all of them."]  # fmt: skip


SPECTRUM = Layout("spectrum", render_spectrum)
