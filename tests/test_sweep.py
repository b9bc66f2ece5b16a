"""A multirun ends with one summary (done, skipped, failed with reasons) and exits
non-zero when a point failed or had a bad setting, with the basic and joblib launchers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
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
    out = multirun("method.r=0,-1", f"paths.results_dir={tmp_path}",
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
