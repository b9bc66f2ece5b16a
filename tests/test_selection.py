"""Learning-rate selection on held-out scores, and the config it writes for a preset."""

from __future__ import annotations

import pytest
import yaml

from experiments.choose_lr import main as choose_main
from experiments.core.records import write_atomic
from experiments.core.selection import choose


def trial(row, task, lr, score, seed=1, epochs=2, run=None):
    return {
        "run_id": run or f"{row}-{task}-{lr}-s{seed}", "status": "ok", "schema_version": 2,
        "experiment": "search", "task": task, "seed": seed, "method": {"name": row},
        "metrics": {"main": score - 0.1, "heldout": {"score": score, "epoch": 1, "main": 0}},
        "config": {"row": row, "seed": seed, "task": {"name": task},
                   "train": {"lr": lr, "epochs": epochs}, "experiment_name": "search"},
        "provenance": {"git_commit": "abcdef0123"},
    }  # fmt: skip


def test_best_heldout_score_wins_smaller_lr_on_a_tie():
    recs = [trial("lora", "sst2", lr, s) for lr, s in ((1e-4, 0.7), (1e-3, 0.8), (3e-3, 0.8))]
    recs += [trial("full_ft", "sst2", lr, s) for lr, s in ((1e-4, 0.6), (1e-3, 0.5))]
    got = choose(recs)
    assert got[("lora", "sst2")].lr == 1e-3 and not got[("lora", "sst2")].at_edge
    assert got[("full_ft", "sst2")].lr == 1e-4 and got[("full_ft", "sst2")].at_edge
    assert got[("lora", "sst2")].scores == {1e-4: 0.7, 1e-3: 0.8, 3e-3: 0.8}


@pytest.mark.parametrize("other", [{"seed": 2}, {"epochs": 3}])
def test_trials_of_other_settings_are_not_one_search(other):
    recs = [trial("lora", "sst2", 1e-4, 0.7), trial("lora", "sst2", 1e-3, 0.8, **other)]
    with pytest.raises(ValueError, match="lora on sst2 differ in more than train.lr"):
        choose(recs)


def test_record_without_heldout_is_refused():
    rec = trial("lora", "sst2", 1e-4, 0.7)
    del rec["metrics"]["heldout"]
    with pytest.raises(ValueError, match="no held-out selection"):
        choose([rec])


def test_cli_writes_a_config_the_preset_reads_and_refuses_an_unfinished_search(tmp_path):
    runs = tmp_path / "runs" / "search"
    for lr, s in ((1e-4, 0.7), (1e-3, 0.8)):
        rec = trial("lora", "stsb", lr, s)
        write_atomic(runs / f"{rec['run_id']}.json", rec)
    out = tmp_path / "lrs.yaml"
    with pytest.raises(SystemExit, match="incomplete .*lora on stsb: 2 trials.*expected 3"):
        choose_main(["--results-dir", str(tmp_path), "--experiment", "search",
                     "--out", str(out), "--expect", "3"])  # fmt: skip
    assert not out.exists()
    choose_main(["--results-dir", str(tmp_path), "--experiment", "search", "--out", str(out),
                 "--expect", "2"])  # fmt: skip
    text = out.read_text()
    assert text.startswith("# @package _global_\n")
    assert yaml.safe_load(text) == {"hparams": {"lora": {"lr": {"stsb": 1e-3}}}}  # floats
    assert "1e-03* 80.0" in text and "! at the grid's edge" in text


def test_demo_reads_its_learning_rates_per_method_and_task():
    from tests.conftest import ROOT
    from tests.test_config import compose_cfg

    chosen = yaml.safe_load((ROOT / "conf/experiment/demo_lrs.yaml").read_text())["hparams"]
    for row, lrs in chosen.items():
        for task, lr in lrs["lr"].items():
            cfg = compose_cfg(["experiment=demo", f"row={row}", f"task={task}", "hydra.mode=RUN"])
            assert cfg.train.lr == lr and cfg.data.heldout == 300


