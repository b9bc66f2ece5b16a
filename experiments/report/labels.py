"""Method labels: they live in :mod:`experiments.core.labels`, where the jobs that print
them too (experiments/perf, experiments/params.py) import them without importing the
tables. This name re-exports them for report modules written against it; new code
imports :mod:`experiments.core.labels`."""

from experiments.core.labels import (
    LATENCY_LABELS,
    METHOD_LABELS,
    fmt_targets,
    method_label,
    method_names,
    method_order,
)

__all__ = ["LATENCY_LABELS", "METHOD_LABELS", "fmt_targets", "method_label", "method_names",
           "method_order"]  # fmt: skip
