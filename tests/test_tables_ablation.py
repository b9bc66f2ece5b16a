"""Paper Tables 5, 6, 16 and 18 in the paper's layout, from hand-written records."""

from __future__ import annotations

import csv

from experiments.core.records import SCHEMA_VERSION, code_files, code_version, write_atomic
from experiments.report.specs import layout_for
from experiments.report.tables import write_tables

CURRENT = {"git_commit": "0123456789abcdef", "git_dirty": False, "code_files": code_files(),
           "code_version": code_version(code_files()),
           "finished_at": "2026-11-22T01:02:03+00:00"}  # fmt: skip
OLD = {"git_commit": "fedcba9876543210", "finished_at": "2026-11-01T01:02:03+00:00"}


def _glue(tmp_path, experiment, task, method, seed, score, *, lr=1e-3, train=750, epochs=2,
          stale=False):  # fmt: skip
    """A GLUE record whose resolved config holds ``method``, ``lr``, ``train``, ``epochs``."""
    tag = "-".join(f"{k}{v}" for k, v in sorted(method.items()))
    rid = f"minilm-l6-{task}-{tag}-s{seed}-{lr}-{train}-{epochs}".replace("'", "")
    config = {"notes": "preset note", "seed": seed, "model": {"name": "minilm-l6"},
              "method": method, "task": {"name": task}, "paths": {"results_dir": "x"},
              "data": {"dir": "/data", "max_train_samples": train},
              "train": {"lr": lr, "epochs": epochs}}  # fmt: skip
    write_atomic(tmp_path / "runs" / experiment / f"{rid}.json", {
        "schema_version": SCHEMA_VERSION, "status": "ok", "experiment": experiment,
        "model": "minilm-l6", "task": task, "method": method, "seed": seed,
        "metrics": {"main": score}, "params": {"method": 36_864, "trainable": 37_634,
                                               "total": 22_750_000},
        "data": {"train_size": train}, "config": config,
        "provenance": OLD if stale else CURRENT})  # fmt: skip


def _e2e(tmp_path, experiment, r, seed, bleu, dev_loss, max_mrs=32, targets=("q", "v")):
    method = {"name": "lora", "r": r, "lora_alpha": 32, "targets": list(targets)}
    config = {"seed": seed, "model": {"name": "smollm2-135m"}, "method": method,
              "task": {"name": "e2e", "decode": {"max_mrs": max_mrs}},
              "data": {"max_train_samples": 256}, "train": {"lr": 1e-3, "epochs": 2}}  # fmt: skip
    test = {"BLEU": bleu, "NIST": 4.0, "METEOR": 0.37, "ROUGE_L": 0.64, "CIDEr": 1.7}
    name = f"e2e-{''.join(targets)}-r{r}-s{seed}-{max_mrs}"
    write_atomic(tmp_path / "runs" / experiment / f"{name}.json", {
        "schema_version": SCHEMA_VERSION, "status": "ok", "experiment": experiment,
        "model": "smollm2-135m", "task": "e2e", "method": method, "seed": seed,
        "metrics": {"test": test, "best_epoch": 2.0, "best": {"dev_loss": dev_loss},
                    "main": bleu},
        "params": {"method": 230_400 * r // 4, "trainable": 230_400 * r // 4,
                   "total": 134_515_008},
        "data": {"train_size": 256, "train_available": 42_061,
                 "eval_sizes": {"dev": 96, "test_mrs": max_mrs}, "test_references": 264},
        "decode": {"num_beams": 10}, "config": config, "provenance": CURRENT})  # fmt: skip


def _table(md: str) -> list[list[str]]:
    """The first Markdown table's rows (header first), cells stripped."""
    lines = [ln for ln in md.split("\n\n")[1].splitlines() if not ln.startswith("|---")]
    return [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines]


def test_layout_for_picks_by_experiment_prefix():
    assert layout_for("table5_minilm") is not None and layout_for("table18_smollm2") is not None
    assert layout_for("table2_roberta_base") is None and layout_for("demo") is None
    assert layout_for("table5") is None


