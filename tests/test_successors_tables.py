"""The successors comparison table from fixture records: the chosen lr is the
best held-out trial, both protocols over seeds, cost ratios against LoRA, Pareto plot."""

from __future__ import annotations

import csv
import json

from experiments.core.records import SCHEMA_VERSION
from experiments.core.selection import chosen_lr, config_key
from experiments.perf import latency
from experiments.report.successors_tables import beats_reference, summarize
from experiments.report.tables import write_tables
from tests.test_latency import TINY_BERT, compose_latency, fake_timer

EXP = "successors_fixture"
METHODS = {
    "adapter_h": {"name": "adapter_h", "r": 8},
    "lora": {"name": "lora", "r": 8, "lora_alpha": 16, "targets": ["q", "v"]},
    "dora": {"name": "lora", "r": 8, "lora_alpha": 16, "targets": ["q", "v"], "use_dora": True},
    "full_ft": {"name": "full_ft"},
}
PARAMS = {"adapter_h": 78432, "lora": 73728, "dora": 76800, "full_ft": 22_700_000}


def record(row, task, seed, lr, paper, heldout_dev, heldout_score, train_seconds=20.0,
           rss=1000.0):  # fmt: skip
    """An ok GLUE record with held-out selection; 2 epochs of 25 steps, 2 s of eval each."""
    return {
        "schema_version": SCHEMA_VERSION, "status": "ok", "experiment": EXP,
        "model": "minilm-l6", "task": task, "method": METHODS[row], "seed": seed,
        "run_id": f"{row}-{task}-{seed}-{lr}",
        "config": {"row": row, "seed": seed, "notes": "Fixture notes.",
                   "train": {"lr": lr, "batch_size": 16, "gradient_accumulation_steps": 1,
                             "epochs": 2, "max_steps": -1},
                   "data": {"heldout": 150, "max_train_samples": 400}},
        "metrics": {"main": paper, "main_metric": "accuracy", "best_epoch": 2.0,
                    "heldout": {"epoch": 1.0, "score": heldout_score, "main": heldout_dev}},
        "epochs": [{"epoch": 1.0, "eval_dev_runtime": 1.5, "eval_heldout_runtime": 0.5},
                   {"epoch": 2.0, "eval_dev_runtime": 1.5, "eval_heldout_runtime": 0.5}],
        "params": {"method": PARAMS[row], "trainable": PARAMS[row] + 770, "total": 22_700_000},
        "timing": {"train_seconds": train_seconds},
        "memory": {"peak_rss_mb": rss, "peak_gpu_mb": None},
        "data": {"train_size": 400, "eval_sizes": {"dev": 300, "heldout": 150}},
        "provenance": {"git_commit": "abcdef0123", "git_dirty": False,
                       "finished_at": "2026-12-04T23:00:00+00:00"},
    }  # fmt: skip


def fixture_records():
    recs = [
        # LoRA on SST-2: lr 1e-3 has the best dev score, 3e-4 the best held-out score
        record("lora", "sst2", 1, 1e-3, 0.90, 0.88, 0.80),
        record("lora", "sst2", 1, 3e-4, 0.86, 0.85, 0.84),
        record("lora", "sst2", 1, 1e-5, 0.60, 0.60, 0.55),
        record("lora", "sst2", 2, 3e-4, 0.87, 0.86, 0.83),
        record("lora", "sst2", 3, 3e-4, 0.85, 0.84, 0.82),
        # DoRA: every seed above LoRA's best (held-out protocol); 1.5x LoRA's step time
        record("dora", "sst2", 1, 2e-3, 0.91, 0.90, 0.88, train_seconds=29.0, rss=1100.0),
        record("dora", "sst2", 1, 1e-4, 0.80, 0.80, 0.70, train_seconds=29.0, rss=1100.0),
        record("dora", "sst2", 1, 1e-2, 0.70, 0.70, 0.60, train_seconds=29.0, rss=1100.0),
        record("dora", "sst2", 2, 2e-3, 0.90, 0.89, 0.87, train_seconds=29.0, rss=1100.0),
        record("dora", "sst2", 3, 2e-3, 0.92, 0.91, 0.86, train_seconds=29.0, rss=1100.0),
        # FT on SST-2 only: no average
        record("full_ft", "sst2", 1, 1e-4, 0.88, 0.86, 0.85),
        record("full_ft", "sst2", 2, 1e-4, 0.80, 0.79, 0.80),
        # MRPC: LoRA only
        record("lora", "mrpc", 1, 5e-4, 0.70, 0.70, 0.70),
        record("lora", "mrpc", 2, 5e-4, 0.72, 0.71, 0.70),
    ]
    return recs


