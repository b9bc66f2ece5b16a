"""Every bad setting stops the entry point with one line on stderr and a non-zero exit,
no traceback, within seconds (the checks run before torch is imported)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

CASES = [
    ("+foo=1", "error: unknown setting 'foo' (top-level settings are: model, task, method,"),
    ("+trainer.learning_rate=-1", "error: unknown setting 'trainer.learning_rate' (trainer "
     "has: use_cpu, precision, dataloader_num_workers)"),
    ("trainer.learning_rate=-1", "error: unknown setting 'trainer.learning_rate' (trainer "
     "has: use_cpu, precision, dataloader_num_workers)"),
    ("trainer.precision=fp8",
     "error: invalid setting trainer.precision: 'fp8'; allowed: fp32, fp16, bf16"),
    ("task=nope", "error: invalid setting task: 'nope' is not an option; allowed: cola, "),
    ("method.r=0", "error: invalid setting method: r must be an integer >= 1; got 0"),
    ("data.dir=/nope", "error: invalid setting data.dir: folder /nope does not exist;"),
    ("model=roberta-base", "error: invalid setting model.pretrained: 'roberta-base' "
     "(model=roberta-base) is not in the local Hub cache and HF_HUB_OFFLINE=1; run with "
     "HF_HUB_OFFLINE=0 to download it, or set model.pretrained=/path/to/folder"),
    ("train.epochs=many",
     "error: invalid setting train.epochs: Value 'many' of type 'str' could not be converted"),
    ("experiment=demo row=x", "error: invalid setting row: 'x' is not a row of this "
     "experiment; rows: full_ft, lora, adapter_h"),
]  # fmt: skip


def train(*args: str, **env: str) -> subprocess.CompletedProcess:
    # a data folder, so that the check under test is reached, not the missing-data one
    data = {"LORA_DATA_DIR": str(ROOT / "tests" / "fixtures")}
    full_env = {**os.environ, **data, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **env}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", "experiments.train", *args],
                          capture_output=True, text=True, cwd=ROOT, env=full_env,
                          timeout=180)  # fmt: skip


@pytest.mark.parametrize(("override", "message"), CASES)
def test_bad_setting_is_one_line(override, message, tmp_path):
    out = train(*override.split(), "hydra.mode=RUN", f"paths.results_dir={tmp_path}",
                f"paths.output_dir={tmp_path}/out", HF_HUB_CACHE=str(tmp_path / "hub"))  # fmt: skip
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(message), lines[0]
    assert not list(tmp_path.rglob("*.json"))  # nothing written for a bad setting


def test_verbose_shows_the_traceback(tmp_path):
    out = train("data.dir=/nope", "verbose=true", f"paths.results_dir={tmp_path}",
                f"paths.output_dir={tmp_path}/out")  # fmt: skip
    assert out.returncode != 0 and "Traceback" in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: invalid setting data.dir")


def test_no_data_dir_offline_is_a_setting_error(tmp_path):
    """No data folder and no Hub: one line naming data.dir, not a failed run."""
    out = train("data.dir=null", "hydra.mode=RUN", f"paths.results_dir={tmp_path}",
                f"paths.output_dir={tmp_path}/out", LORA_DATA_DIR="",
                HF_DATASETS_CACHE=str(tmp_path / "datasets"))  # fmt: skip
    assert out.returncode != 0 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: invalid setting data.dir: not set"), lines[0]
    assert "HF_HUB_OFFLINE=0" in lines[0]
    assert not list(tmp_path.rglob("*.json"))