def test_table5_columns_are_configurations_with_paper_values_beneath(tmp_path):
    for seed, (q, qv) in enumerate([(0.80, 0.85), (0.82, 0.83), (0.90, 0.84)], start=1):
        _glue(tmp_path, "table5_minilm", "sst2", {"name": "lora", "r": 8, "targets": ["q"]},
              seed, q)  # fmt: skip
        _glue(tmp_path, "table5_minilm", "sst2", {"name": "lora", "r": 4, "targets": ["q", "v"]},
              seed, qv)  # fmt: skip
    _glue(tmp_path, "table5_minilm", "mrpc", {"name": "lora", "r": 4, "targets": ["q", "v"]}, 1,
          0.70)  # fmt: skip
    write_tables(tmp_path, "table5_minilm")
    md = (tmp_path / "tables" / "table5_minilm.md").read_text()
    rows = {row[0]: row[1:] for row in _table(md)}
    assert rows["Weight type"] == ["W_q", "W_q,W_v"]  # the paper's column order
    assert rows["Rank r"] == ["8", "4"] and rows["# Params (paper count)"] == ["36.9K", "36.9K"]
    assert rows["SST-2"] == ["82.0 (80.0–90.0)", "84.0 (83.0–85.0)"]
    assert rows["MRPC"] == ["", "70.0"] and rows["Seeds"] == ["3", "1–3"]
    assert rows["*paper: WikiSQL (±0.5%)*"] == ["*70.4*", "*73.7*"]
    assert "preset note" in md and "Built from 7 runs at commit 0123456" in md
    ours = [r for r in csv.DictReader((tmp_path / "tables" / "table5_minilm.csv").open())
            if r["source"] == "ours"]  # fmt: skip
    assert {(r["task"], r["weight_type"], r["score"]) for r in ours} == {
        ("sst2", "W_q", "82.00"),
        ("sst2", "W_q,W_v", "84.00"),
        ("mrpc", "W_q,W_v", "70.00"),
    }


def test_table5_never_pools_two_learning_rates(tmp_path):
    method = {"name": "lora", "r": 8, "targets": ["v"]}
    _glue(tmp_path, "table5_x", "sst2", method, 1, 0.80, lr=1e-3)
    _glue(tmp_path, "table5_x", "sst2", method, 1, 0.60, lr=1e-4, stale=True)
    write_tables(tmp_path, "table5_x")
    md = (tmp_path / "tables" / "table5_x.md").read_text()
    rows = {row[0]: row[1:] for row in _table(md)}
    assert rows["Weight type"] == ["W_v", "W_v‡"] or rows["Weight type"] == ["W_v‡", "W_v"]
    by_lr = dict(zip(rows["lr"], rows["SST-2"], strict=True))
    assert by_lr == {"0.001": "80.0", "0.0001": "60.0"}
    assert "‡ made by older code" in md and "commits 0123456" in md


