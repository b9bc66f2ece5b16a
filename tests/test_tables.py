"""Tables from records: one row per configuration, seeds pooled, paper rows, CSV, plot."""

from __future__ import annotations

import csv

import pytest

from experiments.core.records import SCHEMA_VERSION, code_files, code_version, write_atomic
from experiments.report.tables import write_tables

# made by the current code: not stale
PROVENANCE = {"git_commit": "0123456789abcdef", "git_dirty": False, "code_files": code_files(),
              "code_version": code_version(code_files()),
              "finished_at": "2026-11-22T01:02:03+00:00"}  # fmt: skip
LORA = {"name": "lora", "r": 8, "targets": ["q", "v"]}


def _record(tmp_path, experiment, model, task, method, seed, score, lr=5e-4, train=None,
            params=(294_912, 887_042, 124_942_082)):  # fmt: skip
    """A minimal GLUE record; ``lr`` and ``train`` land in its resolved config."""
    tag = "-".join(f"{k}{v}" for k, v in sorted(method.items()))
    rid = f"{model}-{task}-{tag}-s{seed}-{lr}-{train}".replace("'", "")
    config = {"notes": "a note", "seed": seed, "row": f"preset_s{seed}", "model": {"name": model}, "method": method,
              "task": {"name": task}, "paths": {"results_dir": str(tmp_path)},
              "data": {"dir": f"/data/{seed}", "max_train_samples": train},
              "train": {"lr": lr, "epochs": 3}}  # fmt: skip
    write_atomic(
        tmp_path / "runs" / experiment / f"{rid}.json",
        {
            "schema_version": SCHEMA_VERSION, "status": "ok", "experiment": experiment,
            "model": model, "task": task, "method": method, "seed": seed,
            "metrics": {"main": score},
            "params": dict(zip(("method", "trainable", "total"), params, strict=True)),
            "data": {"train_size": train or 100}, "config": config, "provenance": PROVENANCE,
        },
    )  # fmt: skip


def _rows(md: str, model: str = "roberta-base") -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in md.splitlines() if line.startswith(f"| {model}")]  # fmt: skip


def _header(md: str) -> list[str]:
    line = next(line for line in md.splitlines() if line.startswith("| Model"))
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_median_and_range_over_seeds_and_paper_rows(tmp_path):
    for seed, score in enumerate([0.80, 0.90, 0.85]):
        _record(tmp_path, "t2", "roberta-base", "rte", LORA, seed, score)
    for seed, score in enumerate([0.50, 0.70, 0.60]):
        _record(tmp_path, "t2", "roberta-base", "sst2", LORA, seed, score)
    (tmp_path / "runs" / "t2" / "ignored.failed.json").write_text('{"status": "failed"}')
    write_tables(tmp_path, "t2")
    md = (tmp_path / "tables" / "t2.md").read_text()
    (cells,) = _rows(md)
    # model, method, paper count, with head, total, SST-2, RTE, Avg, seeds: the seeds (and
    # data.dir, which differs per seed here) pool into one row
    assert cells[1] == "LoRA (r=8, W_q,W_v)" and cells[2] == "0.29M"
    assert cells[5:] == ["60.0 (50.0–70.0)", "85.0 (80.0–90.0)", "72.5", "3"]
    assert "*RoB-base (LoRA)*" in md and "*95.1*" in md and "*86.6*" in md
    rows = list(csv.DictReader((tmp_path / "tables" / "t2.csv").read_text().splitlines()))
    assert [r["source"] for r in rows] == ["ours", "paper"]
    assert (rows[0]["SST-2"], rows[0]["sst2_min"], rows[0]["sst2_max"]) == ("60.0", "50.0", "70.0")
    assert rows[0]["params_method"] == "294912" and rows[0]["stale"] == "false"
    assert "a note" in md
    assert md.rstrip().endswith("Built from 6 runs at commit 0123456, finished 2026-11-22.")


def test_two_learning_rates_stay_two_rows_with_an_lr_column(tmp_path):
    for lr, score in ((5e-4, 0.80), (1e6, 0.50), (1e30, 0.47)):
        _record(tmp_path, "lrs", "roberta-base", "rte", LORA, 42, score, lr=lr)
    write_tables(tmp_path, "lrs")
    md = (tmp_path / "tables" / "lrs.md").read_text()
    header = _header(md)
    assert "lr" in header and "epochs" not in header and "dir" not in header
    by_lr = {cells[header.index("lr")]: cells[header.index("RTE")] for cells in _rows(md)}
    assert by_lr == {"0.0005": "80.0", "1e+06": "50.0", "1e+30": "47.0"}
    assert all(cells[-1] == "1" for cells in _rows(md))


def test_data_size_sweep_splits_rows_but_per_task_settings_do_not(tmp_path):
    # Table 9 style: lr differs per task, constant within a task -> one row, "per task"
    for task, lr in (("rte", 5e-4), ("mrpc", 4e-4)):
        for train in (100, 1000):
            _record(tmp_path, "size", "roberta-base", task, LORA, 1, 0.7, lr=lr, train=train)
    write_tables(tmp_path, "size")
    md = (tmp_path / "tables" / "size.md").read_text()
    header = _header(md)
    rows = _rows(md)
    assert len(rows) == 2 and "max_train_samples" in header and "lr" not in header
    assert sorted(r[header.index("max_train_samples")] for r in rows) == ["100", "1000"]
    assert all(r[header.index("MRPC")] == "70.0" and r[header.index("RTE")] == "70.0" for r in rows)
    assert "Training examples per task: MRPC 100/1,000, RTE 100/1,000." in md


