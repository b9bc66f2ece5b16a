"""GLUE metrics as GLUE defines them, computed with scikit-learn and SciPy.

accuracy everywhere; F1 too for MRPC and QQP; Matthews correlation for CoLA;
Pearson and Spearman for STS-B. Values are fractions in [-1, 1]; tables show ×100.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

F1_TASKS = ("mrpc", "qqp")


def glue_metrics(task: str, predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Metrics of one GLUE task.

    Args:
        task: harness task name (``"cola"``, ``"stsb"`` ...).
        predictions: (N,) class ids, or (N,) scores for STS-B.
        labels: (N,) gold labels.

    Returns:
        ``{"accuracy"}`` (+ ``"f1"`` for MRPC/QQP), ``{"matthews_correlation",
        "accuracy"}`` for CoLA, or ``{"pearson", "spearmanr"}`` for STS-B.

    Raises:
        ValueError: predictions and labels differ in length, or are empty.
    """
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape[0] != labels.shape[0] or labels.shape[0] == 0:
        raise ValueError(f"need equal, non-empty lengths; got {predictions.shape} {labels.shape}")
    if task == "stsb":
        return {
            "pearson": float(pearsonr(predictions, labels)[0]),
            "spearmanr": float(spearmanr(predictions, labels)[0]),
        }
    out = {"accuracy": float(accuracy_score(labels, predictions))}
    if task == "cola":
        out["matthews_correlation"] = float(matthews_corrcoef(labels, predictions))
    if task in F1_TASKS:
        out["f1"] = float(f1_score(labels, predictions))
    return out
