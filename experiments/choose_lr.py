"""Write a search's winning learning rates as a config that a preset includes.

    python -m experiments.choose_lr --experiment demo_lr_search \
        --out conf/experiment/demo_lrs.yaml                       (make demo-search)

    python -m experiments.choose_lr --experiment demo_lr_search --edges

    python -m experiments.choose_lr --grid conf/experiment/e2e_demo_lr_search.yaml

Reads the ok records of ``<results-dir>/runs/<experiment>``, picks per (row, task) the lr
with the best held-out score (:func:`experiments.core.selection.choose`), and writes
``hparams.<row>.lr.<task>`` to ``--out`` with every trial's score as a comment. Exits 1,
writing nothing, when a (row, task) of ``--expect`` trials has fewer (an unfinished or
failed search). ``--edges`` instead prints ``row task lr`` for every winner at the grid's
edge whose next step was not tried (:func:`experiments.core.selection.extensions`), one
per line, for the search to run before choosing. ``--grid`` prints ``row lr`` for every
point of a preset's per-row grids (``hparams.<row>.grid``), the rows interleaved so that
two workers start on different rows (make e2e-demo-search).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import yaml

from experiments.core.records import load_records
from experiments.core.selection import choose, extensions, tried


def render(experiment: str, choices: dict, commits: list[str]) -> str:
    """The YAML text: a ``# @package _global_`` config of ``hparams.<row>.lr.<task>``."""
    loss = all(c.criterion == "dev_loss" for c in choices.values())
    what = ("lowest dev loss; each\n# trial's dev loss (nats per token)" if loss else
            "best held-out score; each\n# trial's held-out score (x100)")  # fmt: skip
    lines = ["# @package _global_",
             f"# Written by `python -m experiments.choose_lr --experiment {experiment}`",
             f"# from its records (commit {', '.join(commits)}); do not edit by hand.",
             f"# Per method and task, the learning rate with the {what}",
             "# beside it, * = chosen, ! = at the grid's edge.",
             "hparams:"]  # fmt: skip
    by_row: dict[str, list] = {}
    for (row, task), c in choices.items():
        by_row.setdefault(row, []).append((task, c))
    for row, tasks in by_row.items():
        lines += [f"  {row}:", "    lr:"]
        for task, c in tasks:
            trials = "  ".join(f"{lr:.0e}{'*' if lr == c.lr else ''} "
                               + (f"{-s:.3f}" if c.criterion == "dev_loss" else f"{100 * s:.1f}")
                               for lr, s in c.scores.items())  # fmt: skip
            edge = "  ! at the grid's edge" if c.at_edge else ""
            lines.append(f"      {task}: {c.lr:.1e}  # {trials}{edge}")  # 1.0e-03: YAML 1.1 float
    return "\n".join(lines) + "\n"


def grid_points(preset: Path) -> list[tuple[str, float]]:
    """``(row, lr)`` for every ``hparams.<row>.grid`` point of ``preset``, rows interleaved.

    Raises:
        ValueError: the file has no per-row grid.
    """
    hparams = (yaml.safe_load(preset.read_text()) or {}).get("hparams") or {}
    grids = {row: h["grid"] for row, h in hparams.items() if isinstance(h, dict) and "grid" in h}
    if not grids:
        raise ValueError(f"{preset} has no hparams.<row>.grid")
    columns = itertools.zip_longest(*([(row, float(lr)) for lr in g] for row, g in grids.items()))
    return [point for column in columns for point in column if point is not None]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results-dir", default="results", type=Path)
    parser.add_argument("--experiment", help="the search's experiment name")
    parser.add_argument("--grid", type=Path, help="print a preset's per-row grid points, then exit")
    parser.add_argument("--out", type=Path, help="the YAML file to write")
    parser.add_argument("--edges", action="store_true",
                        help="print the points that extend edge winners, write nothing")  # fmt: skip
    parser.add_argument("--expect", type=int, default=None,
                        help="trials every (row, task) must have (the grid's size)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.grid is not None:
        try:
            print("\n".join(f"{row} {lr:g}" for row, lr in grid_points(args.grid)))
        except (OSError, ValueError, yaml.YAMLError) as err:
            sys.exit(f"error: invalid setting --grid: {err}")
        return
    if args.experiment is None:
        sys.exit("error: invalid setting --experiment: give the search's experiment name")
    records = load_records(args.results_dir, args.experiment)
    if not records:
        sys.exit(f"error: no ok records under {args.results_dir / 'runs' / args.experiment}; "
                 "run the search first")  # fmt: skip
    try:
        choices = choose(records)
    except ValueError as err:
        sys.exit(f"error: {err}")
    if args.edges:
        for row, task, lr in extensions(choices, tried(args.results_dir, args.experiment)):
            print(row, task, f"{lr:g}")
        return
    if args.out is None:
        sys.exit("error: invalid setting --out: give the YAML file to write (or --edges)")
    short = [f"{row} on {task}: {len(c.scores)} trials" for (row, task), c in choices.items()
             if args.expect is not None and len(c.scores) < args.expect]  # fmt: skip
    if short:
        sys.exit(f"error: the search is incomplete ({'; '.join(short)}, expected "
                 f"{args.expect}); rerun it (finished trials are skipped)")  # fmt: skip
    commits = sorted({(r["provenance"].get("git_commit") or "unknown")[:7] for r in records})
    args.out.write_text(render(args.experiment, choices, commits))
    for (row, task), c in choices.items():
        edge = " (at the grid's edge)" if c.at_edge else ""
        print(f"{row} on {task}: lr {c.lr:g} from {len(c.scores)} trials{edge}")
    print(args.out)


if __name__ == "__main__":
    main()
