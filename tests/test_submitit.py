"""Sweeps through hydra-submitit-launcher: the local executor stands in for SLURM."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import FIXTURES, ROOT
from tests.test_harness import tiny_overrides

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")


def test_slurm_preset_composes_with_cluster_settings():
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from experiments.core.schema import register_configs
    from tests.test_config import CONF

    register_configs()
    GlobalHydra.instance().clear()
    overrides = ["hydra/launcher=slurm", "hydra.launcher.partition=gpu-a100"]
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.partition == "gpu-a100" and launcher.gpus_per_node == 1
    assert launcher.timeout_min > 0 and launcher.array_parallelism >= 1
    assert launcher.tasks_per_node == 1 and launcher.max_num_timeout >= 1


def _sweep(overrides: list[str], sweep_dir) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "experiments.train", "-m", "hydra/launcher=submitit_local",
           f"hydra.sweep.dir={sweep_dir}", *overrides]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


@pytest.mark.slow  # three sweeps of separate job processes: 100-170 s on 2 busy cores
def test_local_sweep_writes_both_records_then_resumes(tiny_model_dir, tmp_path):  # noqa: F811
    overrides = tiny_overrides(tiny_model_dir, tmp_path, "task=rte", "train.epochs=1",
                               "seed=1,2")  # fmt: skip
    first = _sweep(overrides, tmp_path / "sweep1")
    assert first.returncode == 0, (first.stdout + first.stderr)[-3000:]
    runs = tmp_path / "runs" / "fixture"
    records = {p.name: p.read_bytes() for p in runs.glob("*.json")}
    assert len(records) == 2 and not any(n.endswith(".failed.json") for n in records)
    assert sorted(n.split("-s")[-1][0] for n in records) == ["1", "2"]
    # each point ran as its own submitit job, logs under the sweep's .submitit/
    logs = list((tmp_path / "sweep1" / ".submitit").rglob("*_log.err"))
    assert len(logs) == 2
    assert "sweep: 2 points: 2 done, 0 skipped" in first.stdout, first.stdout[-2000:]

    # a resubmitted sweep: every point has its record, so both jobs skip
    second = _sweep(overrides, tmp_path / "sweep2")
    assert second.returncode == 0, (second.stdout + second.stderr)[-3000:]
    assert {p.name: p.read_bytes() for p in runs.glob("*.json")} == records
    job_logs = "".join(p.read_text() for p in (tmp_path / "sweep2").rglob("*.log"))
    job_logs += "".join(p.read_text() for p in (tmp_path / "sweep2").rglob("*_log.*"))
    assert job_logs.count("skip ") >= 2, job_logs[-3000:]
    assert "accuracy = " not in job_logs
    assert "sweep: 2 points: 0 done, 2 skipped" in second.stdout, second.stdout[-2000:]

    # a point that goes wrong in its job (bad data): summary line, non-zero exit
    bad = tmp_path / "bad_data" / "RTE"
    bad.mkdir(parents=True)
    (bad / "dev.tsv").write_text((FIXTURES / "glue" / "RTE" / "dev.tsv").read_text())
    (bad / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tnot-a-label\n")
    kept = [o for o in overrides if not o.startswith(("data.dir", "seed"))]
    third = _sweep([*kept, f"data.dir={tmp_path / 'bad_data'}", "seed=3"], tmp_path / "sweep3")
    assert third.returncode != 0
    assert "sweep: 1 points: 0 done, 0 skipped" in third.stdout, third.stdout[-2000:]
    assert "not-a-label" in third.stdout and "1 sweep point(s) failed" in third.stderr
    assert {p.name: p.read_bytes() for p in runs.glob("*.json")} == records
