"""GLUE loading from a local folder (GLUE quirks included) and the metrics."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.core.data import resolve_data_dir
from experiments.glue.data import load_glue
from experiments.glue.metrics import glue_metrics
from tests.conftest import FIXTURES

DATA = FIXTURES  # holds glue/<TASK>/{train,dev}.tsv


@pytest.mark.parametrize(
    ("task", "columns", "first_label"),
    [
        ("sst2", ["sentence", "label"], None),
        ("cola", ["sentence", "label"], 1),
        ("rte", ["sentence1", "sentence2", "label"], 0),
        ("stsb", ["sentence1", "sentence2", "label"], 4.8),
        ("mrpc", ["sentence1", "sentence2", "label"], 1),
    ],
)
def test_local_layout_gives_hub_schema(task, columns, first_label):
    data = load_glue(task, DATA)
    assert set(data) == {"train", "dev"}
    assert data["dev"].column_names == columns
    if first_label is not None:
        assert data["dev"][0]["label"] == pytest.approx(first_label)


def test_quirks_bom_quotes_and_no_trailing_newline():
    mrpc = load_glue("mrpc", DATA)["dev"]
    assert mrpc[0]["sentence1"] == 'He said " yes " to the offer .'  # bare quotes kept
    assert len(mrpc) == 4  # BOM header parsed as a header, not a row
    cola = load_glue("cola", DATA)["dev"]
    assert len(cola) == 6 and cola[5]["sentence"] == "Early left they the."
    rte = load_glue("rte", DATA)["dev"]
    assert sorted(set(rte["label"])) == [0, 1]  # entailment -> 0, not_entailment -> 1


def test_missing_file_names_path_and_options(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_glue("qnli", tmp_path)
    message = str(info.value)
    assert "QNLI/train.tsv" in message and "data.dir" in message and "LORA_DATA_DIR" in message
    assert "nyu-mll/glue" in message


def test_data_dir_falls_back_to_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LORA_DATA_DIR", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    assert resolve_data_dir("/x") == resolve_data_dir("/x")
    monkeypatch.delenv("LORA_DATA_DIR")
    assert resolve_data_dir(None) is None


def test_metrics_by_task():
    labels = np.array([1, 0, 1, 1, 0, 0])
    preds = np.array([1, 0, 0, 1, 0, 1])
    assert glue_metrics("sst2", preds, labels) == {"accuracy": pytest.approx(4 / 6)}
    mrpc = glue_metrics("mrpc", preds, labels)
    assert mrpc["f1"] == pytest.approx(2 / 3)  # tp=2, fp=1, fn=1
    cola = glue_metrics("cola", preds, labels)
    assert cola["matthews_correlation"] == pytest.approx(1 / 3)  # (tp·tn − fp·fn)/√… = 3/9
    perfect = glue_metrics("stsb", np.array([0.1, 0.5, 0.9]), np.array([1.0, 2.0, 3.0]))
    assert perfect["pearson"] == pytest.approx(1.0) and perfect["spearmanr"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="equal, non-empty"):
        glue_metrics("sst2", preds[:3], labels)
