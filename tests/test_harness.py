"""End to end through Hydra compose: fixture data -> tiny model -> record -> table."""

from __future__ import annotations

import json
import os

import pytest

from experiments.core.records import load_records, record_path
from experiments.report.tables import write_tables
from experiments.tasks import run_id
from experiments.train import run
from tests.conftest import FIXTURES
from tests.test_config import compose_cfg


def tiny_overrides(model_dir, results_dir, *extra):
    return [
        "model.name=tiny-bert", "model.source=hub", f"model.pretrained={model_dir}",
        f"data.dir={FIXTURES}", f"paths.results_dir={results_dir}",
        f"paths.output_dir={results_dir}/outputs", "experiment_name=fixture",
        "train.epochs=2", "train.batch_size=8", "train.lr=1e-3", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("task", "method"),
    [("sst2", "lora"), ("stsb", "full_ft"), ("cola", "lora"), ("mrpc", "adapter_h"),
     ("rte", "prefix_layer")],
)  # fmt: skip
def test_run_writes_complete_record(tiny_model_dir, tmp_path, task, method):
    cfg = compose_cfg(tiny_overrides(tiny_model_dir, tmp_path, f"task={task}", f"method={method}"))
    record = run(cfg)
    path = record_path(cfg, run_id(cfg))
    assert path.is_file() and json.loads(path.read_text()) == json.loads(
        json.dumps(record, default=str)
    )
    assert record["status"] == "ok" and record["task"] == task
    assert [e["epoch"] for e in record["epochs"]] == [1.0, 2.0]
    main = record["metrics"]["main"]
    assert main == max(e[f"eval_dev_{record['metrics']['main_metric']}"] for e in record["epochs"])
    params = record["params"]
    assert 0 < params["method"] <= params["trainable"] <= params["total"]
    if method == "lora":
        assert params["method"] == 2 * 2 * 2 * 32 * 8  # 2 layers × (q, v) × (A, B) × d × r
    if method == "adapter_h":
        assert params["method"] == 2 * 2 * (2 * 32 * 8 + 8 + 32)  # 2 layers × 2 adapters
    if method == "prefix_layer":  # l_p + l_i = 20 virtual tokens take their share
        assert record["data"]["virtual_tokens"] == 20
        assert params["method"] == 2 * 32 * 20
    assert record["timing"]["train_seconds"] > 0 and record["memory"]["peak_rss_mb"] > 0
    assert record["data"]["train_size"] > 0 and record["config"]["task"]["name"] == task
    prov = record["provenance"]
    assert prov["packages"]["torch"] and prov["hardware"]["cpu_count"] >= 1


def test_resume_skips_done_points_and_tables(tiny_model_dir, tmp_path):
    for method in ("lora", "full_ft"):
        cfg = compose_cfg(tiny_overrides(tiny_model_dir, tmp_path, "task=rte", f"method={method}"))
        assert run(cfg) is not None
        assert run(cfg) is None  # record exists: skipped
    assert len(load_records(tmp_path, "fixture")) == 2
    written = write_tables(tmp_path, "fixture")
    md = (tmp_path / "tables" / "fixture.md").read_text()
    assert "| tiny-bert | FT |" in md and "| tiny-bert | LoRA (r=8, W_q,W_v) |" in md
    assert "RTE" in md and "Training examples per task: RTE 12." in md
    csv_text = (tmp_path / "tables" / "fixture.csv").read_text()
    assert csv_text.startswith("source,Model,Method") and len(written) == 2


