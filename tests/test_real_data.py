"""Smoke run on one real GLUE task from LORA_DATA_DIR (skipped when unset)."""

from __future__ import annotations

import os

import pytest

from experiments.train import run
from tests.test_config import compose_cfg


@pytest.mark.skipif(
    not os.environ.get("LORA_DATA_DIR"),
    reason="LORA_DATA_DIR is not set: no local GLUE data to smoke-test on",
)
def test_minilm_lora_on_real_rte(tmp_path):
    cfg = compose_cfg([
        "task=rte", "method=lora", "debug=fdr", f"paths.results_dir={tmp_path}",
        f"paths.output_dir={tmp_path}/outputs",
    ])  # fmt: skip
    record = run(cfg)
    assert record["status"] == "ok"
    assert record["data"]["source"].endswith("data")
    assert record["params"]["method"] == 2 * 2 * 6 * 384 * 8  # MiniLM-L6: 6 layers, d 384
    assert 0.0 <= record["metrics"]["main"] <= 1.0
