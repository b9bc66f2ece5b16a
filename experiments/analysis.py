"""Command line: ``python -m experiments.analysis`` builds paper Table 7 and Figures 3-4
from the saved adapters of ``experiment=analysis_minilm`` (see experiments/report/analysis.py)."""

from experiments.report.analysis import main

if __name__ == "__main__":
    main()
