"""The latency protocol (experiments/latency.py, experiments/timing.py) on a tiny GPT-2.

No test asserts on a measured time: they check the interleaving, the ratios, the
variants (shared weights, merge), the adapter sizing, the outputs and the settings.
The ``gpu`` test runs the protocol on CUDA when present.
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
from experiments.perf import latency
from experiments.perf.models import build_model, meta_model
from experiments.perf.schema import register_configs
from experiments.perf.timing import Stats, interleave, paired_ratio, time_call
from experiments.report.tables import write_tables
from lora import count_parameters, lora_layers, make_method
from tests.conftest import ROOT, tiny_gpt2

TINY = (
    "arch_overrides={n_layer:2,n_embd:32,n_head:4,vocab_size:100,n_positions:160,"
    "bos_token_id:0,eos_token_id:0}"
)
#: SmolLM2's Llama layout (grouped-query attention, gated MLP) at test size.
TINY_LLAMA = (
    "arch_overrides={hidden_size:32,num_hidden_layers:2,num_attention_heads:4,"
    "num_key_value_heads:2,head_dim:8,intermediate_size:64,vocab_size:100,"
    "max_position_embeddings:256}"
)


#: MiniLM's BERT layout (the successors comparison's model) at test size.
TINY_BERT = (
    "arch_overrides={hidden_size:32,num_hidden_layers:2,num_attention_heads:4,"
    "intermediate_size:64,vocab_size:100}"
)


def compose_latency(overrides: list[str]):
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose("latency", overrides=overrides)


def fake_timer(fn, device) -> float:
    """Runs the call, returns a fixed time: tests never depend on the clock."""
    fn()
    return 10.0


@pytest.mark.parametrize("preset", latency.PRESETS)
def test_presets_resolve(preset):
    s = latency.resolve(compose_latency([f"preset={preset}"]))
    assert s.trials >= 1 and s.grid
    if preset == "table1":
        assert s.grid == [[32, 512], [16, 256], [1, 128]] and s.trials == 100
    if preset == "figure5":
        assert len(s.grid) == 18 and s.adapter_r == [10, 100, 250]
        assert s.methods == ["adapter_l", "adapter_h"]


def test_overrides_beat_the_preset():
    s = latency.resolve(compose_latency(["preset=table1", "trials=7", "grid=[[2,64]]"]))
    assert s.trials == 7 and s.grid == [[2, 64]] and s.warmup == 10


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dtype=fp8", "invalid setting dtype: 'fp8'; allowed: fp32, fp16, bf16"),
        ("device=tpu", "invalid setting device: 'tpu'; allowed: cpu, cuda"),
        ("merged={x:{name:adapter_h,r:8}}", "invalid setting merged.x.name: 'adapter_h' does not"),
        ("merged={x:{name:lora,r:0}}", "invalid setting merged.x: r must be an integer >= 1"),
        ("methods=[lora_merged,adapter_x]", "invalid setting methods: ['adapter_x']; allowed:"),
        ("grid=[[0,128]]", "invalid setting grid: must be an integer >= 1; got 0"),
        ("grid=[[1,128,3]]", "invalid setting grid: entries must be [batch, seq]"),
        ("grid=[[1,1020]]", "invalid setting grid: seq 1020 + 16 prefix tokens exceeds"),
        ("trials=0", "invalid setting trials: must be an integer >= 1; got 0"),
        ("lora.r=0", "invalid setting lora: r must be an integer >= 1; got 0"),
        ("adapter_budgets=[]", "invalid setting adapter_budgets: adapter methods need"),
    ],
)
def test_bad_settings_fail_in_one_line(override, message):
    with pytest.raises(ConfigError) as err:
        latency.resolve(compose_latency([override]))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_preset_names_the_preset_files():
    with pytest.raises(MissingConfigException) as err:  # Hydra's, at compose time
        compose_latency(["preset=fast"])
    assert "preset/fast" in str(err.value)
    assert all(f"\t{name}" in str(err.value) for name in latency.PRESETS)


def test_a_bad_setting_fails_before_any_model_is_built(monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("a model was built")

    monkeypatch.setattr(latency, "build_model", no_model)
    with pytest.raises(ConfigError, match="^invalid setting warmup: must be an integer >= 0"):
        latency.run(compose_latency(["warmup=-1"]))


#: Every preset file's values, as the hand-written dicts of conf/latency.yaml had them.
PRESET_VALUES = {
    "cpu": dict(name="table1_latency", grid=[[1, 128], [4, 128], [1, 512]], trials=8,
                warmup=1, methods=["lora_merged", "lora_unmerged", "adapter_l", "adapter_h",
                                   "prefix_layer"],
                adapter_budgets=[500000, 11000000], adapter_r=[], merged={}),
    "table1": dict(name="table1_latency", grid=[[32, 512], [16, 256], [1, 128]], trials=100,
                   warmup=10, methods=list(latency.METHOD_KINDS),
                   adapter_budgets=[500000, 11000000], adapter_r=[], merged={}),
    "figure5": dict(name="figure5_latency", grid=[[b, s] for s in (128, 256, 512)
                                                  for b in (1, 2, 4, 8, 16, 32)],
                    trials=100, warmup=10, methods=["adapter_l", "adapter_h"],
                    adapter_budgets=[], adapter_r=[10, 100, 250], merged={}),
    "successors": dict(name="successors_minilm_latency", grid=[[1, 128], [4, 128]], trials=20,
                       warmup=2, methods=["adapter_h"], adapter_budgets=[], adapter_r=[8],
                       merged={
        "lora": {"name": "lora", "r": 8, "lora_alpha": 16, "targets": ["q", "v"]},
        "rslora": {"name": "lora", "r": 8, "lora_alpha": 16, "targets": ["q", "v"],
                   "use_rslora": True},
        "dora": {"name": "lora", "r": 8, "lora_alpha": 16, "targets": ["q", "v"],
                 "use_dora": True},
        "pissa": {"name": "lora", "r": 8, "lora_alpha": 8, "targets": ["q", "v"],
                  "init": "pissa"},
        "vera": {"name": "vera", "r": 256, "targets": ["q", "v"], "d_initial": 0.1,
                 "projection_prng_key": 0},
        "loraplus": {"name": "lora", "r": 8, "lora_alpha": 16, "targets": ["q", "v"],
                     "loraplus_lr_ratio": 16},
    }),
    "parity_targets": dict(name="parity_target_lr_latency", grid=[[1, 128], [4, 128]],
                           trials=20, warmup=2, methods=[], adapter_budgets=[], adapter_r=[],
                           merged={
        "lora": {"name": "lora", "r": 8, "lora_alpha": 16, "targets": ["q", "v"]},
        "qkvo_r4": {"name": "lora", "r": 4, "lora_alpha": 16, "targets": ["q", "k", "v", "o"]},
        "mlp_r3": {"name": "lora", "r": 3, "lora_alpha": 16, "targets": ["ffn_in", "ffn_out"]},
        "all_r2": {"name": "lora", "r": 2, "lora_alpha": 16, "targets": "all-linear"},
    }),
}  # fmt: skip


def test_parity_targets_latency_times_the_methods_parity_target_lr_trains():
    """The table only takes a latency for settings equal to the trained ones
    (successors_tables.merged_latency): the preset must not drift from the experiment."""
    from tests.test_config import compose_cfg

    cfg = compose_cfg(["experiment=parity_target_lr", "task=sst2"])
    trained = OmegaConf.to_container(cfg.hparams, resolve=True)
    timed = PRESET_VALUES["parity_targets"]["merged"]
    for row in ("qkvo_r4", "mlp_r3", "all_r2"):
        assert trained[row]["method"] == timed[row], row


@pytest.mark.parametrize("preset", sorted(PRESET_VALUES))
def test_every_preset_file_composes_with_its_exact_values(preset):
    assert tuple(sorted(PRESET_VALUES)) == latency.PRESETS  # no preset file untested
    model = ["model=minilm-l6"] if preset in ("successors", "parity_targets") else []
    cfg = compose_latency([f"preset={preset}", *model])
    composed = OmegaConf.to_container(cfg)
    assert composed["preset"] == preset
    s = latency.resolve(cfg)
    settings = s.record_settings()
    assert {k: settings[k] for k in PRESET_VALUES[preset]} == PRESET_VALUES[preset]
    # the settings every preset shares, and the record keys (and so run ids) of before
    assert settings["lora"] == {"r": 4, "lora_alpha": 32, "targets": ["q", "v"]}
    assert (settings["device"], settings["dtype"], settings["seed"]) == ("cpu", "fp32", 0)
    assert sorted(settings) == sorted(["adapter_budgets", "adapter_r", "arch", "arch_overrides",
        "device", "dtype", "grid", "lora", "merged", "methods", "model", "name", "prefix",
        "preset", "results_dir", "seed", "threads", "trials", "warmup"])  # fmt: skip


def test_a_committed_records_settings_are_what_its_command_line_composes():
    record = json.loads(next((ROOT / "results" / "runs" / "latency").glob(
        "successors_minilm_latency-*.json")).read_text())  # fmt: skip
    s = latency.resolve(
        compose_latency(
            [
                "preset=successors",
                "model=minilm-l6",
                f"results_dir={record['settings']['results_dir']}",
            ]
        )
    )
    assert json.loads(json.dumps(s.record_settings())) == record["settings"]


def test_cuda_setting_without_cuda_is_a_one_line_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ConfigError, match="'cuda' but CUDA is not available; allowed: cpu"):
        latency.resolve(compose_latency(["device=cuda"]))


def test_adapter_sizes_follow_the_paper_budgets():
    r = latency.r_for_budget
    assert r("adapter_l", 24, 1024, 500_000) == 9  # 0.52M, reference §1.1
    assert r("adapter_l", 24, 1024, 11_000_000) == 222
    assert r("adapter_h", 24, 1024, 500_000) == 5
    assert r("adapter_h", 24, 1024, 11_000_000) == 111
    assert latency.adapter_params("adapter_l", 24, 1024, 224) == 11_089_152  # paper's 11.09M
    assert latency.adapter_params("adapter_l", 24, 1024, 6) == 368_784  # paper's 0.37M


@pytest.mark.parametrize("kind", latency.ADAPTER_KINDS)
def test_formula_equals_counted_parameters(kind):
    model = make_method(kind, r=3).apply(tiny_gpt2())
    assert count_parameters(model).method == latency.adapter_params(kind, 2, 32, 3)


def test_interleave_calls_each_once_per_round_in_varying_order():
    calls: list[str] = []
    fns = {name: (lambda n=name: calls.append(n)) for name in "abcd"}
    times = interleave(fns, trials=6, warmup=2, device=torch.device("cpu"), timer=fake_timer)
    assert calls[:8] == list("abcd") * 2  # warm-up rounds
    rounds = [calls[8 + 4 * i : 12 + 4 * i] for i in range(6)]
    assert all(sorted(r) == list("abcd") for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1
    assert {k: len(v) for k, v in times.items()} == dict.fromkeys("abcd", 6)


def test_time_call_cpu_returns_milliseconds():
    assert time_call(lambda: None, torch.device("cpu")) >= 0.0


def test_paired_ratio_and_stats():
    assert paired_ratio([2.0, 4.0, 6.0], [1.0, 2.0, 3.0]) == (2.0, 0.0)
    ratio, se = paired_ratio([1.1, 1.0, 1.3], [1.0, 1.0, 1.0])
    assert ratio == pytest.approx(1.1) and se > 0
    with pytest.raises(ValueError):
        paired_ratio([1.0], [1.0, 2.0])
    st = Stats.of([1.0, 2.0, 3.0])
    assert (st.mean, st.std, st.median, st.min, st.n) == (2.0, 1.0, 2.0, 1.0, 3)
    assert st.fmt() == "2.0±1.0"


def test_variants_share_weights_and_merge_without_touching_the_base():
    s = latency.resolve(compose_latency([TINY, "adapter_budgets=[2000]", "grid=[[1,16]]"]))
    base = tiny_gpt2()
    w0 = base.transformer.h[0].attn.c_attn.weight.detach().clone()
    variants = {v.key: v for v in latency.plan_variants(s, 2, 32)}
    assert set(variants) == {
        "base",
        "lora_merged",
        "lora_unmerged",
        "adapter_l-r14",
        "adapter_h-r7",
        "prefix_layer",
    }
    merged, _ = latency.build_variant(base, variants["lora_merged"], 0)
    unmerged, params = latency.build_variant(base, variants["lora_unmerged"], 0)
    unloaded_variant = latency.Variant(
        "lora_unloaded", "lora_unloaded", variants["lora_merged"].method
    )
    unloaded, _ = latency.build_variant(base, unloaded_variant, 0)
    assert not lora_layers(unloaded) and len(lora_layers(merged)) == 2
    assert params == 2 * 2 * (2 * 32 * 4)  # (W_q, W_v) x 2 layers x (A + B), rank 4
    torch.testing.assert_close(base.transformer.h[0].attn.c_attn.weight, w0, rtol=0, atol=0)
    assert unmerged.transformer.wte.weight is base.transformer.wte.weight
    ids = torch.randint(0, 100, (2, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out_m, out_u = merged(ids).logits, unmerged(ids).logits
        torch.testing.assert_close(out_m, out_u, atol=1e-5, rtol=0)
        torch.testing.assert_close(unloaded(ids).logits, out_m, atol=1e-6, rtol=0)
        assert not torch.allclose(out_u, base(ids).logits, atol=1e-4)


def _point(batch, seq, ratios):
    res = {"base": {"ratio": 1.0}, **{k: {"ratio": r} for k, r in ratios.items()}}
    return {"batch": batch, "seq": seq, "tokens": batch * seq, "results": res}


def test_targets_are_evaluated_on_the_ratios():
    variants = [
        latency.Variant("base", "base"),
        latency.Variant("lora_merged", "lora_merged", {"r": 4, "targets": ["q"]}),
        latency.Variant("adapter_l-r9", "adapter_l", {"r": 9}, 500_000),
        latency.Variant("adapter_h-r5", "adapter_h", {"r": 5}, 500_000),
    ]
    good = [
        _point(1, 128, {"lora_merged": 1.01, "adapter_l-r9": 1.2, "adapter_h-r5": 1.3}),
        _point(4, 128, {"lora_merged": 0.99, "adapter_l-r9": 1.1, "adapter_h-r5": 1.15}),
    ]
    assert [t["met"] for t in latency.check_targets(good, variants)] == [True] * 4
    bad = [
        _point(1, 128, {"lora_merged": 1.05, "adapter_l-r9": 1.2, "adapter_h-r5": 1.1}),
        _point(4, 128, {"lora_merged": 1.0, "adapter_l-r9": 1.3, "adapter_h-r5": 0.99}),
    ]
    assert [t["met"] for t in latency.check_targets(bad, variants)] == [False] * 4


def _run_tiny(tmp_path, extra=()):
    cfg = compose_latency(
        [
            TINY,
            "grid=[[1,128],[2,16]]",
            "trials=2",
            "warmup=1",
            "adapter_budgets=[2000,6000]",
            f"results_dir={tmp_path}",
            *extra,
        ]
    )
    return latency.run(cfg)


def test_run_writes_table_csv_plot_and_record(tmp_path):
    record, paths = _run_tiny(tmp_path)
    names = {p.name for p in paths}
    assert {"table1_latency.md", "table1_latency.csv"} <= names
    md = (tmp_path / "tables" / "table1_latency.md").read_text()
    assert "| Base (no adaptation) |" in md and "*Paper: AdapterH*" in md
    assert "*25.8±2.2 (+30.3%), \\|Θ\\| 11.00M*" in md  # the paper's 1×128 AdapterH cell
    assert "CPU default" in md and "## Targets" in md
    assert "Adapters: r from each budget by the paper's count" in md
    rows = list(
        csv.DictReader((tmp_path / "tables" / "table1_latency.csv").read_text().splitlines())
    )
    ours = [r for r in rows if r["source"] == "ours"]
    assert len(ours) == 2 * len(record["variants"])  # every variant at both points
    assert len([r for r in rows if r["source"] == "paper"]) == 3  # (1,128) only
    for r in ours:
        point = next(p for p in record["points"] if p["batch"] == int(r["batch"]))
        key = next(v["key"] for v in record["variants"] if v["label"] == r["label"])
        assert float(r["ratio_vs_base"]) == pytest.approx(point["results"][key]["ratio"], abs=1e-4)
    base_rows = [r for r in ours if r["method"] == "base"]
    assert all(float(r["ratio_vs_base"]) == 1.0 for r in base_rows)
    saved = json.loads(next(p for p in paths if p.suffix == ".json").read_text())
    assert saved["status"] == "ok" and saved["experiment"] == "latency"
    assert saved["hardware"]["torch"] == torch.__version__ and saved["provenance"]["packages"]
    if pytest.importorskip("matplotlib"):
        assert (tmp_path / "tables" / "table1_latency.png").stat().st_size > 0


def test_make_tables_rebuilds_the_jobs_tables_from_its_record(tmp_path):
    _, paths = _run_tiny(tmp_path)
    made = {p.name: p.read_bytes() for p in paths if p.parent.name == "tables"}
    assert {"table1_latency.md", "table1_latency.csv"} <= set(made)
    shutil.rmtree(tmp_path / "tables")
    write_tables(tmp_path)
    assert {p.name: p.read_bytes() for p in (tmp_path / "tables").iterdir()} == made


def test_figure5_preset_runs_on_a_tiny_grid(tmp_path):
    cfg = compose_latency(
        [
            TINY,
            "preset=figure5",
            "grid=[[1,8],[2,8],[1,16]]",
            "trials=1",
            "warmup=0",
            "adapter_r=[2,4]",
            f"results_dir={tmp_path}",
        ]
    )
    record, _ = latency.run(cfg, timer=fake_timer)
    assert [v["key"] for v in record["variants"]] == [
        "base",
        "adapter_l-r2",
        "adapter_l-r4",
        "adapter_h-r2",
        "adapter_h-r4",
    ]
    assert all(r["ratio"] == 1.0 for p in record["points"] for r in p["results"].values())
    assert (tmp_path / "tables" / "figure5_latency.md").exists()


def test_llama_preset_times_every_variant(tmp_path):
    cfg = compose_latency(
        ["model=smollm2-135m", TINY_LLAMA, "grid=[[1,8],[2,16]]", "trials=1", "warmup=0",
         "adapter_budgets=[2000]", "methods=[lora_merged,lora_unloaded,lora_unmerged,adapter_l,"
         "adapter_h,prefix_layer]", f"results_dir={tmp_path}"]
    )  # fmt: skip
    record, paths = latency.run(cfg, timer=fake_timer)
    assert record["arch"]["model_type"] == "llama" and record["arch"]["hidden_size"] == 32
    kinds = {v["kind"] for v in record["variants"]}
    assert kinds == {"base", *latency.METHOD_KINDS}
    assert all(
        set(p["results"]) == {v["key"] for v in record["variants"]} for p in record["points"]
    )
    assert "smollm2-135m architecture" in (tmp_path / "tables" / "table1_latency.md").read_text()


def test_llama_variants_merge_to_the_unmerged_function():
    s = latency.resolve(compose_latency(["model=smollm2-135m", TINY_LLAMA, "grid=[[1,8]]"]))
    base = build_model(meta_model(s.model, s.arch_overrides), torch.device("cpu"),
                       torch.float32, 0).eval()  # fmt: skip
    ids = torch.randint(0, 100, (2, 8), generator=torch.Generator().manual_seed(0))
    out = {}
    for kind in ("lora_merged", "lora_unloaded", "lora_unmerged"):
        model, params = latency.build_variant(base, latency.Variant(kind, kind,
                                              {"name": "lora", **s.lora}), 0)  # fmt: skip
        assert params == 2 * 4 * ((32 + 32) + (32 + 16))  # L · r · (W_q 32->32 + W_v 32->16)
        with torch.no_grad():
            out[kind] = model(input_ids=ids, use_cache=False).logits
    with torch.no_grad():
        plain = base(input_ids=ids, use_cache=False).logits
    assert not torch.allclose(out["lora_unmerged"], plain, atol=1e-4)  # B is non-zero
    for kind in ("lora_merged", "lora_unloaded"):
        torch.testing.assert_close(out[kind], out["lora_unmerged"], atol=1e-5, rtol=1e-4)


@pytest.mark.gpu
def test_protocol_on_cuda(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    ms = time_call(
        lambda: torch.randn(512, 512, device="cuda") @ torch.randn(512, 512, device="cuda"),
        torch.device("cuda"),
    )
    assert ms > 0
    record, _ = _run_tiny(tmp_path, ["device=cuda", "trials=3"])
    assert record["hardware"]["gpu"] and record["settings"]["device"] == "cuda"
    assert all(p["results"]["base"]["stats"]["mean"] > 0 for p in record["points"])


@pytest.mark.parametrize("entry", ["experiments.latency", "experiments.bench"])
def test_module_entry_points_find_their_config(entry):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", entry, "--cfg", "job"], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_successors_preset_times_what_the_comparison_trains():
    s = latency.resolve(compose_latency(["preset=successors", "model=minilm-l6"]))
    preset = OmegaConf.load(ROOT / "conf" / "experiment" / "successors_minilm.yaml")
    hparams = OmegaConf.to_container(preset.hparams)
    assert s.merged == {row: hparams[row]["method"] for row in s.merged}
    assert set(s.merged) == set(hparams) - {"full_ft", "adapter_h", "bitfit"}
    assert s.methods == ["adapter_h"] and s.adapter_r == [hparams["adapter_h"]["method"]["r"]]
    assert s.name == "successors_minilm_latency"


def test_merged_successors_are_the_base_architecture_and_leave_the_base_untouched():
    s = latency.resolve(compose_latency(["preset=successors", "model=minilm-l6", TINY_BERT]))
    base = build_model(meta_model(s.model, s.arch_overrides), torch.device("cpu"),
                       torch.float32, 0).eval()  # fmt: skip
    before = {k: v.clone() for k, v in base.state_dict().items()}
    shapes = {k: v.shape for k, v in before.items()}
    ids = torch.randint(0, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = base(input_ids=ids).logits
    merged = [v for v in latency.plan_variants(s, 2, 32) if v.kind == "merged"]
    assert [v.key for v in merged] == [f"merged-{row}" for row in s.merged]
    for v in merged:
        model, params = latency.build_variant(base, v, 0)
        assert not lora_layers(model) and params > 0, v.key
        assert {k: t.shape for k, t in model.state_dict().items()} == shapes, v.key
        with torch.no_grad():  # every update is zero (B = 0 or λ_d·0) at initialisation
            torch.testing.assert_close(model(input_ids=ids).logits, ref, atol=1e-5, rtol=0)
    for k, w in base.state_dict().items():  # PiSSA's residual and the merges: on copies
        torch.testing.assert_close(w, before[k], rtol=0, atol=0)
    assert "DoRA (r=8, W_q,W_v) merged" in [v.label for v in merged]


def test_successors_run_writes_merged_rows_without_paper_rows(tmp_path):
    cfg = compose_latency(["preset=successors", "model=minilm-l6", TINY_BERT, "grid=[[1,8]]",
                           "trials=1", "warmup=0", f"results_dir={tmp_path}"])  # fmt: skip
    record, _ = latency.run(cfg, timer=fake_timer)
    md = (tmp_path / "tables" / "successors_minilm_latency.md").read_text()
    assert "| VeRA (r=256, W_q,W_v) merged |" in md and "| AdapterH (r=8) |" in md
    assert "*Paper" not in md and "No paper rows: Table 1 timed gpt2-medium" in md
    assert "Adapters: r as set; |Θ| by the paper's count" in md
    merged_targets = [t for t in record["targets"] if "merged / base latency" in t["target"]]
    assert len(merged_targets) == 6 and all(t["met"] for t in merged_targets)


def test_a_method_that_does_not_fit_the_model_is_a_one_line_error(tmp_path):
    cfg = compose_latency(["preset=successors", TINY, "grid=[[1,8]]", f"results_dir={tmp_path}"])
    with pytest.raises(ConfigError) as err:  # GPT-2's fused c_attn has no DoRA
        latency.run(cfg, timer=fake_timer)
    assert str(err.value).startswith("invalid setting merged.dora for model=gpt2-medium: ")
    assert "use_dora must be False on fused projections" in str(err.value)
    assert "\n" not in str(err.value)
