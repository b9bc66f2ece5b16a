"""The successors comparison: every method with the same learning-rate search,
selected on held-out training data, on several seeds; a table and a Pareto plot.

The records come from ``python -m experiments.successors`` (conf/experiment/
successors_minilm.yaml): per (method, task) the search's trials at one seed, then the
chosen learning rate on every seed. From them, per method and task:

- the chosen lr (:func:`experiments.core.selection.chosen_lr`: the best held-out score
  among the search's trials) and the number of trials;
- the median and min-max over seeds at the chosen lr, under the paper's protocol (the
  best dev epoch, ``metrics.main``) and under held-out selection (the dev score at the
  epoch with the best held-out score, ``metrics.heldout.main``);
- trainable parameters (``params.method``: the paper's count, classifier head excluded);
- step time and peak training memory as ratios against LoRA on the same task (medians
  over seeds; eval time taken out of the step time).

A preset may take some rows from another experiment of the same budget
(:data:`BORROWED`): ``successors_demo`` reads FT, LoRA and AdapterH from the demo and its
search, so that its successors are compared with the demo's own LoRA runs.

Merged inference latency against the base comes from the latency job's record named
``<experiment>_latency`` (``python -m experiments.latency preset=successors
model=minilm-l6``, run by ``make successors``): each LoRA-family row merged and unloaded,
AdapterH as it runs; FT and BitFit ship the base architecture itself.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: files only
import matplotlib.pyplot as plt  # noqa: E402

from experiments.core.labels import METHOD_LABELS, fmt_params, method_label  # noqa: E402
from experiments.core.load import load_records  # noqa: E402
from experiments.core.selection import budget_key, chosen_lr, config_key, row_of  # noqa: E402
from experiments.glue.data import TASKS as GLUE_TASKS  # noqa: E402
from experiments.report.common import any_stale, footer  # noqa: E402
from experiments.report.plots import save_figure  # noqa: E402
from experiments.report.render import (  # noqa: E402
    N_RESAMPLES,
    claim_note,
    csv_values,
    md_table,
    missing_note,
    write_md_csv,
)
from experiments.report.render import cells as interval_cells  # noqa: E402
from experiments.report.specs import dev_outputs  # noqa: E402
from experiments.report.stats import Claim, Interval, paired_bootstrap_average  # noqa: E402

#: the reference row of the ratio and difference columns
REFERENCE = "lora"
#: what each successor's paper claims against LoRA, tested on every row's Δ from LoRA
SUCCESSOR_CLAIM = Claim("the row performs on par with or better than LoRA (r=8 on W_q,W_v), "
                        "as each successor's paper reports", "at_least", 1.0)  # fmt: skip
#: experiment -> (what its table compares, its claim), for presets other than the successors'
#: that run the same search-then-seeds protocol (experiments/successors.py)
COMPARISONS: dict[str, tuple[str, Claim]] = {
    "parity_target_lr": (
        "target sets at a matched trainable count, each with its own learning-rate search",
        Claim("the target set performs on par with or better than W_q,W_v at a matched "
              "trainable count (Schulman et al. 2025: attention-only LoRA trails MLP and "
              "all-layer LoRA)", "at_least", 1.0),
    ),
}  # fmt: skip
log = logging.getLogger(__name__)
#: experiment -> (source experiments, rows): rows its table reads from the sources, which
#: ran the same budget (the first source's record wins where two hold the same run)
BORROWED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "successors_demo": (("demo", "demo_lr_search"), ("full_ft", "lora", "adapter_h")),
    "parity_target_lr": (("demo", "demo_lr_search"), ("full_ft", "lora")),
}


def with_borrowed(results_dir: Path, experiment: str, records: list[dict[str, Any]]
                  ) -> list[dict[str, Any]]:  # fmt: skip
    """``records`` plus the :data:`BORROWED` rows of ``experiment`` that it does not run
    itself, each run once, from sources whose budget (:func:`~experiments.core.selection.budget_key`) is the
    experiment's; a source record of another budget is left out with a warning."""
    sources, rows = BORROWED.get(experiment, ((), ()))
    own = {row_of(r) for r in records}
    budgets = {budget_key(r) for r in records}
    borrowed, seen = [], set()
    for source in sources:
        for r in load_records(results_dir, source):
            row = r["config"].get("row")
            if row not in rows or row in own:
                continue
            run = (row, r["task"], r["seed"], r["config"]["train"]["lr"])
            if run in seen:  # the demo's seed-1 run at the chosen lr is also its search's trial
                continue
            if budgets and budget_key(r) not in budgets:
                log.warning("successors: %s left out of %s: another budget than its runs",
                            r["run_id"], experiment)  # fmt: skip
                continue
            seen.add(run)
            borrowed.append(r)
    return borrowed + records  # the experiment's own last: its notes are the table's