def test_method_settings_outside_the_label_become_columns(tmp_path):
    for alpha, score in ((8, 0.6), (16, 0.7)):
        _record(tmp_path, "alpha", "roberta-base", "rte", {**LORA, "lora_alpha": alpha}, 1, score)
    _record(tmp_path, "alpha", "roberta-base", "rte", {"name": "full_ft"}, 1, 0.8)
    write_tables(tmp_path, "alpha")
    md = (tmp_path / "tables" / "alpha.md").read_text()
    header = _header(md)
    assert "lora_alpha" in header and "r" not in header
    cells = {(r[1], r[header.index("lora_alpha")]): r[header.index("RTE")] for r in _rows(md)}
    assert cells == {("FT", ""): "80.0", ("LoRA (r=8, W_q,W_v)", "8"): "60.0",
                     ("LoRA (r=8, W_q,W_v)", "16"): "70.0"}  # fmt: skip


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


def _with_outputs(tmp_path, method, task, seed, pred, label, heldout=0.5):
    """A record with per-example dev outputs (``predictions.heldout``) and held-out
    selection, as the demo writes them."""
    import json

    rid = f"m-{task}-{method['name']}-s{seed}"
    score = sum(p == y for p, y in zip(pred, label, strict=True)) / len(pred)
    config = {"seed": seed, "row": method["name"], "model": {"name": "minilm-l6"},
              "method": method, "task": {"name": task}, "data": {"max_train_samples": 8},
              "train": {"lr": 1e-3 if method["name"] == "lora" else 1e-4, "epochs": 2}}  # fmt: skip
    outputs = {"split": "dev", "epoch": 2.0, "pred": pred, "label": label,
               "index": list(range(len(pred)))}  # fmt: skip
    record = {
        "schema_version": SCHEMA_VERSION, "status": "ok", "experiment": "cmp",
        "model": "minilm-l6", "task": task, "method": method, "seed": seed, "run_id": rid,
        "metrics": {"main": score, "heldout": {"epoch": 2.0, "score": heldout, "main": score}},
        "epochs": [{"epoch": 1.0, "eval_heldout_accuracy": 0.4},
                   {"epoch": 2.0, "eval_heldout_accuracy": heldout}],
        "predictions": {"heldout": outputs, "best": outputs},
        "params": {"method": 10, "trainable": 10, "total": 100},
        "data": {"train_size": 8}, "config": config, "provenance": PROVENANCE,
    }  # fmt: skip
    write_atomic(tmp_path / "runs" / "cmp" / f"{rid}.json", json.loads(json.dumps(record)))


def test_difference_from_ft_with_interval_and_verdict(tmp_path):
    import numpy as np

    from experiments.report.stats import paired_bootstrap

    label = [1, 0] * 50
    ft = {s: [1 - y if i < 10 + s else y for i, y in enumerate(label)] for s in (1, 2, 3)}
    lora = {s: [1 - y if i < 30 else y for i, y in enumerate(label)] for s in (1, 2, 3)}
    for s in (1, 2, 3):
        _with_outputs(tmp_path, {"name": "full_ft"}, "sst2", s, ft[s], label)
        _with_outputs(tmp_path, LORA, "sst2", s, lora[s], label)
    write_tables(tmp_path, "cmp")
    md = (tmp_path / "tables" / "cmp.md").read_text()
    section = md.split("## Difference from FT\n")[1]
    row = next(line for line in section.splitlines() if line.startswith("| LoRA"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # FT misses 11, 12, 13 of 100 by seed, LoRA 30: Δ = mean(-19, -18, -17) = -18 points
    arrays = lambda preds: {s: (np.array(p), np.array(label), np.arange(100))  # noqa: E731
                            for s, p in preds.items()}  # fmt: skip
    expect = paired_bootstrap(arrays(lora), arrays(ft), "accuracy", n_resamples=2000)
    assert expect.diff == pytest.approx(-18.0)
    assert cells[1] == "0.001" and cells[2] == expect.cell() and cells[3] == "contradicts"
    assert cells[4] == expect.cell() and cells[5] == "contradicts"  # one task: avg = task
    assert "Held-out score by epoch (mean over seeds): SST-2 FT 40.0 → 50.0" in section
    with open(tmp_path / "tables" / "cmp.csv") as f:
        rows = list(csv.DictReader(f))
    got = next(r for r in rows if r["Method"].startswith("LoRA"))
    assert float(got["sst2_delta_mean"]) == pytest.approx(-18.0)
    assert float(got["sst2_delta_low"]) == round(expect.low, 4)
    assert got["sst2_delta_verdict"] == "contradicts" and got["avg_delta_verdict"] == "contradicts"
    # rebuilding gives the same bytes
    write_tables(tmp_path, "cmp")
    assert (tmp_path / "tables" / "cmp.md").read_text() == md


def test_records_without_outputs_leave_the_cells_empty_and_say_so(tmp_path):
    for s in (1, 2):
        _record(tmp_path, "old", "minilm-l6", "sst2", {"name": "full_ft"}, s, 0.8)
        _record(tmp_path, "old", "minilm-l6", "sst2", LORA, s, 0.7)
    write_tables(tmp_path, "old")
    md = (tmp_path / "tables" / "old.md").read_text()
    row = next(line for line in md.split("## Difference from FT\n")[1].splitlines()
               if line.startswith("| LoRA"))  # fmt: skip
    assert [c.strip() for c in row.strip("|").split("|")][2:] == ["", "", "", ""]
    assert "Intervals missing: 4 of 4 records predate per-example outputs" in md
