"""Run identity, code version, strict records and failure records: what
changes a result changes the id; NaN never reaches an ok record."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest

from experiments.core import records, runner
from experiments.core.records import (
    NonFiniteRecordError,
    code_version,
    is_stale,
    record_path,
    write_atomic,
)
from experiments.core.runner import Family
from experiments.tasks import data_fingerprint, run_id
from tests.conftest import FIXTURES
from tests.test_config import compose_cfg


def _strict_load(path: Path) -> dict:
    def no_constants(name: str) -> None:
        raise AssertionError(f"{path} holds {name}: not strict JSON")

    return json.loads(path.read_text(), parse_constant=no_constants)


@pytest.fixture
def data_copy(tmp_path):
    """The fixture GLUE folder copied, so a test may damage it."""
    dest = tmp_path / "data"
    shutil.copytree(FIXTURES / "glue", dest / "glue")
    return dest


def base(data_dir, results_dir, *extra):
    return [f"data.dir={data_dir}", f"paths.results_dir={results_dir}", "task=sst2",
            "experiment_name=ident", *extra]  # fmt: skip


def test_id_covers_trainer_and_not_paths_logger_notes(data_copy, tmp_path):
    rid = run_id(compose_cfg(base(data_copy, tmp_path)))
    assert rid != run_id(compose_cfg(base(data_copy, tmp_path, "trainer.precision=bf16")))
    assert rid != run_id(compose_cfg(base(data_copy, tmp_path, "trainer=gpu")))
    same = base(data_copy, tmp_path / "other", "paths.output_dir=/elsewhere", "logger=wandb",
                "notes=hello", "verbose=true", "rerun_stale=true")  # fmt: skip
    assert rid == run_id(compose_cfg(same))


def test_heldout_off_keeps_the_ids_made_before_the_setting(data_copy, tmp_path):
    cfg = compose_cfg(base(data_copy, tmp_path))
    assert "heldout" not in records.identity(cfg, "sha256:x")["data"]
    held = compose_cfg(base(data_copy, tmp_path, "data.heldout=10"))
    assert records.identity(held, "sha256:x")["data"]["heldout"] == 10
    assert run_id(held) != run_id(cfg)


def test_hparams_table_is_left_out_but_the_chosen_row_counts(data_copy, tmp_path):
    demo = base(data_copy, tmp_path, "experiment=demo", "hydra.mode=RUN")
    rid = run_id(compose_cfg(demo + ["row=lora", "task=sst2"]))
    assert rid != run_id(compose_cfg(demo + ["row=adapter_h", "task=sst2"]))
    # another row's or another task's values cannot change this run
    assert rid == run_id(
        compose_cfg(demo + ["row=lora", "task=sst2", "hparams.adapter_h.lr.sst2=0.5"])
    )
    assert rid == run_id(compose_cfg(demo + ["row=lora", "task=sst2", "hparams.lora.lr.stsb=0.5"]))
    assert rid != run_id(compose_cfg(demo + ["row=lora", "task=sst2", "hparams.lora.lr.sst2=0.5"]))


def test_id_follows_the_data_contents_not_its_folder(data_copy, tmp_path):
    rid = run_id(compose_cfg(base(data_copy, tmp_path)))
    moved = tmp_path / "moved"
    shutil.copytree(data_copy, moved)
    assert run_id(compose_cfg(base(moved, tmp_path))) == rid  # same bytes elsewhere
    train = data_copy / "glue" / "SST-2" / "train.tsv"
    lines = train.read_text().splitlines(keepends=True)
    train.write_text("".join(lines[:-3]))  # truncated
    assert run_id(compose_cfg(base(data_copy, tmp_path))) != rid


def test_hub_data_is_fingerprinted_by_its_dataset_id(tmp_path, monkeypatch):
    monkeypatch.delenv("LORA_DATA_DIR", raising=False)
    cfg = compose_cfg(["data.dir=null", "task=sst2"])
    assert records.identity(cfg, data_fingerprint(cfg))["data"]["fingerprint"] == "hub:nyu-mll/glue"
    assert data_fingerprint(compose_cfg(["data.dir=null", "task=e2e"])).startswith("hub:")


def test_each_file_is_hashed_once_per_process(data_copy, tmp_path, monkeypatch):
    opened = []
    real_open = open

    def counting_open(file, *args, **kwargs):
        if str(file).endswith(".tsv"):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    for seed in (1, 2, 3):
        run_id(compose_cfg(base(data_copy, tmp_path, f"seed={seed}")))
    assert len(opened) == len(set(opened)) == 2  # train.tsv, dev.tsv


def test_code_version_and_staleness():
    files = records.code_files()
    assert all(f.split("/")[0] in ("lora", "experiments", "conf", "pyproject.toml") for f in files)
    version = code_version(files)
    assert isinstance(version, str) and len(version) == 16
    assert version == code_version(files)  # stable within a process
    current = {"provenance": {"code_files": files, "code_version": version}}
    assert not is_stale(current)
    assert is_stale({"provenance": {"code_files": files, "code_version": "0" * 16}})
    assert is_stale({"provenance": {"code_version": version}})  # files unknown: stale
    assert is_stale({"provenance": {}})


def test_staleness_follows_only_the_files_a_run_was_made_from(tmp_path, monkeypatch):
    """Editing a file the record lists marks it stale; editing any other file does not."""
    (tmp_path / "lora").mkdir()
    (tmp_path / "experiments").mkdir()
    used, other = tmp_path / "lora" / "used.py", tmp_path / "experiments" / "other.py"
    used.write_text("A = 1\n")
    other.write_text("B = 1\n")
    monkeypatch.setattr(records, "REPO", tmp_path)
    files = ["lora/used.py"]
    record = {"provenance": {"code_files": files, "code_version": code_version(files)}}
    other.write_text("B = 2\n")
    assert not is_stale(record)
    used.write_text("A = 2\n")
    assert is_stale(record)
    used.unlink()
    assert is_stale(record)  # a deleted file is a change


def test_code_files_are_the_imported_project_modules():
    import experiments.report.tables  # noqa: F401  (loaded here, so listed)

    files = records.code_files()
    assert "experiments/core/records.py" in files
    assert "experiments/report/tables.py" in files
    assert not any(f.startswith("tests/") for f in files)


def test_code_files_name_the_entry_script_and_the_pinned_dependencies(monkeypatch):
    """A joblib worker runs the task function without importing the entry module: the
    entry script comes from argv. pyproject.toml pins the dependencies."""
    monkeypatch.setattr(sys, "argv", [str(records.REPO / "experiments" / "train.py"), "x=1"])
    sys.modules.pop("experiments.train", None)
    files = records.code_files()
    assert "experiments/train.py" in files
    assert "pyproject.toml" in files


def test_conf_closure_follows_nested_defaults(tmp_path):
    conf = tmp_path / "conf"
    for rel, text in {
        "config.yaml": "defaults:\n  - base_config\n  - model: tiny\n  - experiment: null\n",
        "model/tiny.yaml": "name: tiny\n",
        "experiment/child.yaml": "defaults:\n  - parent\n  - override /model: tiny\n"
        "  - /hydra/sweeper: search_full\n  - _self_\n",
        "experiment/parent.yaml": "defaults:\n  - optional extra: one\n",
        "experiment/extra/one.yaml": "a: 1\n",
        "hydra/sweeper/search_full.yaml": "defaults:\n  - search\n  - override sampler: tpe\n",
        "hydra/sweeper/search.yaml": "n_trials: 3\n",
        "experiment/unused.yaml": "a: 2\n",
    }.items():
        (conf / rel).parent.mkdir(parents=True, exist_ok=True)
        (conf / rel).write_text(text)
    got = records.conf_closure(conf, [("", "config"), ("model", "tiny"), ("experiment", "child")])
    assert got == [
        "conf/config.yaml",
        "conf/experiment/child.yaml",
        "conf/experiment/extra/one.yaml",
        "conf/experiment/parent.yaml",
        "conf/hydra/sweeper/search.yaml",
        "conf/hydra/sweeper/search_full.yaml",
        "conf/model/tiny.yaml",
    ]


def test_records_are_strict_json(tmp_path):
    path = tmp_path / "r.json"
    with pytest.raises(NonFiniteRecordError, match=r"metrics\.main is not finite"):
        write_atomic(path, {"metrics": {"main": math.nan}})
    assert not path.exists()
    write_atomic(path, {"metrics": {"main": 0.5}})
    assert _strict_load(path) == {"metrics": {"main": 0.5}}


class Boom(RuntimeError):
    def __init__(self, reason: str, step: int) -> None:
        super().__init__(f"{reason} at step {step}")
        self.reason, self.step = reason, step


def fake_families(result=None, error=None, calls=None):
    """A GLUE-like family whose run returns ``result`` or raises ``error``: no model."""
    from experiments.glue import data as glue_data

    def fake_run(cfg, method, output_dir):
        if calls is not None:
            calls.append(cfg.seed)
        if error is not None:
            raise error
        return result

    return {"glue": Family(glue_data.TASKS, fake_run,
                           lambda cfg: glue_data.data_files(cfg.task.name, cfg.data.dir),
                           glue_data.HUB_DATASET)}  # fmt: skip


GOOD = {"metrics": {"main_metric": "accuracy", "main": 0.75}}


def test_nan_result_is_a_failure_never_an_ok_record(data_copy, tmp_path):
    cfg = compose_cfg(base(data_copy, tmp_path))
    bad = {"metrics": {"main_metric": "accuracy", "main": math.nan}}
    outcome = runner.run_point(cfg, fake_families(result=bad))
    rid = run_id(cfg)
    assert outcome.status == "failed" and outcome.reason.startswith("NonFiniteResult: metrics.main")
    assert not record_path(cfg, rid).exists()
    failed = _strict_load(record_path(cfg, rid, failed=True))
    assert failed["status"] == "failed" and failed["step"] is None
    assert failed["schema_version"] == 2


def test_failure_record_holds_reason_and_step(data_copy, tmp_path):
    cfg = compose_cfg(base(data_copy, tmp_path))
    err = Boom("train loss is nan", 7)
    outcome = runner.run_point(cfg, fake_families(error=err))
    path = record_path(cfg, run_id(cfg), failed=True)
    # the reason comes from err.reason when the error has one, the step from err.step
    assert (
        outcome.line() == f"run {run_id(cfg)} failed at step 7: Boom: train loss is nan; see {path}"
    )
    failed = _strict_load(path)
    assert failed["status"] == "failed" and failed["step"] == 7
    assert "\n" not in failed["reason"] and "train loss is nan" in failed["reason"]
    assert not is_stale(failed) and failed["provenance"]["code_files"]
    with pytest.raises(Boom):  # run() re-raises the run's own error
        runner.run(cfg, fake_families(error=err))
    # a later success replaces the failure record
    assert runner.run(cfg, fake_families(result=GOOD))["status"] == "ok"
    assert not path.exists()


def test_rerun_stale_replaces_a_record_of_other_code(data_copy, tmp_path):
    cfg = compose_cfg(base(data_copy, tmp_path))
    calls: list[int] = []
    fams = fake_families(result=GOOD, calls=calls)
    assert runner.run_point(cfg, fams).status == "done"
    assert runner.run_point(cfg, fams).status == "skipped"
    stale = compose_cfg(base(data_copy, tmp_path, "rerun_stale=true"))
    assert runner.run_point(stale, fams).status == "skipped"  # same code: kept
    path = record_path(cfg, run_id(cfg))
    record = _strict_load(path)
    record["provenance"]["code_version"] = "old"
    path.write_text(json.dumps(record))
    assert runner.run_point(cfg, fams).status == "skipped"  # rerun_stale=false: kept
    assert runner.run_point(stale, fams).status == "done" and len(calls) == 2
    assert not is_stale(_strict_load(path))


def test_id_covers_the_number_of_processes(data_copy, tmp_path, monkeypatch):
    cfg = compose_cfg(["task=rte", f"data.dir={data_copy}", f"paths.results_dir={tmp_path}"])
    single = run_id(cfg)
    monkeypatch.setattr(records.distributed, "world_size", lambda: 2)
    assert run_id(cfg) != single  # 2 processes double the effective batch