def _search_seed(recs: list[dict[str, Any]]) -> int:
    """The seed the search ran at: the one with the most learning rates (lowest on a tie)."""
    lrs: dict[int, set] = defaultdict(set)
    for r in recs:
        lrs[r["seed"]].add(r["config"]["train"]["lr"])
    return min(lrs, key=lambda s: (-len(lrs[s]), s))


def _step_seconds(record: dict[str, Any]) -> float | None:
    """Training seconds per optimizer step, the per-epoch evaluations taken out."""
    cfg, timing = record["config"]["train"], record.get("timing") or {}
    total = timing.get("train_seconds")
    if not total:
        return None
    evals = sum(v for e in record.get("epochs", []) for k, v in e.items()
                if k.startswith("eval_") and k.endswith("_runtime"))  # fmt: skip
    per_epoch = math.ceil(
        record["data"]["train_size"] / (cfg["batch_size"] * cfg["gradient_accumulation_steps"])
    )
    steps = cfg["max_steps"] if cfg.get("max_steps", -1) > 0 else per_epoch * cfg["epochs"]
    return (total - evals) / steps if steps else None


def _peak_mb(record: dict[str, Any]) -> float | None:
    memory = record.get("memory") or {}
    return memory.get("peak_gpu_mb") or memory.get("peak_rss_mb")


