"""The efficiency benchmark (experiments/bench.py) on tiny GPT-2 and RoBERTa models.

No test asserts on a measured time; they check the settings, the training steps, the
checkpoint sizes, the fresh-process memory probe and the written tables. The ``gpu``
test runs the benchmark on CUDA when present.
"""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from experiments.core.schema import ConfigError
from experiments.perf import bench
from experiments.perf.schema import register_configs
from experiments.report.tables import write_tables
from tests.conftest import ROOT

TINY = (
    "arch_overrides={hidden_size:32,num_hidden_layers:2,num_attention_heads:4,"
    "intermediate_size:64,vocab_size:100,bos_token_id:0,eos_token_id:2}"
)
SMALL = [TINY, "batch=2", "seq=8", "trials=2", "warmup=1", "memory_steps=1"]
#: SmolLM2's Llama layout (grouped-query attention, gated MLP) at test size.
TINY_LLAMA = (
    "arch_overrides={hidden_size:32,num_hidden_layers:2,num_attention_heads:4,"
    "num_key_value_heads:2,head_dim:8,intermediate_size:64,vocab_size:100,"
    "max_position_embeddings:256}"
)


def compose_bench(overrides: list[str]):
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose("bench", overrides=overrides)


def fake_timer(fn, device) -> float:
    fn()
    return 10.0


@pytest.mark.parametrize("preset", bench.PRESETS)
def test_presets_resolve(preset):
    s = bench.resolve(compose_bench([f"preset={preset}"]))
    assert s.models == ["gpt2-medium", "roberta-base"] and s.sections == list(bench.SECTIONS)
    assert s.batch >= 1 and s.trials >= 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sections=[train,speed]", "invalid setting sections: ['speed']; allowed: train, memory"),
        ("models=[gpt9]", "invalid setting models: 'gpt9'; allowed:"),
        ("peft_model=gpt2-medium", "invalid setting peft_model: 'gpt2-medium': peft wraps whole"),
        (
            "models=[deberta-v2-xxlarge]",
            "invalid setting lora: no entry for model_type 'deberta-v2'",
        ),
        ("seq=600", "invalid setting seq: 600 exceeds roberta-base's 512 usable positions"),
        ("warmup=0", "invalid setting warmup: must be an integer >= 1; got 0"),
        ("lora.gpt2.r=0", "invalid setting lora.gpt2: r must be an integer >= 1; got 0"),
        ("dtype=int8", "invalid setting dtype: 'int8'; allowed: fp32, fp16, bf16"),
    ],
)
def test_bad_settings_fail_in_one_line(override, message):
    with pytest.raises(ConfigError) as err:
        bench.resolve(compose_bench([override]))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_preset_names_the_preset_files():
    with pytest.raises(MissingConfigException) as err:  # Hydra's, at compose time
        compose_bench(["preset=tpu"])
    assert "preset/tpu" in str(err.value) and "\tcpu" in str(err.value)


#: Every preset file's values, as the hand-written dicts of conf/bench.yaml had them.
PRESET_VALUES = {
    "cpu": {"name": "efficiency", "batch": 2, "seq": 128, "trials": 10, "warmup": 2},
    "gpu": {"name": "efficiency", "batch": 8, "seq": 512, "trials": 50, "warmup": 5},
}


@pytest.mark.parametrize("preset", sorted(PRESET_VALUES))
def test_every_preset_file_composes_with_its_exact_values(preset):
    assert tuple(sorted(PRESET_VALUES)) == bench.PRESETS  # no preset file untested
    cfg = compose_bench([f"preset={preset}"])
    assert OmegaConf.to_container(cfg)["preset"] == preset
    settings = bench.resolve(cfg).record_settings()
    assert {k: settings[k] for k in PRESET_VALUES[preset]} == PRESET_VALUES[preset]
    assert (settings["memory_steps"], settings["lr"], settings["peft_model"]) == (
        2, 1e-4, "roberta-base")  # fmt: skip
    assert sorted(settings) == sorted(["arch_overrides", "batch", "device", "dtype", "lora",
        "lr", "memory_steps", "models", "name", "peft_model", "preset", "results_dir",
        "sections", "seed", "seq", "threads", "trials", "warmup"])  # fmt: skip


def test_a_command_line_override_beats_the_preset():
    s = bench.resolve(compose_bench(["preset=gpu", "trials=3", "name=x"]))
    assert (s.trials, s.name, s.batch) == (3, "x", 8)


@pytest.mark.parametrize("name", ["gpt2-medium", "roberta-base"])
def test_lora_step_trains_only_lora_and_full_ft_trains_all(name):
    s = bench.resolve(compose_bench(SMALL))
    built = bench.meta(name, s)
    config = built.config
    device = torch.device("cpu")
    inputs = bench.make_inputs(config, 2, 8, device, 0)
    for method in bench.METHODS:
        model = bench.adapt(bench.build_model(built, device, torch.float32, 0), method, s)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        bench.train_step(model, inputs, 1e-2)()
        changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert changed <= trainable and changed
        if method == "lora":
            assert all("lora_" in n or "classifier" in n for n in changed)


def test_checkpoint_sizes_lora_is_smaller():
    s = bench.resolve(compose_bench(SMALL))
    built = bench.meta("roberta-base", s)
    full = bench.adapt(
        bench.build_model(built, torch.device("cpu"), torch.float32, 0), "full_ft", s
    )
    lora = bench.adapt(bench.build_model(built, torch.device("cpu"), torch.float32, 0), "lora", s)
    sizes = bench.checkpoint_sizes({"full_ft": full, "lora": lora}, s)
    assert sizes["lora"]["bytes"] < sizes["full_ft"]["bytes"]
    assert sizes["lora"]["params"]["trainable"] < sizes["full_ft"]["params"]["trainable"]
    assert sizes["full_ft"]["params"]["trainable"] == sizes["full_ft"]["params"]["total"]


