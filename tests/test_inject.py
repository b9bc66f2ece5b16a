"""Injection by the paper's names, trainability, bias modes, merge_and_unload, errors."""

from __future__ import annotations

import pytest
import torch
from transformers import DebertaV2Config, DebertaV2ForSequenceClassification, T5Config
from transformers.pytorch_utils import Conv1D

from lora import LoraConfig, apply_lora, lora_layers, make_method, merge_and_unload
from lora.arch import normalize_targets
from tests.conftest import randomize_lora


def test_targets_map_to_bert_modules(bert):
    apply_lora(bert, ["W_q", "value", "o"], r=2)
    wrapped = sorted(
        n.removeprefix("bert.encoder.layer.")
        for n, m in bert.named_modules()
        if m in lora_layers(bert)
    )
    assert wrapped == [
        f"{i}.{p}" for i in range(2)
        for p in ("attention.output.dense", "attention.self.query", "attention.self.value")
    ]  # fmt: skip


def test_deberta_targets():
    model = DebertaV2ForSequenceClassification(
        DebertaV2Config(
            vocab_size=50,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
        )  # fmt: skip
    )
    apply_lora(model, ["q", "v"], r=2)
    names = [n for n, m in model.named_modules() if m in lora_layers(model)]
    assert len(names) == 4
    assert all(n.endswith(("query_proj", "value_proj")) for n in names)


def test_gpt2_o_and_mlp_wrap_whole_conv1d(gpt2):
    apply_lora(gpt2, ["o", "ffn_in", "ffn_out"], r=2)
    block = gpt2.transformer.h[1]
    for layer in (block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj):
        assert isinstance(layer.base_layer, Conv1D) and layer.fan_in_fan_out


def test_layers_subset(bert):
    apply_lora(bert, ["q"], r=2, layers=[1])
    assert len(lora_layers(bert)) == 1
    with pytest.raises(ValueError, match="out of range"):
        apply_lora(bert.__class__(bert.config), ["q"], r=2, layers=[5])


@pytest.mark.parametrize(
    ("bias", "expected"),
    [
        ("none", set()),
        ("lora_only", {"query", "value"}),
        ("all", {"query", "value", "key", "LayerNorm"}),
    ],
)
def test_bias_modes(bert, bias, expected):
    apply_lora(bert, ["q", "v"], r=2, bias=bias)
    trainable_bias = {
        n for n, p in bert.named_parameters()
        if p.requires_grad and n.endswith("bias") and "classifier" not in n and "pooler" not in n
    }  # fmt: skip
    kinds = {
        k for k in ("query", "value", "key", "LayerNorm") if any(k in n for n in trainable_bias)
    }
    assert kinds == expected


def test_merge_and_unload_returns_plain_model(gpt2, token_ids):
    apply_lora(gpt2, ["q", "v"], r=4)
    randomize_lora(gpt2)
    adapted = gpt2(token_ids).logits
    plain = merge_and_unload(gpt2)
    assert not lora_layers(plain)
    assert not any("lora_" in n for n, _ in plain.named_parameters())
    assert type(plain.transformer.h[0].attn.c_attn) is Conv1D
    torch.testing.assert_close(plain(token_ids).logits, adapted, atol=1e-5, rtol=0)
    assert set(plain.state_dict()) == set(gpt2.__class__(gpt2.config).state_dict())


def test_double_injection_is_refused(bert):
    apply_lora(bert, ["q"], r=2)
    with pytest.raises(ValueError, match="already has LoRA"):
        apply_lora(bert, ["q"], r=2)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: apply_lora(m, ["q", "z"]), r"unknown LoRA target 'z'; valid names: q, k, v, o"),
        (lambda m: apply_lora(m, []), "targets must not be empty"),
        (lambda m: apply_lora(m, ["q"], bias="some"), "bias must be one of none, all, lora_only"),
        (lambda m: make_method("lora", r=0), "r must be an integer >= 1"),
        (lambda m: make_method("lora", rank=4), "has no setting"),
        (lambda m: make_method("loraa"), "unknown method 'loraa'; known:"),
        (lambda m: LoraConfig(lora_alpha=-1), "lora_alpha must be > 0"),
    ],
)
def test_errors_are_one_line_and_list_valid_values(bert, call, message):
    with pytest.raises(ValueError, match=message) as info:
        call(bert)
    assert "\n" not in str(info.value)