def _median(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(records: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (row, task): the chosen lr, trials, and the chosen lr's records over seeds.

    Returns:
        ``{(row, task): {"lr", "trials", "records", "paper", "heldout", "params",
        "step_s", "peak_mb"}}``; ``paper``/``heldout`` hold the per-seed dev scores ×100.
    """
    by_unit: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        if "heldout" in r["metrics"]:
            by_unit[(row_of(r), r["task"])].append(r)
    out = {}
    for (row, task), recs in by_unit.items():
        keys = {config_key(r) for r in recs}
        if len(keys) > 1:  # never pool other data sizes, epochs ... as trials or seeds
            log.warning("successors: %s on %s left out: its records hold %d configurations "
                        "(beyond lr and seed); keep one per results folder", row, task, len(keys))  # fmt: skip
            continue
        seed = _search_seed(recs)
        lr, trials = chosen_lr(recs, row, task, seed)  # type: ignore[misc]
        chosen = sorted((r for r in recs if r["config"]["train"]["lr"] == lr),
                        key=lambda r: r["seed"])  # fmt: skip
        out[(row, task)] = {
            "lr": lr,
            "trials": trials,
            "records": chosen,
            "method": chosen[0]["method"],
            "paper": [100 * r["metrics"]["main"] for r in chosen],
            "heldout": [100 * r["metrics"]["heldout"]["main"] for r in chosen],
            "params": chosen[0]["params"]["method"],
            "step_s": _median([_step_seconds(r) for r in chosen]),
            "peak_mb": _median([_peak_mb(r) for r in chosen]),
        }
    return out


#: rows whose inference model is the base architecture itself (nothing to merge)
BASE_ARCHITECTURE = ("full_ft", "bitfit")


def merged_latency(latency: dict[str, Any] | None, row: str, model: str,
                   method: dict[str, Any]) -> list[float] | None:  # fmt: skip
    """Inference latency / base at each grid point of ``latency`` (a latency record) for
    the model ``row`` ships: merged for the LoRA family, as it runs for an adapter,
    the base itself (1.0) for FT and BitFit.

    Returns:
        None when the record timed another model (or resized it: ``arch_overrides``) or
        other method settings than ``model`` and ``method``, the ones the runs trained:
        never a number from a mismatched configuration.
    """
    if latency is None:
        return None
    s, points = latency["settings"], latency["points"]
    if s["model"] != model or s.get("arch_overrides"):
        log.warning("successors: latency record %s timed %s, the runs trained %s",
                    latency["run_id"], s["model"], model)  # fmt: skip
        return None
    if row in BASE_ARCHITECTURE:
        return [1.0] * len(points)
    if row in (s.get("merged") or {}):
        key = f"merged-{row}" if s["merged"][row] == method else None
    else:
        key = next((v["key"] for v in latency["variants"] if v["method"] == method), None)
    if key is None:
        log.warning("successors: no latency for %s as trained in %s", row, latency["run_id"])
        return None
    return [p["results"][key]["ratio"] for p in points]


def _cell(scores: list[float]) -> str:
    """``85.1 [84.0, 86.2]``: median and min-max over seeds."""
    if not scores:
        return ""
    med = statistics.median(scores)
    if len(scores) == 1:
        return f"{med:.1f}"
    return f"{med:.1f} [{min(scores):.1f}, {max(scores):.1f}]"


def _label(row: str, method: dict[str, Any]) -> str:
    """The method's label for a row named after a method, else its settings (a preset's
    ``qkvo_r4`` -> ``LoRA (r=4, W_q,W_k,W_v,W_o)``)."""
    return METHOD_LABELS.get(row) or method_label(method)


def beats_reference(units: dict[tuple[str, str], dict[str, Any]], protocol: str = "heldout"
                    ) -> list[tuple[str, str]]:  # fmt: skip
    """(row, task) pairs whose worst seed beats LoRA's best seed under ``protocol``."""
    out = []
    for (row, task), unit in sorted(units.items()):
        ref = units.get((REFERENCE, task))
        if row == REFERENCE or ref is None or not unit[protocol] or not ref[protocol]:
            continue
        if min(unit[protocol]) > max(ref[protocol]):
            out.append((row, task))
    return out


def _order(rows: list[str]) -> list[str]:
    """Rows in the paper's method order (METHOD_LABELS), unknown rows last by name."""
    order = list(METHOD_LABELS)
    return sorted(rows, key=lambda r: (order.index(r) if r in order else len(order), r))


def _outputs(records: list[dict[str, Any]]) -> dict[int, tuple] | None:
    """seed -> (pred, label, index) at the held-out epoch, or None when a record predates
    per-example outputs."""
    arrays = {r["seed"]: dev_outputs(r, "heldout") for r in records}
    return None if not arrays or None in arrays.values() else arrays


def differences(units: dict[tuple[str, str], dict[str, Any]], row: str,
                tasks: list[str]) -> dict[str, Interval | None]:  # fmt: skip
    """Interval on ``row`` − LoRA per task (and ``"avg"`` over ``tasks``, one seed draw), at
    each one's chosen lr, paired over seeds and dev examples (held-out protocol)."""
    pairs = {}
    for t in tasks:
        unit, ref = units.get((row, t)), units.get((REFERENCE, t))
        a, b = (None, None) if unit is None or ref is None else (
            _outputs(unit["records"]), _outputs(ref["records"]))  # fmt: skip
        pairs[t] = None if a is None or b is None else (a, b, GLUE_TASKS[t].main_metric)
    out = {t: None if x is None else paired_bootstrap_average([x], n_resamples=N_RESAMPLES)
           for t, x in pairs.items()}  # fmt: skip
    ready = [x for x in pairs.values() if x is not None]
    out["avg"] = (paired_bootstrap_average(ready, n_resamples=N_RESAMPLES)
                  if tasks and len(ready) == len(tasks) else None)  # fmt: skip
    return out


def render(experiment: str, records: list[dict[str, Any]], notes: str | None,
           figure: Path | None, latency: dict[str, Any] | None = None
           ) -> tuple[str, list[dict[str, Any]]]:  # fmt: skip
    """Markdown and CSV rows of the comparison (see the module docstring); ``latency``:
    the latency record of the merged models, if any."""
    what, claim = COMPARISONS.get(experiment, ("LoRA's successors with the same learning-rate "
                                                "search", SUCCESSOR_CLAIM))  # fmt: skip
    units = summarize(records)
    tasks = sorted({t for _, t in units}, key=lambda t: list(GLUE_TASKS).index(t))
    rows = _order(sorted({r for r, _ in units}))
    display = {t: GLUE_TASKS[t].display for t in tasks}
    metric = {t: GLUE_TASKS[t].main_metric for t in tasks}
    lines = [f"# {experiment}: {what}", ""]
    if notes:
        lines += [notes.strip(), ""]
    lines += [
        "Dev score ×100, median [min, max] over seeds at the chosen learning rate. "
        "**Paper**: the best dev epoch (the paper's protocol). **Held-out**: the dev score "
        "at the epoch with the best score on the held-out split of the training set, "
        "which also chose the learning rate. Params: the paper's count (no classifier "
        "head).",
        "",
    ]
    header = ["Method", "Params"]
    for t in tasks:
        header += [f"{display[t]} ({metric[t]}) paper", f"{display[t]} held-out"]
    header += ["Avg held-out"]
    grid = [f"{p['batch']}×{p['seq']}" for p in latency["points"]] if latency else []
    firsts = {row: next(units[(row, t)] for t in tasks if (row, t) in units) for row in rows}
    # row -> inference latency / base per grid point (None: not timed as trained)
    timed = {row: merged_latency(latency, row, u["records"][0]["model"], u["method"])
             for row, u in firsts.items()}  # fmt: skip
    body, csv_rows = [], []
    for row in rows:
        first = firsts[row]
        cells = [_label(row, first["method"]), fmt_params(first["params"])]
        medians = []
        for t in tasks:
            unit = units.get((row, t))
            cells += [_cell(unit["paper"]), _cell(unit["heldout"])] if unit else ["", ""]
            if unit and unit["heldout"]:
                medians.append(statistics.median(unit["heldout"]))
            if unit:
                csv_rows.append({
                    "method": row, "task": t, "params": unit["params"], "lr": unit["lr"],
                    "trials": unit["trials"], "seeds": len(unit["records"]),
                    "paper_median": statistics.median(unit["paper"]),
                    "paper_min": min(unit["paper"]), "paper_max": max(unit["paper"]),
                    "heldout_median": statistics.median(unit["heldout"]),
                    "heldout_min": min(unit["heldout"]), "heldout_max": max(unit["heldout"]),
                    "step_time_vs_lora": _ratio_value(unit, units.get((REFERENCE, t)), "step_s"),
                    "peak_memory_vs_lora": _ratio_value(unit, units.get((REFERENCE, t)),
                                                        "peak_mb"),
                    **{f"latency_vs_base_{g.replace('×', 'x')}": round(r, 4) if r else ""
                       for g, r in zip(grid, timed[row] or [None] * len(grid), strict=True)},
                })  # fmt: skip
        full = len(medians) == len(tasks)
        cells.append(f"{statistics.mean(medians):.1f}" if full else "")
        body.append(cells)
    lines += md_table(header, body)

    lines += ["", "## Search and cost", "",
              "Chosen learning rate (trials of the search), seeds at it, and step time and "
              f"peak training memory as ratios against {METHOD_LABELS[REFERENCE]} on the "
              "same task (medians over seeds; step time without the per-epoch "
              "evaluations; peak resident memory on CPU, peak allocation on GPU)."]  # fmt: skip
    header = ["Method"] + [f"{display[t]} lr (trials), seeds" for t in tasks]
    header += ["Step time ×LoRA", "Peak memory ×LoRA"]
    if latency:
        header.append(f"Inference latency ×base ({' / '.join(grid)})")
    body = []
    for row in rows:
        first = firsts[row]
        cells = [_label(row, first["method"])]
        steps, peaks = [], []
        for t in tasks:
            unit, ref = units.get((row, t)), units.get((REFERENCE, t))
            if unit is None:
                cells.append("")
                continue
            cells.append(f"{unit['lr']:.2g} ({unit['trials']}), {len(unit['records'])}")
            steps.append(_ratio_value(unit, ref, "step_s"))
            peaks.append(_ratio_value(unit, ref, "peak_mb"))
        cells += [_fmt_ratio(_median(steps)), _fmt_ratio(_median(peaks))]
        if latency:
            cells.append(" / ".join(f"{r:.2f}×" for r in timed[row]) if timed[row] else "")
        body.append(cells)
    lines += [""] + md_table(header, body)
    if latency:
        st = latency["settings"]
        lines += ["", f"Inference latency: the model each method ships, against the base, "
                  f"median per-round ratio over {st['trials']} rounds at batch × sequence "
                  f"length {', '.join(grid)}, {st['model']} architecture with random "
                  f"weights on {latency['hardware']['name']} (`{st['name']}.md`): the "
                  "LoRA family merged and unloaded, AdapterH as it runs, FT and BitFit the "
                  "base itself (1×)."]  # fmt: skip
    else:
        lines += ["", f"Inference latency: not measured yet (no `{experiment}_latency` "
                  "record; `python -m experiments.latency preset=successors "
                  "model=minilm-l6`)."]  # fmt: skip
    lines += ["", f"## Difference from {METHOD_LABELS[REFERENCE]}", ""]
    header = ["Method", *(f"{display[t]} {s}" for t in tasks for s in ("Δ [95% CI]", "verdict")),
              "Avg. Δ [95% CI]", "Avg. verdict"]  # fmt: skip
    body, beyond = [], []
    for row in rows:
        label = _label(row, firsts[row]["method"])
        if row == REFERENCE:
            body.append([label, *["reference", ""] * (len(tasks) + 1)])
            continue
        diff = differences(units, row, tasks)
        body.append([label, *(v for k in [*tasks, "avg"] for v in interval_cells(diff[k], claim))])
        for entry in csv_rows:
            if entry["method"] == row:
                entry.update(zip(("delta_vs_lora", "delta_low", "delta_high", "verdict"),
                                 csv_values(diff[entry["task"]], claim), strict=True))  # fmt: skip
        beyond += [
            f"{label} on {display[t] if t != 'avg' else 'average'} {diff[t].cell(1)}"
            for t in [*tasks, "avg"][: len(tasks) + (len(tasks) > 1)]
            if diff[t] is not None and diff[t].low > 0
        ]
    lines += md_table(header, body)
    lines += ["", claim_note(claim, METHOD_LABELS[REFERENCE]) + " Each row at its own "
              "chosen lr; the average pools the tasks with one seed draw.",
              "", "Beyond LoRA's interval (the whole interval above 0): "
              + ("; ".join(beyond) or "none") + "."]  # fmt: skip
    for entry in csv_rows:  # every row the same columns, LoRA's empty
        for key in ("delta_vs_lora", "delta_low", "delta_high", "verdict"):
            entry.setdefault(key, "")

    beats = beats_reference(units)
    summary = ", ".join(f"{_label(r, units[(r, t)]['method'])} on {display[t]}"
                        for r, t in beats) or "none"  # fmt: skip
    lines += ["", f"Beyond the seed spread (every seed above {METHOD_LABELS[REFERENCE]}'s "
              f"best seed, held-out protocol): {summary}."]  # fmt: skip
    if figure is not None:
        lines += ["", f"![Score against trainable parameters]({figure.name})"]
    used = [r for u in units.values() for r in u["records"]] + ([latency] if latency else [])
    lines += missing_note(used)
    lines += footer(used, any_stale(used))
    return "\n".join(lines) + "\n", csv_rows


def _ratio_value(unit: dict, ref: dict | None, key: str) -> float | None:
    if ref is None or unit[key] is None or not ref[key]:
        return None
    return round(unit[key] / ref[key], 3)


def _fmt_ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}×"