def test_bad_point_stops_nothing_but_fails_the_sweep(tiny_model_dir, tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    overrides = tiny_overrides(tiny_model_dir, tmp_path, "task=sst2", "train.epochs=1")
    # model.pretrained=/nonexistent is a bad setting (nothing written); the second point
    # still runs, and the sweep exits non-zero with both in its summary.
    cmd = [sys.executable, "-m", "experiments.train", "-m",
           *[o for o in overrides if not o.startswith("model.pretrained")],
           f"model.pretrained=/nonexistent,{tiny_model_dir}"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert out.returncode != 0, out.stderr[-2000:]
    assert (
        "sweep: 2 points: 1 done, 0 skipped (record exists), 0 failed, 1 with a bad "
        "setting" in out.stdout
    ), out.stdout[-2000:]
    assert "model.pretrained: folder /nonexistent does not exist" in out.stdout
    runs = tmp_path / "runs" / "fixture"
    assert not list(runs.glob("*.failed.json"))
    assert len(list(runs.glob("*.json"))) == 1


def test_wandb_logs_the_run_offline(tiny_model_dir, tmp_path, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    seen = {}
    real_finish = wandb.finish

    def finish(*args, **kwargs):  # read the summary just before the run closes
        seen.update(dict(wandb.run.summary))
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(wandb, "finish", finish)
    cfg = compose_cfg(
        tiny_overrides(tiny_model_dir, tmp_path, "task=sst2", "logger=wandb", "train.epochs=1")
    )
    record = run(cfg)
    assert os.environ["WANDB_MODE"] == "offline"  # no key: offline, nothing uploaded
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    assert seen["best"]["dev_accuracy"] == record["metrics"]["best"]["dev_accuracy"]
    assert seen["params"]["method"] == record["params"]["method"]


def test_save_adapter_then_start_another_task_from_it(tiny_model_dir, tmp_path):
    """The paper's MNLI -> MRPC/RTE/STS-B initialisation: LoRA carries over, the head not."""
    from safetensors.torch import load_file

    first = compose_cfg(
        tiny_overrides(tiny_model_dir, tmp_path, "task=sst2", "train.save_adapter=true")
    )
    run(first)
    adapter = tmp_path / "outputs" / "runs" / "fixture" / run_id(first) / "adapter"
    saved = load_file(str(adapter / "adapter_model.safetensors"))
    assert any("lora_A" in k for k in saved) and any("classifier" in k for k in saved)
    second = compose_cfg(
        tiny_overrides(tiny_model_dir, tmp_path, "task=stsb", f"train.init_adapter={adapter}")
    )
    assert run(second)["status"] == "ok"  # 1-output head of STS-B is not loaded from SST-2's 2


@pytest.mark.parametrize(("task", "eval_samples"), [("stsb", "null"), ("sst2", "5")])
def test_record_keeps_dev_outputs_in_file_order(tiny_model_dir, tmp_path, task, eval_samples):
    """Per-example outputs of the reported epoch, each at its dev-file row: the labels
    the record stores match the file's at ``index``, and the stored predictions give
    back the recorded score."""
    from experiments.glue.data import get_task, load_glue
    from experiments.glue.metrics import glue_metrics

    cfg = compose_cfg(tiny_overrides(tiny_model_dir, tmp_path, f"task={task}", "method=lora",
                                     f"data.max_eval_samples={eval_samples}"))  # fmt: skip
    record = run(cfg)
    out = record["predictions"]["best"]
    assert out["split"] == "dev" and out["epoch"] == record["metrics"]["best_epoch"]
    dev = load_glue(task, FIXTURES)["dev"]
    n = len(dev) if eval_samples == "null" else int(eval_samples)
    assert sorted(out["index"]) == sorted(set(out["index"])) and len(out["index"]) == n
    assert out["label"] == [pytest.approx(dev[i]["label"]) for i in out["index"]]
    spec = get_task(task)
    score = glue_metrics(task, out["pred"], out["label"])[spec.main_metric]
    assert score == pytest.approx(record["metrics"]["main"], abs=1e-3)  # 7 digits stored


def test_heldout_selection_keeps_its_epochs_outputs(tiny_model_dir, tmp_path):
    cfg = compose_cfg(tiny_overrides(tiny_model_dir, tmp_path, "task=sst2", "method=lora",
                                     "data.heldout=4", "train.epochs=3"))  # fmt: skip
    record = run(cfg)
    held = record["predictions"]["heldout"]
    assert held["epoch"] == record["metrics"]["heldout"]["epoch"]
    acc = sum(p == g for p, g in zip(held["pred"], held["label"], strict=True)) / len(held["pred"])
    assert acc == pytest.approx(record["metrics"]["heldout"]["main"])
