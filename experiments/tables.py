"""Command line: ``python -m experiments.tables [--experiment NAME]`` (see experiments/report)."""

from experiments.report.tables import main

if __name__ == "__main__":
    main()
