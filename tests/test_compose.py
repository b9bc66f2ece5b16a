"""Composed methods (paper Table 15's LoRA+PE, LoRA+PL) on tiny models built from config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from lora import (
    LoraConfig,
    PrefixEmbedConfig,
    count_parameters,
    load_adapter,
    lora_layers,
    make_method,
    max_input_length,
    save_adapter,
)
from lora.compose import ComposedConfig
from tests.test_baselines import BUILDERS, D, L, batch, tiny_gpt2

ROOT = Path(__file__).resolve().parents[1]
PARTS = {
    "lora": {"r": 4, "lora_alpha": 8, "targets": ["q", "v"]},
    "prefix_embed": {"l_p": 3, "l_i": 2},
    "prefix_layer": {"l_p": 3, "l_i": 2},
    "adapter_h": {"r": 4},
    "bitfit": {},
}
COMBOS = ["lora+prefix_embed", "lora+prefix_layer", "lora+adapter_h", "lora+bitfit"]


def composed(name: str, arch: str, **shared):
    model = BUILDERS[arch]()
    config = make_method(name, **{p: PARTS[p] for p in name.split("+")}, **shared)
    config.apply(model)
    return model, config


def alone(part: str, arch: str, **shared):
    model = BUILDERS[arch]()
    make_method(part, **PARTS[part], **shared).apply(model)
    return model


def trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
@pytest.mark.parametrize("name", COMBOS)
def test_every_part_trains_and_counts(name, arch):
    """|Θ| of the composition = sum of the parts'; every part's parameters get gradients."""
    model, config = composed(name, arch)
    assert config.name == name and config.to_dict()["method"] == name
    parts = [alone(p, arch) for p in name.split("+")]
    counts = count_parameters(model)
    assert counts.method == sum(count_parameters(m).method for m in parts)
    head = count_parameters(parts[0]).trainable - count_parameters(parts[0]).method
    assert counts.trainable - counts.method == head  # the task head, counted once
    # each part's own names (LoRA wraps projections: compare the names it adds)
    for part in parts:
        own = {n for n in trainable_names(part) if n in dict(model.named_parameters())}
        assert own <= trainable_names(model)
    assert any("lora_" in n for n in trainable_names(model))
    model.train()
    with torch.no_grad():  # LoRA B and adapter W_up start at zero: give every part a say
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    model(**batch(arch)).loss.backward()
    for n, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, n
        if p.requires_grad:
            assert p.grad.abs().sum() > 0, n


def test_lora_plus_prefix_embed_forward_is_both_methods():
    """The composed model's logits move when either part's parameters move."""
    model, _ = composed("lora+prefix_embed", "gpt2")
    ids = batch("gpt2")["input_ids"]
    with torch.no_grad():
        base = model(ids).logits
        for key in ("lora_B", "prefix_tuning"):
            saved = {n: p.clone() for n, p in model.named_parameters() if key in n}
            for n, p in model.named_parameters():
                if key in n:
                    p.add_(torch.randn_like(p) * 0.5)
            assert (model(ids).logits - base).abs().max() > 1e-3, key
            for n, p in model.named_parameters():
                if key in n:
                    p.copy_(saved[n])


def test_config_forms_agree_and_round_trip(tmp_path):
    by_name = make_method(
        "lora+prefix_embed", lora=PARTS["lora"], prefix_embed=PARTS["prefix_embed"]
    )
    direct = ComposedConfig(
        methods=[LoraConfig(**PARTS["lora"]), PrefixEmbedConfig(**PARTS["prefix_embed"])]
    )
    assert by_name.to_dict() == direct.to_dict()
    d = by_name.to_dict()
    assert d["lora"]["r"] == 4 and d["prefix_embed"] == {"l_p": 3, "l_i": 2}
    assert "modules_to_save" not in d["lora"]  # shared settings live at the top only
    again = make_method(d.pop("method"), **d)
    assert again.to_dict() == by_name.to_dict()
    assert by_name.num_virtual_tokens == 5
    assert max_input_length(64, by_name) == 59
    # checkpoint: save the trained parts, rebuild a fresh model from the stored config
    model = tiny_gpt2()
    by_name.apply(model)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    ids = batch("gpt2")["input_ids"]
    with torch.no_grad():
        expected = model(ids).logits
    save_adapter(model, tmp_path, by_name)
    fresh = tiny_gpt2()
    load_adapter(fresh, tmp_path)
    with torch.no_grad():
        assert torch.equal(fresh(ids).logits, expected)
    assert count_parameters(fresh) == count_parameters(model)


def test_shared_settings_reach_every_part():
    model, config = composed("lora+prefix_layer", "bert", modules_to_save=[])
    assert all(m.modules_to_save == [] for m in config.methods)
    counts = count_parameters(model, modules_to_save=[])
    assert counts.trainable == counts.method  # no head trained
    assert not any("classifier" in n for n in trainable_names(model))
    config = make_method("lora+prefix_embed", autocast_adapter_dtype=False)
    assert [m.autocast_adapter_dtype for m in config.methods] == [False, False]
    parts = [LoraConfig(), PrefixEmbedConfig()]
    ComposedConfig(methods=parts, autocast_adapter_dtype=False)
    assert parts[0].autocast_adapter_dtype  # the caller's configs are not changed


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("lora+nope", {}, "unknown method 'nope' in 'lora\\+nope'; known:"),
        ("lora+lora", {}, "method 'lora' is given twice"),
        ("full_ft+lora", {}, "full_ft trains every weight and cannot be composed"),
        ("lora+full_ft", {}, "full_ft trains every weight"),
        ("prefix_embed+prefix_layer", {}, "at most one prefix method"),
        ("adapter_h+adapter_p", {}, "at most one adapter method"),
        ("lora+vera", {}, "at most one low-rank method"),
        (
            "lora+prefix_embed",
            {"r": 8},
            "has no setting\\(s\\) r; its settings: lora, prefix_embed",
        ),
        ("lora+prefix_embed", {"lora": {"r": 0}}, "lora: r must be an integer >= 1"),
        ("lora+prefix_embed", {"lora": 8}, "setting lora of method .* must be a mapping"),
        ("lora+prefix_embed", {"lora": {"modules_to_save": []}}, "set modules_to_save on"),
        ("lora+prefix_embed", {"autocast_adapter_dtype": "yes"}, "autocast_adapter_dtype must be"),
        ("lora+", {}, "unknown method '' in"),
    ],
)
def test_bad_compositions_raise_one_line_errors(name, kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        make_method(name, **kwargs)
    assert "\n" not in str(err.value)


def test_composed_config_validates_its_parts():
    with pytest.raises(ValueError, match="at least two methods; got 1"):
        ComposedConfig(methods=[LoraConfig()])
    with pytest.raises(ValueError, match="plain method configs"):
        ComposedConfig(methods=[LoraConfig(), {"r": 8}])
    inner = make_method("lora+prefix_embed")
    with pytest.raises(ValueError, match="plain method configs"):
        ComposedConfig(methods=[inner, make_method("adapter_h")])


@pytest.mark.parametrize(
    ("option", "prefix"),
    [("lora+prefix_embed", "prefix_embed"), ("lora+prefix_layer", "prefix_layer")],
)
def test_method_yaml_is_table_15(option, prefix):
    """conf/method/<option>.yaml builds the paper's r_q = r_v = 8, l_p = 8, l_i = 4 row."""
    node = OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "method" / f"{option}.yaml"))
    method = dict(node["method"])
    config = make_method(method.pop("name"), **method)
    assert config.name == option
    lora, pre = config.methods
    assert (lora.r, lora.targets, pre.l_p, pre.l_i) == (8, ["q", "v"], 8, 4)
    assert node["train"]["lr"] > 0
    model = tiny_gpt2()
    config.apply(model)
    per_layer_lora = 2 * 2 * 8 * D  # A (8×d) and B (d×8) on W_q and W_v
    prefix_count = 12 * D * (L if prefix == "prefix_layer" else 1)
    assert count_parameters(model).method == L * per_layer_lora + prefix_count


def test_failed_part_leaves_model_untouched():
    """A part that rejects the model (prefixes on DeBERTa-v2) fails before any part applies."""
    from tests.test_baselines import tiny_deberta

    model = tiny_deberta()
    before = {n: (p.detach().clone(), p.requires_grad) for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match="prefix_embed is not supported on deberta-v2"):
        make_method("lora+prefix_embed").apply(model)
    assert not lora_layers(model)
    after = {n: (p.detach().clone(), p.requires_grad) for n, p in model.named_parameters()}
    assert after.keys() == before.keys()
    for name, (value, requires_grad) in before.items():
        assert torch.equal(after[name][0], value) and after[name][1] == requires_grad, name
