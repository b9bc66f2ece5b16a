"""A multirun ends with one summary (done, skipped, failed with reasons) and exits
non-zero when a point failed or had a bad setting, with the basic and joblib launchers
and with the Optuna sweeper's learning-rate search, which resumes from the records."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.core.runner import Outcome
from experiments.train import objective
from tests.conftest import FIXTURES, ROOT
from tests.test_harness import tiny_overrides


def multirun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    cmd = [sys.executable, "-m", "experiments.train", "-m", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


def test_sweep_with_a_diverging_point_fails_with_a_summary(tiny_model_dir, tmp_path):  # noqa: F811
    # lr=1e30 diverges at step 2 (NonFiniteError); lr=1e-3 trains fine.
    overrides = tiny_overrides(tiny_model_dir, tmp_path, "task=rte", "method=full_ft",
                               "train.epochs=1", "train.warmup_ratio=0")  # fmt: skip
    out = multirun(*overrides, "train.lr=1e-3,1e30")
    log = out.stdout + out.stderr
    assert out.returncode != 0, log[-3000:]
    assert "Traceback" not in log
    assert log.count("sweep: 2 points: 1 done, 0 skipped (record exists), 1 failed, "
                     "0 with a bad setting") == 1, log[-3000:]  # fmt: skip
    failed = re.findall(r"  failed: run (\S+) at step 2: train loss is \S+; see (\S+)", log)
    assert len(failed) == 1, log[-3000:]
    rid, path = failed[0]
    record = json.loads(Path(path).read_text())
    assert record["status"] == "failed" and record["step"] == 2 and record["run_id"] == rid
    assert out.stderr.strip().splitlines()[-1] == (
        "error: 1 sweep point(s) failed or had a bad setting; see the summary above"
    )
    runs = tmp_path / "runs" / "fixture"
    assert len([p for p in runs.glob("*.json") if not p.name.endswith(".failed.json")]) == 1

    # again: the done point is skipped, the failed one retried (and fails again)
    again = multirun(*overrides, "train.lr=1e-3,1e30")
    assert again.returncode != 0
    assert "sweep: 2 points: 0 done, 1 skipped (record exists), 1 failed" in again.stdout


def test_joblib_workers_report_bad_settings_and_the_sweep_fails(tmp_path):
    # joblib runs each point in a worker process: the summary reads what the workers left
    out = multirun("method.r=0,-1", f"data.dir={FIXTURES / 'glue'}", f"paths.results_dir={tmp_path}",
                   f"paths.output_dir={tmp_path}/out", "hydra/launcher=joblib",
                   "hydra.launcher.n_jobs=2")  # fmt: skip
    log = out.stdout + out.stderr
    assert out.returncode != 0, log[-3000:]
    assert (
        "sweep: 2 points: 0 done, 0 skipped (record exists), 0 failed, 2 with a bad setting" in log
    )
    assert log.count("  bad setting (method.r=") == 2, log[-3000:]
    assert "r must be an integer >= 1; got -1" in log and "Traceback" not in log
    assert not list(tmp_path.rglob("runs/*/*.json"))


def optuna_search(*args: str) -> subprocess.CompletedProcess:
    """A 2-trial learning-rate search (conf/hydra/sweeper/lr_search.yaml) of a tiny run;
    a ``train.lr=`` among the overrides would fix the lr instead of searching it."""
    args = tuple(a for a in args if not a.startswith("train.lr="))
    return multirun("hydra/sweeper=lr_search", "hydra.sweeper.n_trials=2", *args)


def test_optuna_search_optimises_the_heldout_score_and_resumes(tiny_model_dir, tmp_path):
    overrides = tiny_overrides(tiny_model_dir, tmp_path, "task=sst2", "method=lora",
                               "train.epochs=1", "data.heldout=8")  # fmt: skip
    out = optuna_search(*overrides)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert "sweep: 2 points: 2 done, 0 skipped" in log, log[-3000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "fixture").glob("*.json")]
    lrs = sorted(r["config"]["train"]["lr"] for r in records)
    assert len(lrs) == 2 and lrs[0] != lrs[1] and all(1e-5 <= lr <= 1e-2 for lr in lrs)
    best = max(records, key=lambda r: r["metrics"]["heldout"]["score"])
    assert f"Best value: {best['metrics']['heldout']['score']}" in log, log[-3000:]
    # killed and run again: the seeded sampler proposes the same lrs; both are skipped
    # and their recorded scores reach the sampler again
    again = optuna_search(*overrides)
    log = again.stdout + again.stderr
    assert again.returncode == 0 and "sweep: 2 points: 0 done, 2 skipped" in log, log[-3000:]
    assert f"Best value: {best['metrics']['heldout']['score']}" in log
    assert len(list((tmp_path / "runs" / "fixture").glob("*.json"))) == 2


def test_optuna_search_reports_failed_points_and_fails(tiny_model_dir, tmp_path):
    # 100 held-out examples leave none of the fixture's 32 to train on: every trial is a
    # bad setting, which the search scores -inf instead of stopping at the first one
    overrides = tiny_overrides(tiny_model_dir, tmp_path, "task=sst2", "data.heldout=100")
    out = optuna_search(*overrides)
    log = out.stdout + out.stderr
    assert out.returncode != 0, log[-3000:]
    assert (
        "sweep: 2 points: 0 done, 0 skipped (record exists), 0 failed, 2 with a bad setting"
    ) in log, log[-3000:]
    assert "Best value: -inf" in log and "Traceback" not in log
    assert out.stderr.strip().splitlines()[-1] == (
        "error: 2 sweep point(s) failed or had a bad setting; see the summary above"
    )


def test_objective_is_the_selected_score_the_recorded_one_or_the_worst(tmp_path):
    held = {"metrics": {"main": 0.9, "heldout": {"epoch": 1.0, "score": 0.7, "main": 0.8}}}
    assert objective(Outcome("done", "r", record=held)) == 0.7
    assert objective(Outcome("done", "r", record={"metrics": {"main": 0.9}})) == 0.9
    path = tmp_path / "r.json"
    path.write_text(json.dumps(held))
    assert objective(Outcome("skipped", "r", path=str(path))) == 0.7  # a resumed search
    assert objective(Outcome("failed", "r", reason="train loss is nan")) == -math.inf
    assert objective(Outcome("config_error", reason="bad")) == -math.inf
    path.write_text("{")
    assert objective(Outcome("skipped", "r", path=str(path))) == -math.inf


@pytest.mark.slow
def test_successors_driver_searches_reruns_seeds_resumes_and_isolates_failures(
    tiny_model_dir, tmp_path
):
    # 12 held-out examples leave SST-2's fixture 20 to train on and CoLA's none: the
    # CoLA search fails, the SST-2 one still searches and runs its seeds
    overrides = [o for o in tiny_overrides(tiny_model_dir, tmp_path, "train.epochs=1",
                                           "data.heldout=12") if not o.startswith("train.lr=")]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "experiments.successors", "--rows", "lora", "--tasks",
           "sst2,cola", "--trials", "2", "--seeds", "1,2", "--", *overrides]  # fmt: skip

    def drive():
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)

    out = drive()
    assert out.returncode != 0, out.stdout + out.stderr[-3000:]
    assert re.search(r"^ok: lora on sst2: lr \S+ chosen from 2 trials, seeds \[1, 2\]",
                     out.stdout, re.M), out.stdout  # fmt: skip
    assert re.search(r"^FAILED: lora on cola: no trial finished", out.stdout, re.M), out.stdout
    assert "successors: 2 (method, task) searches, 1 failed" in out.stdout
    # the two units ran at once, each summary counts its own points only
    cola = (tmp_path / "outputs" / "successors" / "fixture" / "lora-cola.log").read_text()
    assert "sweep: 2 points: 0 done, 0 skipped (record exists), 0 failed, 2 with a bad " in cola
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "fixture").glob("*.json")]
    assert sorted((r["task"], r["seed"]) for r in records) == [("sst2", 1), ("sst2", 1),
                                                               ("sst2", 2)]  # fmt: skip
    chosen = max((r for r in records if r["seed"] == 1),
                 key=lambda r: (r["metrics"]["heldout"]["score"], -r["config"]["train"]["lr"]))  # fmt: skip
    seed2 = next(r for r in records if r["seed"] == 2)
    assert seed2["config"]["train"]["lr"] == chosen["config"]["train"]["lr"]
    # run again: every SST-2 point is skipped (the search proposes the same lrs)
    again = drive()
    assert "ok: lora on sst2" in again.stdout
    log = (tmp_path / "outputs" / "successors" / "fixture" / "lora-sst2.log").read_text()
    assert log.count("0 done, 2 skipped (record exists)") == 2, log[-3000:]
    assert len(list((tmp_path / "runs" / "fixture").glob("*.json"))) == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seeds", "1,a"], "error: invalid setting --seeds: '1,a'; expected integers"),
        (["--jobs", "0"], "error: invalid setting --jobs/--trials: must be integers >= 1"),
        (["--seeds", "2,3"], "error: invalid setting --seeds: 2,3 leaves out the search's seed 1"),
    ],
)
def test_successors_driver_rejects_bad_options_in_one_line(argv, message):
    from experiments import successors

    with pytest.raises(SystemExit) as exc:
        successors.main(argv)
    assert str(exc.value).startswith(message)