def test_the_chosen_lr_is_the_best_held_out_trial_not_the_best_dev_score():
    recs = fixture_records()
    assert chosen_lr(recs, "lora", "sst2", seed=1) == (3e-4, 3)
    assert chosen_lr(recs, "dora", "sst2", seed=1) == (2e-3, 3)
    assert chosen_lr(recs, "lora", "cola", seed=1) is None
    units = summarize(recs)
    lora = units[("lora", "sst2")]
    assert [r["seed"] for r in lora["records"]] == [1, 2, 3]
    assert lora["paper"] == [86.0, 87.0, 85.0] and lora["heldout"] == [85.0, 86.0, 84.0]
    # (20 s - 4 s of evaluation) / (2 epochs x 25 steps)
    assert lora["step_s"] == 16.0 / 50
    assert beats_reference(units) == [("dora", "sst2")]


def test_table_and_pareto_plot_from_records(tmp_path):
    runs = tmp_path / "runs" / EXP
    runs.mkdir(parents=True)
    for i, r in enumerate(fixture_records()):
        (runs / f"r{i}.json").write_text(json.dumps(r))
    written = write_tables(tmp_path, EXP)
    tables = tmp_path / "tables"
    assert set(written) == {tables / f"{EXP}.md", tables / f"{EXP}.csv",
                            tables / f"{EXP}_pareto.png"}  # fmt: skip
    assert (tables / f"{EXP}_pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tables / f"{EXP}.md").read_text()
    lines = md.splitlines()
    assert "Fixture notes." in md
    assert (
        "| Method | Params | SST-2 (accuracy) paper | SST-2 held-out | MRPC (accuracy) paper | MRPC held-out | Avg held-out |"
        in lines
    )  # noqa: E501
    assert "| FT | 22.70M | 84.0 [80.0, 88.0] | 82.5 [79.0, 86.0] |  |  |  |" in lines
    assert (
        "| LoRA | 73.7K | 86.0 [85.0, 87.0] | 85.0 [84.0, 86.0] | 71.0 [70.0, 72.0] | 70.5 [70.0, 71.0] | 77.8 |"
        in lines
    )  # noqa: E501
    assert "| DoRA | 76.8K | 91.0 [90.0, 92.0] | 90.0 [89.0, 91.0] |  |  |  |" in lines
    # search and cost: lr (trials), seeds; DoRA at 1.5x LoRA's step time, 1.1x its memory
    assert "| LoRA | 0.0003 (3), 3 | 0.0005 (1), 2 | 1.00× | 1.00× |" in lines
    assert "| DoRA | 0.002 (3), 3 |  | 1.56× | 1.10× |" in lines
    assert "held-out protocol): DoRA on SST-2." in md
    assert "Inference latency: not measured yet (no `successors_fixture_latency` record" in md
    assert "![Score against trainable parameters](successors_fixture_pareto.png)" in md
    assert "Built from 10 runs at commit abcdef0" in md
    with open(tables / f"{EXP}.csv") as f:
        rows = {(r["method"], r["task"]): r for r in csv.DictReader(f)}
    assert float(rows[("lora", "sst2")]["lr"]) == 3e-4 and rows[("lora", "sst2")]["trials"] == "3"
    assert float(rows[("dora", "sst2")]["step_time_vs_lora"]) == round(25 / 16, 3)


def test_records_of_another_configuration_are_never_pooled_or_chosen():
    recs = fixture_records()
    other = record("lora", "sst2", 1, 1e-2, 0.99, 0.99, 0.99)
    other["config"]["data"]["max_train_samples"] = 2000  # another data size, same folder
    lora_key = config_key(recs[0])
    assert config_key(other) != lora_key
    assert chosen_lr(recs + [other], "lora", "sst2", 1) == (1e-2, 4)  # unfiltered: mixed
    assert chosen_lr(recs + [other], "lora", "sst2", 1, lora_key) == (3e-4, 3)
    units = summarize(recs + [other])
    assert ("lora", "sst2") not in units and ("dora", "sst2") in units


def _latency_record(tmp_path, *overrides):
    """A latency record of the fixture's methods on a tiny MiniLM layout; every ratio 1."""
    lora = "{name:lora,r:8,lora_alpha:16,targets:[q,v]}"
    dora_r16 = "{name:lora,r:16,lora_alpha:16,targets:[q,v],use_dora:true}"  # not what ran
    cfg = compose_latency(["preset=successors", "model=minilm-l6", TINY_BERT,
                           "grid=[[1,8],[2,8]]", "trials=1", "warmup=0",
                           f"merged={{lora:{lora},dora:{dora_r16}}}", f"name={EXP}_latency",
                           f"results_dir={tmp_path}", *overrides])  # fmt: skip
    latency.run(cfg, timer=fake_timer)
    (path,) = (tmp_path / "runs" / "latency").glob("*.json")
    return path, json.loads(path.read_text())


def test_the_latency_column_comes_from_a_latency_record_of_the_same_settings(tmp_path):
    runs = tmp_path / "runs" / EXP
    runs.mkdir(parents=True)
    adapter = [record("adapter_h", "sst2", seed, 1e-3, 0.8, 0.8, 0.8) for seed in (1, 2)]
    for i, r in enumerate(fixture_records() + adapter):
        (runs / f"r{i}.json").write_text(json.dumps(r))
    path, timed = _latency_record(tmp_path)
    timed["settings"]["arch_overrides"] = {}  # as the real job: MiniLM-L6's own size
    timed["points"][0]["results"]["merged-lora"]["ratio"] = 1.04
    timed["points"][1]["results"]["adapter_h-r8"]["ratio"] = 1.3
    path.write_text(json.dumps(timed))
    write_tables(tmp_path, EXP)
    lines = (tmp_path / "tables" / f"{EXP}.md").read_text().splitlines()
    assert any("| Peak memory ×LoRA | Inference latency ×base (1×8 / 2×8) |" in ln for ln in lines)
    assert "| LoRA | 0.0003 (3), 3 | 0.0005 (1), 2 | 1.00× | 1.00× | 1.04× / 1.00× |" in lines
    assert "| FT | 0.0001 (1), 2 |  | 1.00× | 1.00× | 1.00× / 1.00× |" in lines  # the base
    assert "| DoRA | 0.002 (3), 3 |  | 1.56× | 1.10× |  |" in lines  # timed at r=16: blank
    assert "| AdapterH | 0.001 (1), 2 |  | 1.00× | 1.00× | 1.00× / 1.30× |" in lines
    assert any(ln.startswith("Built from 13 runs") for ln in lines)  # the latency record too
    with open(tmp_path / "tables" / f"{EXP}.csv") as f:
        rows = {(r["method"], r["task"]): r for r in csv.DictReader(f)}
    assert rows[("lora", "sst2")]["latency_vs_base_1x8"] == "1.04"
    assert rows[("dora", "sst2")]["latency_vs_base_1x8"] == ""


def test_a_latency_record_of_another_model_size_fills_no_cell(tmp_path):
    runs = tmp_path / "runs" / EXP
    runs.mkdir(parents=True)
    for i, r in enumerate(fixture_records()):
        (runs / f"r{i}.json").write_text(json.dumps(r))
    _latency_record(tmp_path)  # tiny arch_overrides: not the MiniLM-L6 the runs trained
    write_tables(tmp_path, EXP)
    lines = (tmp_path / "tables" / f"{EXP}.md").read_text().splitlines()
    assert "| LoRA | 0.0003 (3), 3 | 0.0005 (1), 2 | 1.00× | 1.00× |  |" in lines
    assert "| FT | 0.0001 (1), 2 |  | 1.00× | 1.00× |  |" in lines


def test_difference_from_lora_is_the_paired_bootstrap_on_the_chosen_lrs_outputs(tmp_path):
    import numpy as np

    from experiments.report.stats import paired_bootstrap_average

    y = np.arange(40) % 2
    wrong = {"lora": 8, "dora": 2, "adapter_h": 8}  # errors per seed of 40 dev examples

    def preds(row, seed):
        p = y.copy()
        p[(np.arange(wrong[row]) * 3 + seed) % 40] ^= 1
        return p

    recs = []
    for row in wrong:
        for seed in (1, 2, 3):
            r = record(row, "sst2", seed, 1e-3, 0.8, 0.8, 0.8)
            r["predictions"] = {
                "heldout": {
                    "split": "dev",
                    "epoch": 1.0,
                    "index": list(range(40)),
                    "pred": preds(row, seed).tolist(),
                    "label": y.tolist(),
                }
            }
            recs.append(r)
    runs = tmp_path / "runs" / EXP
    runs.mkdir(parents=True)
    for r in recs:
        (runs / f"{r['run_id']}.json").write_text(json.dumps(r))
    write_tables(tmp_path, EXP)
    md = (tmp_path / "tables" / f"{EXP}.md").read_text()
    section = md.split("## Difference from LoRA")[1]
    want = paired_bootstrap_average(
        [({s: (preds("dora", s), y, np.arange(40)) for s in (1, 2, 3)},
          {s: (preds("lora", s), y, np.arange(40)) for s in (1, 2, 3)}, "accuracy")],
        n_resamples=2000)  # fmt: skip
    assert abs(want.diff - 15.0) < 1e-9 and want.low > 0  # 6 fewer errors of 40 per seed
    dora = next(line for line in section.splitlines() if line.startswith("| DoRA"))
    assert f"| {want.cell(1)} | agrees |" in dora
    adapter = next(line for line in section.splitlines() if line.startswith("| AdapterH"))
    assert "| +0.0 [+0.0, +0.0] | agrees |" in adapter  # the same predictions as LoRA
    beyond = "Beyond LoRA's interval (the whole interval above 0): DoRA on SST-2"
    assert f"{beyond} {want.cell(1)}." in md  # one task: no separate average
    with open(tmp_path / "tables" / f"{EXP}.csv") as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert float(rows["dora"]["delta_vs_lora"]) == 15.0 and rows["lora"]["verdict"] == ""
    assert rows["dora"]["verdict"] == "agrees"


def test_borrowed_rows_come_from_sources_of_the_same_budget_each_run_once(tmp_path, monkeypatch):
    from experiments.report import successors_tables

    monkeypatch.setitem(successors_tables.BORROWED, EXP, (("demo_fx", "search_fx"), ("lora",)))
    own = [r for r in fixture_records() if r["config"]["row"] == "dora"]
    seeds = [r for r in fixture_records() if r["config"]["row"] == "lora" and r["task"] == "sst2"]
    trials = [r for r in seeds if r["seed"] == 1]  # the search: 3 lrs at seed 1
    other = record("lora", "sst2", 2, 3e-4, 0.99, 0.99, 0.99)
    other["config"]["data"]["max_train_samples"] = 2000  # another budget: never borrowed
    other["run_id"] += "-2000"
    ft = record("full_ft", "sst2", 1, 1e-4, 0.88, 0.86, 0.85)  # not a borrowed row
    for exp, recs in ((EXP, own), ("demo_fx", [*seeds, other, ft]), ("search_fx", trials)):
        folder = tmp_path / "runs" / exp
        folder.mkdir(parents=True)
        for r in recs:
            (folder / f"{r['run_id']}.json").write_text(json.dumps({**r, "experiment": exp}))
    got = successors_tables.with_borrowed(tmp_path, EXP, own)
    runs = sorted((r["config"]["row"], r["seed"], r["config"]["train"]["lr"]) for r in got)
    assert runs == sorted([("dora", r["seed"], r["config"]["train"]["lr"]) for r in own]
                          + [("lora", r["seed"], r["config"]["train"]["lr"]) for r in seeds])  # fmt: skip
    assert got[-1] is own[-1]  # the experiment's own notes
    write_tables(tmp_path, EXP)
    md = (tmp_path / "tables" / f"{EXP}.md").read_text().splitlines()
    assert "| LoRA | 0.0003 (3), 3 | 1.00× | 1.00× |" in md
    assert not (tmp_path / "tables" / "demo_fx.md").exists()
    # a row the experiment runs itself is never borrowed
    assert successors_tables.with_borrowed(tmp_path, EXP, seeds) == seeds


def test_a_comparison_preset_gets_its_title_claim_and_settings_labels(tmp_path):
    from experiments.report.successors_tables import COMPARISONS

    exp = "parity_target_lr"
    METHODS["all_r2"] = {"name": "lora", "r": 2, "lora_alpha": 16, "targets": "all-linear"}
    PARAMS["all_r2"] = 82944
    try:
        recs = [record("lora", "sst2", s, 3e-3, 0.86, 0.85, 0.84) for s in (1, 2)]
        recs += [record("all_r2", "sst2", s, 1e-3, 0.80, 0.80, 0.80) for s in (1, 2)]
    finally:
        del METHODS["all_r2"], PARAMS["all_r2"]
    folder = tmp_path / "runs" / exp
    folder.mkdir(parents=True)
    for r in recs:
        (folder / f"{r['run_id']}.json").write_text(json.dumps({**r, "experiment": exp}))
    write_tables(tmp_path, exp)
    md = (tmp_path / "tables" / f"{exp}.md").read_text()
    assert md.startswith(f"# {exp}: {COMPARISONS[exp][0]}\n")
    assert "| LoRA (r=2, all-linear) | 82.9K | 80.0 [80.0, 80.0] |" in md
    assert COMPARISONS[exp][1].text in md
