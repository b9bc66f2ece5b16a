"""Command line: ``python -m experiments.report_page [--results-dir DIR] [--out DIR]``
(see experiments/report/page.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.report.page import write_page


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the report page from the tables.")
    parser.add_argument("--results-dir", default="results", type=Path)
    parser.add_argument("--out", default=None, type=Path, help="default: <results-dir>/report")
    args = parser.parse_args(argv)
    if not args.results_dir.is_dir():
        raise SystemExit(f"error: --results-dir {args.results_dir}: no such folder")
    for path in write_page(args.results_dir, args.out):
        print(path)


if __name__ == "__main__":
    main()
