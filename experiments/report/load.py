"""Reading records: it lives in :mod:`experiments.core.load`, where the drivers that
choose from records (experiments/successors.py) import it without importing the tables.
This name re-exports it for report modules written against it; new code imports
:mod:`experiments.core.load`."""

from experiments.core.load import PERF_EXPERIMENTS, REQUIRED, kind, load_records, problem

__all__ = ["PERF_EXPERIMENTS", "REQUIRED", "kind", "load_records", "problem"]
