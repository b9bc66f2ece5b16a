"""E2E and WebNLG tables: every row's BLEU and test NLL against FT, from per-MR outputs."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from experiments.core.records import SCHEMA_VERSION, code_files, code_version, write_atomic
from experiments.e2e import mteval
from experiments.report.specs import WEBNLG
from experiments.report.stats import paired_bootstrap
from experiments.report.tables import write_tables

PROVENANCE = {"git_commit": "0123456789abcdef", "git_dirty": False, "code_files": code_files(),
              "code_version": code_version(code_files()),
              "finished_at": "2026-12-08T01:02:03+00:00"}  # fmt: skip
LORA = {"name": "lora", "r": 4, "lora_alpha": 32, "targets": ["q", "v"]}
FT = {"name": "full_ft"}
ADAPTER = {"name": "adapter_l", "r": 5}
N = 24  # test MRs
REFS = [[f"the venue {i} serves food near the river {i % 3}"] for i in range(N)]
TOKENS = [9 + i % 4 for i in range(N)]


def _outputs(seed: int, wrong: int, nll_per_token: float) -> dict:
    """Per-MR outputs as experiments/e2e/task.py stores them: the first ``wrong`` MRs
    decoded badly, every reference at ``nll_per_token`` nats (plus a little per MR)."""
    hyps = ["a pub" if i < wrong else REFS[i][0] for i in range(N)]
    return {"split": "test", "epoch": 2.0, "index": list(range(N)), "text": hyps,
            "nll_sum": [t * nll_per_token + 0.01 * ((i + seed) % 5) for i, t in enumerate(TOKENS)],
            "tokens": TOKENS, "bleu_stats": mteval.bleu_stats(REFS, hyps)}  # fmt: skip


def _e2e(tmp_path, method, seed, outputs=None, lr=1e-3):
    config = {"seed": seed, "model": {"name": "smollm2-135m"}, "method": method,
              "task": {"name": "e2e"}, "data": {"max_train_samples": 64},
              "train": {"lr": lr, "epochs": 2}}  # fmt: skip
    bleu = 0.0 if outputs is None else mteval.bleu(REFS, outputs["text"])
    record = {
        "schema_version": SCHEMA_VERSION, "status": "ok", "experiment": "nlg", "task": "e2e",
        "model": "smollm2-135m", "method": method, "seed": seed, "config": config,
        "metrics": {"main": bleu, "best_epoch": 2.0,
                    "test": {"BLEU": bleu, "NIST": 4.0, "METEOR": 0.37, "ROUGE_L": 0.6,
                             "CIDEr": 1.5}},
        "params": {"method": 10, "trainable": 10, "total": 100},
        "data": {"train_size": 64, "train_available": 42_061, "test_references": N,
                 "eval_sizes": {"dev": 16, "test_mrs": N}},
        "decode": {"num_beams": 10, "length_penalty": 0.9, "no_repeat_ngram_size": 4,
                   "max_new_tokens": 64},
        "provenance": PROVENANCE,
    }  # fmt: skip
    if outputs is not None:
        record["predictions"] = {"test": outputs}
    write_atomic(tmp_path / "runs" / "nlg" / f"{method['name']}-s{seed}.json", record)


def _section(md: str) -> dict[str, list[str]]:
    """The Difference-from-FT table: method label -> its cells after the label."""
    lines = md.split("## Difference from FT\n")[1].strip().split("\n\n")[0].splitlines()[2:]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return {r[0]: r[1:] for r in rows}


def _by_seed(outputs: dict[int, dict], metric: str) -> dict[int, tuple]:
    if metric == "bleu":
        return {s: (np.array(o["bleu_stats"]), np.zeros(N), np.arange(N))
                for s, o in outputs.items()}  # fmt: skip
    return {s: (np.array(o["nll_sum"]), np.array(o["tokens"]), np.arange(N))
            for s, o in outputs.items()}  # fmt: skip


def test_e2e_rows_get_bleu_and_nll_intervals_against_ft(tmp_path):
    ft = {s: _outputs(s, wrong=1 + s, nll_per_token=1.0) for s in (1, 2)}
    lora = {s: _outputs(s, wrong=8, nll_per_token=1.3) for s in (1, 2)}
    for s in (1, 2):
        _e2e(tmp_path, FT, s, ft[s], lr=1e-4)
        _e2e(tmp_path, LORA, s, lora[s])
        _e2e(tmp_path, ADAPTER, s)  # an older record: no per-MR outputs
    write_tables(tmp_path, "nlg")
    md = (tmp_path / "tables" / "nlg.md").read_text()
    rows = _section(md)
    bleu = paired_bootstrap(_by_seed(lora, "bleu"), _by_seed(ft, "bleu"), "bleu")
    nll = paired_bootstrap(_by_seed(lora, "nll"), _by_seed(ft, "nll"), "nll", scale=1.0)
    # LoRA gets 8 of 24 MRs wrong to FT's 2-3: far below FT's BLEU; its NLL 0.3 nats higher
    assert bleu.high < -1 and nll.diff == pytest.approx(0.3, abs=0.01) and nll.low > 0.05
    assert rows["FT"] == ["0.0001", "reference", "", "reference", ""]
    assert rows["LoRA (r=4, W_q,W_v)"] == ["0.001", bleu.cell(), "contradicts", nll.cell(3),
                                           "contradicts"]  # fmt: skip
    assert rows["AdapterL (r=5)"] == ["0.001", "", "", "", ""]
    assert "Intervals missing: 2 of 6 records predate per-input test outputs" in md
    assert "(Δ ≤ +0.05 nats per token)" in md and "(Δ ≥ −1 BLEU point)" in md
    with open(tmp_path / "tables" / "nlg.csv") as f:
        got = {r["Method"]: r for r in csv.DictReader(f) if r["source"] == "ours"}
    lo = got["LoRA (r=4, W_q,W_v)"]
    assert float(lo["BLEU_delta_mean"]) == round(bleu.diff, 4)
    assert float(lo["NLL_delta_low"]) == round(nll.low, 4)
    assert lo["NLL_delta_verdict"] == "contradicts"
    assert got["AdapterL (r=5)"]["BLEU_delta_mean"] == ""
    # the same outputs on both sides: no difference, and the verdicts agree with the claims
    for s in (1, 2):
        _e2e(tmp_path, LORA, s, ft[s])
    write_tables(tmp_path, "nlg")
    lora_row = _section((tmp_path / "tables" / "nlg.md").read_text())["LoRA (r=4, W_q,W_v)"]
    assert lora_row[1:] == ["+0.0 [+0.0, +0.0]", "agrees", "+0.000 [+0.000, +0.000]", "agrees"]


def test_records_without_outputs_still_tabulate_with_empty_cells(tmp_path):
    for s in (1, 2):
        _e2e(tmp_path, FT, s)
        _e2e(tmp_path, LORA, s)
    write_tables(tmp_path, "nlg")
    md = (tmp_path / "tables" / "nlg.md").read_text()
    assert _section(md)["LoRA (r=4, W_q,W_v)"] == ["0.001", "", "", "", ""]
    assert "Intervals missing: 4 of 4 records predate per-input test outputs" in md
    assert md.count("| smollm2-135m |") == 2  # the main table is unchanged


def test_webnlg_compares_the_test_nll_only():
    """WebNLG's BLEU is sacrebleu's, not the per-MR statistics: its Δ section is NLL only."""
    from tests.test_webnlg_tables import FT as W_FT
    from tests.test_webnlg_tables import LORA as W_LORA
    from tests.test_webnlg_tables import _record

    records = [_record(W_FT, 1, 45.0, lr=1e-4), _record(W_LORA, 1, 40.0)]
    for r, per_token in zip(records, (1.0, 0.9), strict=True):
        r["predictions"] = {"test": {k: v for k, v in _outputs(1, 0, per_token).items()
                                     if k != "bleu_stats"}}  # fmt: skip
    md, rows = WEBNLG.render("webnlg_smollm2", records)
    head = md.split("## Difference from FT\n")[1].strip().splitlines()[0]
    assert head == "| Method | lr | NLL Δ [95% CI] | NLL verdict |"
    lora = next(v for k, v in _section(md).items() if k.startswith("LoRA"))
    assert lora[1].startswith("-0.100 [") and lora[2] == "agrees"
    assert rows[0][-4:] == [f"NLL_delta_{end}" for end in ("mean", "low", "high", "verdict")]
    assert "Intervals missing" not in md


def test_e2e_table_has_test_nll_and_the_dev_loss_curve(tmp_path):
    for method, nll, losses in ((FT, 1.0, [2.9, 2.6, 2.55]), (LORA, 1.2, [3.2, 2.9, 2.8])):
        _e2e(tmp_path, method, 1, _outputs(1, wrong=2, nll_per_token=nll))
        path = tmp_path / "runs" / "nlg" / f"{method['name']}-s1.json"
        import json

        record = json.loads(path.read_text())
        record["metrics"]["test"]["NLL"] = nll
        record["epochs"] = [{"epoch": float(e + 1), "eval_dev_loss": v} for e, v in
                            enumerate(losses)]  # fmt: skip
        record["metrics"]["best_epoch"] = 3.0
        write_atomic(path, record)
    written = write_tables(tmp_path, "nlg")
    assert tmp_path / "tables" / "nlg_dev_loss.png" in written
    md = (tmp_path / "tables" / "nlg.md").read_text()
    assert "| CIDEr | test NLL | Seeds |" in md and "| 1.200 |" in md and "| 1.000 |" in md
    assert "LoRA (r=4, W_q,W_v) lr 0.001: 2.900 → 2.800" in md
    assert "FT lr 0.001: 2.600 → 2.550" in md and "![dev loss by epoch](nlg_dev_loss.png)" in md
    with open(tmp_path / "tables" / "nlg.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["test NLL"] for r in rows if r["source"] == "ours"} == {"1.0000", "1.2000"}