def plot_pareto(records: list[dict[str, Any]], path: Path) -> Path | None:
    """Score against trainable parameters (log scale), one panel per task: each method's
    median over seeds under held-out selection with its min-max as an error bar, and the
    Pareto front (no method with fewer parameters scores higher) as a step line.

    Returns ``None`` (writes nothing) when there is nothing to plot.
    """
    units = summarize(records)
    tasks = sorted({t for _, t in units}, key=lambda t: list(GLUE_TASKS).index(t))
    if not tasks:
        return None
    rows = _order(sorted({r for r, _ in units}))
    color = {row: plt.get_cmap("tab10")(i % 10) for i, row in enumerate(rows)}  # same per panel
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        points = sorted((u["params"], statistics.median(u["heldout"]), min(u["heldout"]),
                         max(u["heldout"]), _label(row, u["method"]), row)
                        for (row, t), u in units.items() if t == task)  # fmt: skip
        for params, med, lo, hi, label, row in points:
            ax.errorbar(params, med, yerr=[[med - lo], [hi - med]], fmt="o", capsize=3,
                        color=color[row])  # fmt: skip
            ax.annotate(label, (params, med), textcoords="offset points", xytext=(5, 4),
                        fontsize=8)  # fmt: skip
        front, best = [], -math.inf
        for params, med, *_ in sorted(points, key=lambda p: (p[0], -p[1])):
            if med > best:
                front.append((params, med))
                best = med
        ax.step([p for p, _ in front], [m for _, m in front], where="post", color="grey",
                alpha=0.6, label="Pareto front")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters (paper count)")
        ax.set_title(f"{GLUE_TASKS[task].display} ({GLUE_TASKS[task].main_metric})")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("dev score ×100, held-out selection\n(median, min-max over seeds)")
    axes[0][0].legend(fontsize=8, loc="lower right")
    return save_figure(fig, path)


def write_successors_table(out: Path, experiment: str, records: list[dict[str, Any]],
                           latency: dict[str, Any] | None = None) -> list[Path]:  # fmt: skip
    """``<experiment>.md``/``.csv`` and ``<experiment>_pareto.png`` in ``out``.

    Records without held-out selection (``metrics.heldout``) are left out; nothing is
    written when none has it. ``latency``: the latency record of the merged models.
    """
    records = [r for r in records if "heldout" in r["metrics"]]
    if not records:
        return []
    figure = plot_pareto(records, out / f"{experiment}_pareto.png")
    md, rows = render(experiment, records, records[-1]["config"].get("notes"), figure, latency)
    columns = list(rows[0]) if rows else []
    return write_md_csv(out, experiment, md, rows, columns) + ([figure] if figure else [])
