"""Rebuild every table in ``results/tables`` from the records in ``results/runs``.

    python -m experiments.tables                 # every experiment (make tables)
    python -m experiments.tables --experiment demo

Per training experiment, the table its spec gives (:mod:`experiments.report.specs`):
``<experiment>.md``/``.csv`` (GLUE, paper Table 2), the E2E table (paper Table 3;
``<experiment>_e2e`` when the experiment also has GLUE runs), the WebNLG table (paper
Table 14; ``<experiment>_webnlg`` likewise), or, for ``table5_*`` ... ``table18_*``, the
paper's own layout; and a rank-sweep or learning-rate plot where the records hold one.
From the perf jobs' records: the latency table and plot (``results/runs/latency``, paper
Table 1 / Figure 5) and the efficiency tables (``results/runs/bench``), one per output
name, from its latest record. Every table ends with the commits and dates of the records
it was built from.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from experiments.report.analysis import write_analysis_records
from experiments.report.common import latest
from experiments.report.efficiency_tables import write_bench_table
from experiments.report.latency_tables import write_latency_table
from experiments.report.load import kind, load_records
from experiments.report.parity import PARITY, SPECTRUM, with_base
from experiments.report.render import Layout, Records, ScoreTable, write_md_csv
from experiments.report.specs import BY_KIND, layout_for
from experiments.report.successors_tables import COMPARISONS, with_borrowed, write_successors_table


def write_table(spec: ScoreTable | Layout, out: Path, stem: str, experiment: str,
                records: Records) -> list[Path]:  # fmt: skip
    """Write ``<out>/<stem>.md`` and ``.csv`` (and the spec's plot) from ``records``."""
    figure = spec.figure(records, out, stem) if spec.figure else None
    md, rows = spec.render(experiment, records, records[-1].get("config", {}).get("notes"), figure)
    return write_md_csv(out, stem, md, rows) + ([figure] if figure else [])


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
        if exp in ("latency", "bench"):
            write = write_latency_table if exp == "latency" else write_bench_table
            for r in latest(recs, lambda r: r["settings"]["name"]).values():
                written += write(r, out)
        elif exp.startswith("successors") or exp in COMPARISONS:  # lr search, Pareto plot
            # the latency folder is already loaded when every experiment is rebuilt
            timing = by_exp.get("latency") or load_records(results_dir, "latency")
            timed = latest(timing, lambda r: r["settings"]["name"])
            recs = with_borrowed(results_dir, exp, recs)
            written += write_successors_table(out, exp, recs, timed.get(f"{exp}_latency"))
        elif exp == PARITY.prefix:  # the factor study, with the demo's base cells
            written += write_table(PARITY, out, exp, exp, with_base(results_dir, recs))
        elif all(kind(r) == "spectrum" for r in recs):  # ΔW of saved runs (experiments.spectrum)
            written += write_table(SPECTRUM, out, exp, exp, recs)
        elif all(kind(r) == "analysis" for r in recs):  # paper §7 (experiments.analysis_job)
            written += write_analysis_records(recs, results_dir / "analysis", results_dir)
        elif (layout := layout_for(exp)) is not None:  # paper Tables 5, 6, 16, 18
            written += write_table(layout, out, exp, exp, recs)
        else:
            for k, spec in BY_KIND.items():  # E2E, WebNLG, then GLUE under the bare name
                mine = [r for r in recs if kind(r) == k]
                stem = exp if len(mine) == len(recs) or k == "glue" else f"{exp}_{k}"
                written += write_table(spec, out, stem, exp, mine) if mine else []
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
