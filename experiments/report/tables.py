"""Rebuild every table in ``results/tables`` from the records in ``results/runs``.

    python -m experiments.tables                 # every experiment (make tables)
    python -m experiments.tables --experiment demo

Per training experiment: ``<experiment>.md``/``.csv`` (GLUE, paper Table 2), the E2E
table (paper Table 3; ``<experiment>_e2e`` when the experiment also has GLUE runs), the
WebNLG table (paper Table 14; ``<experiment>_webnlg`` likewise) and a
rank-sweep plot where the records hold several ranks. From the perf jobs' records: the
latency table and plot (``results/runs/latency``, paper Table 1 / Figure 5) and the
efficiency tables (``results/runs/bench``), one per output name, from its latest record.
Every table ends with the commits and dates of the records it was built from.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from experiments.report.ablation_tables import layout_for, write_layout_table
from experiments.report.common import latest, write_md_csv
from experiments.report.e2e_tables import write_e2e_table
from experiments.report.efficiency_tables import write_bench_table
from experiments.report.glue_tables import render_glue
from experiments.report.latency_tables import write_latency_table
from experiments.report.load import kind, load_records
from experiments.report.plots import plot_lr_search, plot_rank_sweep
from experiments.report.webnlg_tables import write_webnlg_table


def write_tables(results_dir: Path, experiment: str | None = None) -> list[Path]:
    """Render every experiment (or one) to ``results_dir/tables``; returns written paths."""
    results_dir = Path(results_dir)
    by_exp: dict[str, list[dict]] = defaultdict(list)
    for r in load_records(results_dir, experiment):
        by_exp[r["experiment"]].append(r)
    out = results_dir / "tables"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for exp, recs in sorted(by_exp.items()):
        if exp == "latency":
            for r in latest(recs, lambda r: r["settings"]["name"]).values():
                written += write_latency_table(r, out)
            continue
        if exp == "bench":
            for r in latest(recs, lambda r: r["settings"]["name"]).values():
                written += write_bench_table(r, out)
            continue
        if exp.startswith("successors"):  # issue 12: lr search, both protocols, Pareto plot
            from experiments.report.successors_tables import write_successors_table

            # the latency folder is already loaded when every experiment is rebuilt
            timing = by_exp.get("latency") or load_records(results_dir, "latency")
            timed = latest(timing, lambda r: r["settings"]["name"])
            written += write_successors_table(out, exp, recs, timed.get(f"{exp}_latency"))
            continue
        if layout_for(exp) is not None:  # paper Tables 5, 6, 16, 18 in the paper's layout
            written += write_layout_table(out, exp, recs)
            continue
        e2e = [r for r in recs if kind(r) == "e2e"]
        if e2e:
            written += write_e2e_table(
                out, exp if len(e2e) == len(recs) else f"{exp}_e2e", exp, e2e
            )
        webnlg = [r for r in recs if kind(r) == "webnlg"]
        if webnlg:
            written += write_webnlg_table(
                out, exp if len(webnlg) == len(recs) else f"{exp}_webnlg", exp, webnlg
            )
        glue = [r for r in recs if kind(r) == "glue"]
        if not glue:
            continue
        figure = plot_rank_sweep(glue, out / f"{exp}_rank.png") or plot_lr_search(
            glue, out / f"{exp}_lr.png"
        )
        md, rows = render_glue(exp, glue, glue[-1]["config"].get("notes"), figure)
        written += write_md_csv(out, exp, md, rows) + ([figure] if figure else [])
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results-dir", default="results", type=Path)
    parser.add_argument("--experiment", default=None, help="one experiment; default: all")
    args = parser.parse_args(argv)
    written = write_tables(args.results_dir, args.experiment)
    if not written:
        raise SystemExit(f"no usable records under {args.results_dir / 'runs'}")
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