def test_edge_winners_extend_the_grid_once_per_side():
    from experiments.core.selection import extensions, next_step

    assert [next_step(3e-3, True), next_step(1e-3, True), next_step(3e-5, False)] == [
        1e-2, 3e-3, 1e-5]  # fmt: skip
    recs = [trial("lora", "sst2", lr, s) for lr, s in ((1e-4, 0.6), (1e-3, 0.7), (3e-3, 0.8))]
    recs += [trial("full_ft", "sst2", lr, s) for lr, s in ((1e-4, 0.9), (1e-3, 0.5))]
    recs += [trial("adapter_h", "sst2", lr, s) for lr, s in ((1e-4, 0.6), (1e-3, 0.8), (3e-3, 0.7))]
    choices = choose(recs)
    tried = {(r["config"]["row"], r["task"]): set() for r in recs}
    for r in recs:
        tried[(r["config"]["row"], r["task"])].add(r["config"]["train"]["lr"])
    assert extensions(choices, tried) == [("full_ft", "sst2", 3e-5), ("lora", "sst2", 1e-2)]
    tried[("lora", "sst2")].add(1e-2)  # tried and diverged: that side is closed
    assert extensions(choices, tried) == [("full_ft", "sst2", 3e-5)]


def test_generation_trials_choose_the_lowest_dev_loss(tmp_path):
    recs = []
    for lr, loss in ((1e-4, 2.61), (3e-4, 2.55), (1e-3, 2.58)):
        rec = trial("full_ft", "e2e", lr, 0)
        del rec["metrics"]["heldout"]
        rec["metrics"]["best"] = {"dev_loss": loss}
        recs.append(rec)
    got = choose(recs)[("full_ft", "e2e")]
    assert (got.lr, got.criterion, got.at_edge) == (3e-4, "dev_loss", False)
    assert got.scores == {1e-4: -2.61, 3e-4: -2.55, 1e-3: -2.58}
    for rec in recs:
        write_atomic(tmp_path / "runs" / "search" / f"{rec['run_id']}.json", rec)
    out = tmp_path / "lrs.yaml"
    choose_main(["--results-dir", str(tmp_path), "--experiment", "search", "--out", str(out)])
    text = out.read_text()
    assert yaml.safe_load(text)["hparams"]["full_ft"]["lr"]["e2e"] == 3e-4
    assert "lowest dev loss" in text and "1e-04 2.610  3e-04* 2.550  1e-03 2.580" in text
    recs[0]["metrics"]["heldout"] = {"score": 0.5}
    with pytest.raises(ValueError, match="mix held-out and dev-loss"):
        choose(recs)


def test_the_successors_driver_steps_past_an_edge_winner_at_the_search_seed_only(tmp_path):
    from experiments.core.selection import config_key, tried
    from experiments.successors import _edge_step

    recs = [trial("vera", "sst2", lr, s) for lr, s in ((3e-4, 0.6), (1e-3, 0.7), (3e-3, 0.8))]
    recs.append(trial("vera", "sst2", 1e-2, 0.9, seed=2))  # another seed: not a trial
    key = config_key(recs[0])
    folder = tmp_path / "runs" / "search"
    for r in recs:
        write_atomic(folder / f"{r['run_id']}.json", r)
    at_seed_1 = tried(tmp_path, "search", seed=1)
    assert at_seed_1 == {("vera", "sst2"): {3e-4, 1e-3, 3e-3}}
    assert _edge_step(recs, "vera", "sst2", 1, key, at_seed_1) == 1e-2
    # a failed run at the step closes that side: no further step
    failed = {**trial("vera", "sst2", 1e-2, 0.0, run="failed"), "status": "failed"}
    write_atomic(folder / "failed.failed.json", failed)
    assert _edge_step(recs, "vera", "sst2", 1, key, tried(tmp_path, "search", seed=1)) is None
    assert _edge_step(recs, "lora", "sst2", 1, key, at_seed_1) is None  # no trials