def test_table5_on_e2e_has_bleu_and_dev_loss_rows_mean_and_std(tmp_path):
    for seed, bleu, loss in ((1, 0.50, 2.90), (2, 0.54, 2.86)):
        _e2e(tmp_path, "table5_smollm2", 4, seed, bleu, loss)
        _e2e(tmp_path, "table5_smollm2", 8, seed, bleu - 0.1, loss + 0.1, targets=("k",))
    write_tables(tmp_path, "table5_smollm2")
    md = (tmp_path / "tables" / "table5_smollm2.md").read_text()
    table = _table(md)
    assert table[0] == ["Weight type", "W_k", "W_q,W_v"]
    assert ["E2E BLEU", "42.0±2.8", "52.0±2.8"] in table
    assert ["E2E val loss", "2.980±0.028", "2.880±0.028"] in table
    assert ["Seeds", "2", "2"] in table
    assert "E2E rows: BLEU ×100" in md and "Dev scores ×100 (accuracy" not in md
    with open(tmp_path / "tables" / "table5_smollm2.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["source"] == "ours"]
    assert {(r["task"], r["weight_type"], r["score"]) for r in rows} == {
        ("e2e_BLEU", "W_k", "42"), ("e2e_BLEU", "W_q,W_v", "52"),
        ("e2e_dev_loss", "W_k", "2.98"), ("e2e_dev_loss", "W_q,W_v", "2.88")}  # fmt: skip


def test_table6_rows_are_task_and_matrices_columns_r(tmp_path):
    for r, base in ((1, 0.70), (8, 0.80)):
        for targets, bump in ((["q"], 0.0), (["q", "v"], 0.05)):
            for seed, noise in ((1, 0.0), (2, 0.02)):
                _glue(tmp_path, "table6_minilm", "sst2",
                      {"name": "lora", "r": r, "lora_alpha": 16, "targets": targets}, seed,
                      base + bump + noise)  # fmt: skip
    write_tables(tmp_path, "table6_minilm")
    md = (tmp_path / "tables" / "table6_minilm.md").read_text()
    table = _table(md)
    assert table[0] == ["Task", "Weight type", "r=1", "r=2", "r=4", "r=8", "r=64", "Seeds"]
    assert table[1] == ["SST-2", "W_q", "71.0 (70.0–72.0)", "", "", "81.0 (80.0–82.0)", "", "2"]
    assert table[2][1] == "W_q,W_v" and table[2][2] == "76.0 (75.0–77.0)"
    paper = [row for row in table if row[0].startswith("*paper")]
    assert len(paper) == 6 and paper[0][2:7] == ["*68.8*", "*69.6*", "*70.5*", "*70.4*", "*70.0*"]
    assert (tmp_path / "tables" / "table6_minilm_rank.png").is_file()
    assert "![dev score against rank](table6_minilm_rank.png)" in md


def test_table16_columns_are_data_sizes_with_their_epochs(tmp_path):
    lora = {"name": "lora", "r": 8, "targets": ["q", "v"]}
    ft = {"name": "full_ft"}
    for train, epochs, score in ((100, 20, 0.60), (1000, 5, 0.75)):
        _glue(tmp_path, "table16_sst2", "sst2", lora, 1, score, train=train, epochs=epochs)
        _glue(tmp_path, "table16_sst2", "sst2", ft, 1, score - 0.1, lr=1e-4, train=train,
              epochs=epochs)  # fmt: skip
    # the same size trained for other epochs is another column, never pooled
    _glue(tmp_path, "table16_sst2", "sst2", lora, 1, 0.50, train=100, epochs=3)
    write_tables(tmp_path, "table16_sst2")
    md = (tmp_path / "tables" / "table16_sst2.md").read_text()
    table = _table(md)
    assert table[0] == ["Method", "lr", "100 ex., 3 ep.", "100 ex., 20 ep.", "1,000 ex., 5 ep.",
                        "Seeds"]  # fmt: skip
    assert table[1] == ["FT", "0.0001", "", "50.0", "65.0", "1"]
    assert table[2] == ["LoRA (r=8, W_q,W_v)", "0.001", "50.0", "60.0", "75.0", "1"]
    assert "| GPT-3 (LoRA) | 63.8 | 85.6 | 89.2 | 91.7 |" in md
    assert "GPT-3 (PrefixEmbed)" not in md  # only the methods we ran
    # the order at each size the paper ran, on the column of that size we can rank
    assert "- 100 examples: ours LoRA > FT; paper LoRA > FT (same order)" in md
    assert "- 1,000 examples: ours LoRA > FT; paper FT > LoRA (**order differs**)" in md
    assert "100 examples: ours LoRA; " not in md  # 3 epochs: LoRA alone, nothing to order


def test_table18_rows_are_r_with_the_paper_beside(tmp_path):
    for r in (4, 1):
        for seed, bleu in ((1, 0.40), (2, 0.50)):
            _e2e(tmp_path, "table18_smollm2", r, seed, bleu + r / 100, 3.0 + r / 10)
    _e2e(tmp_path, "table18_smollm2", 4, 1, 0.60, 3.0, max_mrs=64)  # other decoding: own row
    write_tables(tmp_path, "table18_smollm2")
    md = (tmp_path / "tables" / "table18_smollm2.md").read_text()
    table = _table(md)
    assert table[0][:5] == ["r", "max_mrs", "val loss", "paper", "BLEU"]
    assert table[1][:6] == ["1", "32", "3.10±0.00", "*1.23*", "46.00±7.07", "*68.72*"]
    assert [row[:2] for row in table[2:]] == [["4", "32"], ["4", "64"]]
    assert table[2][-1] == "2" and table[3][-1] == "1"
    assert "the paper also has r = 2, 8, 16" in md
    rows = list(csv.DictReader((tmp_path / "tables" / "table18_smollm2.csv").open()))
    assert sum(r["source"] == "paper" for r in rows) == 11