def test_unknown_architecture_lists_supported():
    from transformers import T5ForConditionalGeneration

    model = T5ForConditionalGeneration(T5Config(d_model=16, d_ff=32, num_layers=1, num_heads=2,
                                                 vocab_size=20, d_kv=8))  # fmt: skip
    with pytest.raises(
        ValueError, match=r"unsupported architecture model_type='t5'; supported: bert"
    ):
        apply_lora(model, ["q"])


def test_normalize_targets_order_and_aliases():
    assert normalize_targets(["v", "W_Q"]) == ("q", "v")
    assert normalize_targets("q,k,v,o") == ("q", "k", "v", "o")


def test_module_names_match_exactly_or_as_dotted_suffix(bert):
    apply_lora(bert, ["self.query", "bert.encoder.layer.1.attention.self.value"], r=2)
    names = sorted(n.removeprefix("bert.encoder.layer.") for n, m in bert.named_modules()
                   if m in lora_layers(bert))  # fmt: skip
    assert names == ["0.attention.self.query", "1.attention.self.query", "1.attention.self.value"]


def test_regex_is_a_full_match_on_the_full_name(bert):
    apply_lora(bert, r".*layer\.0\.attention\.self\.(query|key)", r=2)
    names = sorted(n for n, m in bert.named_modules() if m in lora_layers(bert))
    assert names == [f"bert.encoder.layer.0.attention.self.{k}" for k in ("key", "query")]
    with pytest.raises(ValueError, match="matches no adaptable module"):
        apply_lora(bert.__class__(bert.config), r"attention\.self\.query", r=2)  # not full


def test_all_linear_skips_heads_and_works_on_gpt2_conv1d(bert, gpt2):
    apply_lora(bert, "all-linear", r=2)
    adapted = [n for n, m in bert.named_modules() if m in lora_layers(bert)]
    assert len(adapted) == 2 * 6 and not any("classifier" in n or "pooler" in n for n in adapted)
    apply_lora(gpt2, ["all-linear"], r=2)
    assert len(lora_layers(gpt2)) == 2 * 4  # c_attn (whole), attn.c_proj, c_fc, mlp.c_proj
    assert all(m.fan_in_fan_out for m in lora_layers(gpt2))


def test_heads_are_never_adapted_by_name(bert, gpt2):
    with pytest.raises(ValueError, match="unknown LoRA target 'classifier'.*only heads"):
        apply_lora(bert, ["classifier"])
    with pytest.raises(ValueError, match="matches no adaptable module"):
        apply_lora(gpt2, "lm_head")
    assert not lora_layers(bert) and not lora_layers(gpt2)


def test_non_linear_match_and_config_forms():
    from tests.conftest import tiny_bert

    with pytest.raises(ValueError, match=r"matches .*\(BertSelfAttention\); LoRA wraps nn.Linear"):
        apply_lora(tiny_bert(), ["attention.self"])
    assert LoraConfig(targets="all-linear").targets == "all-linear"
    assert LoraConfig(targets=["W_v", "q_proj"]).targets == ["v", "q_proj"]
    assert LoraConfig(targets=r".*\.q_proj").targets == r".*\.q_proj"
    with pytest.raises(ValueError, match="not a valid regex"):
        LoraConfig(targets="(")


def test_module_names_on_an_unknown_architecture(token_ids):
    from transformers import T5ForConditionalGeneration

    model = T5ForConditionalGeneration(T5Config(d_model=16, d_ff=32, num_layers=1, num_heads=2,
                                                vocab_size=20, d_kv=8))  # fmt: skip
    with pytest.raises(ValueError, match="pass module names or a regex as targets"):
        apply_lora(model, ["q"])
    apply_lora(model, ["SelfAttention.q", "SelfAttention.v"], r=2)
    assert len(lora_layers(model)) == 4  # encoder + decoder self-attention, q and v