def test_run_writes_tables_csv_and_record(tmp_path):
    cfg = compose_bench([*SMALL, "models=[gpt2-medium]", f"results_dir={tmp_path}"])
    record, paths = bench.run(cfg, timer=fake_timer)
    # the fresh-process memory probe really ran, once per method
    assert [(m["model"], m["method"]) for m in record["memory"]] == [
        ("gpt2-medium", "full_ft"),
        ("gpt2-medium", "lora"),
    ]
    assert all(m["peak_rss_mb"] > 0 for m in record["memory"])
    assert record["memory"][1]["ratio"] == pytest.approx(
        record["memory"][1]["peak_rss_mb"] / record["memory"][0]["peak_rss_mb"]
    )
    assert record["models"][0]["train"]["ratio"]["lora"] == (1.0, 0.0)  # the fake timer
    assert {t["where"] for t in record["targets"]} == {"gpt2-medium", "roberta-base"}
    md = (tmp_path / "tables" / "efficiency.md").read_text()
    for heading in (
        "## Training step time and peak RSS",
        "## Trainable parameters and checkpoint",
        "## Our LoRA vs peft",
        "## Targets",
    ):
        assert heading in md
    rows = list(csv.DictReader((tmp_path / "tables" / "efficiency.csv").read_text().splitlines()))
    assert {r["section"] for r in rows} == {"train", "memory", "checkpoint", "peft"}
    ckpt = next(r for r in rows if r["measure"] == "checkpoint size")
    assert float(ckpt["ratio"]) == pytest.approx(float(ckpt["a_value"]) / float(ckpt["b_value"]))
    step = next(r for r in rows if r["section"] == "train")
    assert step["target_max"] == "0.75" and step["met"] == "False"
    saved = json.loads(next(p for p in paths if p.suffix == ".json").read_text())
    assert saved["experiment"] == "bench" and saved["status"] == "ok"
    assert saved["peft"]["forward_merged"]["stats"].keys() == {"base", "ours", "peft"}


def test_make_tables_rebuilds_the_jobs_tables_from_its_record(tmp_path):
    cfg = compose_bench([*SMALL, "sections=[checkpoint,train]", f"results_dir={tmp_path}"])
    _, paths = bench.run(cfg, timer=fake_timer)
    made = {p.name: p.read_bytes() for p in paths if p.parent.name == "tables"}
    assert set(made) == {"efficiency.md", "efficiency.csv"}
    assert "| gpt2-medium | FT |" in made["efficiency.md"].decode()  # the paper's label
    shutil.rmtree(tmp_path / "tables")
    write_tables(tmp_path)
    assert {p.name: p.read_bytes() for p in (tmp_path / "tables").iterdir()} == made


def test_model_setting_replaces_models_and_peft_model():
    s = bench.resolve(compose_bench(["model=smollm2-135m", TINY_LLAMA]))
    assert s.models == ["smollm2-135m"] and s.peft_model == "smollm2-135m"


def test_llama_lora_step_trains_only_lora_on_lm_labels():
    s = bench.resolve(compose_bench(["model=smollm2-135m", TINY_LLAMA]))
    built = bench.meta("smollm2-135m", s)
    config = built.config
    inputs = bench.make_inputs(config, 2, 8, torch.device("cpu"), 0)
    assert torch.equal(inputs["labels"], inputs["input_ids"])  # causal LM loss
    model = bench.adapt(bench.build_model(built, torch.device("cpu"), torch.float32, 0), "lora", s)
    assert type(model).__name__ == "LlamaForCausalLM"
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    bench.train_step(model, inputs, 1e-2)()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)
    assert {n.split(".")[-2] for n in changed} == {"q_proj", "v_proj"}


def test_llama_runs_every_section(tmp_path):
    pytest.importorskip("peft")
    cfg = compose_bench(["model=smollm2-135m", TINY_LLAMA, "batch=2", "seq=8", "trials=2",
                         "warmup=1", "memory_steps=1", f"results_dir={tmp_path}"])  # fmt: skip
    record, _ = bench.run(cfg, timer=fake_timer)
    (m,) = record["models"]
    assert m["model_type"] == "llama" and m["lora"]["targets"] == ["q", "v"]
    ckpt = m["checkpoint"]
    # L · r · (W_q 32->32 + W_v 32->16)
    assert ckpt["lora"]["params"]["trainable"] == 2 * 4 * ((32 + 32) + (32 + 16))
    assert [(x["method"], x["model_type"]) for x in record["memory"]] == [
        ("full_ft", "llama"),
        ("lora", "llama"),
    ]
    assert {t["key"] for t in record["targets"]} == {
        "train_step", "memory", "peft_forward", "peft_train"
    }  # fmt: skip
    assert record["peft"]["model"] == "smollm2-135m"
    assert "| smollm2-135m |" in (tmp_path / "tables" / "efficiency.md").read_text()


@pytest.mark.gpu
def test_bench_on_cuda(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cfg = compose_bench([*SMALL, "device=cuda", "models=[gpt2-medium]", f"results_dir={tmp_path}"])
    record, _ = bench.run(cfg)
    assert all(m["peak_gpu_mb"] > 0 for m in record["memory"])
    assert record["hardware"]["gpu"]
    assert record["models"][0]["train"]["stats"]["lora"]["mean"] > 0
