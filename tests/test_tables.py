"""Tables from records: medians over seeds, the paper's rows beside ours, CSV, plot."""

from __future__ import annotations

import csv

from experiments.core.records import write_atomic
from experiments.report.tables import fmt_params, method_label, write_tables


def _record(
    tmp_path, experiment, model, task, method, seed, score, params=(294_912, 887_042, 124_942_082)
):
    rid = f"{model}-{task}-{method['name']}-{method.get('r', '')}-s{seed}"
    write_atomic(
        tmp_path / "runs" / experiment / f"{rid}.json",
        {
            "status": "ok", "experiment": experiment, "model": model, "task": task,
            "method": method, "seed": seed, "metrics": {"main": score},
            "params": dict(zip(("method", "trainable", "total"), params, strict=True)),
            "data": {"train_size": 100}, "config": {"notes": "a note"},
        },
    )  # fmt: skip


def test_median_over_seeds_and_paper_rows(tmp_path):
    lora = {"name": "lora", "r": 8, "targets": ["q", "v"]}
    for seed, score in enumerate([0.80, 0.90, 0.85]):
        _record(tmp_path, "t2", "roberta-base", "rte", lora, seed, score)
    for seed, score in enumerate([0.50, 0.70, 0.60]):
        _record(tmp_path, "t2", "roberta-base", "sst2", lora, seed, score)
    (tmp_path / "runs" / "t2" / "ignored.failed.json").write_text('{"status": "failed"}')
    write_tables(tmp_path, "t2")
    md = (tmp_path / "tables" / "t2.md").read_text()
    ours = next(line for line in md.splitlines() if line.startswith("| roberta-base"))
    cells = [c.strip() for c in ours.strip("|").split("|")]
    # columns: model, method, paper count, with head, total, SST-2, RTE, Avg, seeds
    assert cells[1] == "LoRA (r=8, W_q,W_v)" and cells[2] == "0.29M"
    assert cells[5:] == ["60.0", "85.0", "72.5", "3"]
    assert "*RoB-base (LoRA)*" in md and "*95.1*" in md and "*86.6*" in md
    rows = list(csv.reader((tmp_path / "tables" / "t2.csv").read_text().splitlines()))
    assert rows[0][0] == "source" and rows[1][0] == "ours" and rows[2][0] == "paper"
    assert rows[1][-3:] == ["294912", "887042", "124942082"]
    assert "a note" in md


def test_rank_sweep_plot(tmp_path):
    for r in (1, 2, 4):
        for seed in (1, 2):
            method = {"name": "lora", "r": r, "targets": ["q", "v"]}
            _record(tmp_path, "sweep", "minilm-l6", "mrpc", method, seed, 0.7 + r / 100)
    written = write_tables(tmp_path, "sweep")
    png = tmp_path / "tables" / "sweep_rank.png"
    assert png in written and png.read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "tables" / "sweep.md").read_text()
    assert md.count("| minilm-l6 | LoRA") == 3 and "sweep_rank.png" in md


def test_labels_and_formats():
    assert method_label({"name": "adapter_h", "r": 8}) == "AdapterH (r=8)"
    assert method_label({"name": "prefix_layer", "l_p": 16, "l_i": 4}) == "PreLayer (l_p=16, l_i=4)"
    assert method_label({"name": "full_ft"}) == "FT"
    assert fmt_params(294_912) == "0.29M" and fmt_params(1_500_000_000) == "1.50B"
    assert fmt_params(15_360) == "15.4K"
