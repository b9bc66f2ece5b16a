"""Command line: ``python -m experiments.analysis`` renders paper Table 7 and Figures 3-4
from the records ``python -m experiments.analysis_job`` wrote (see
experiments/report/analysis.py)."""

from experiments.report.analysis import main

if __name__ == "__main__":
    main()
