"""peft's file format: our export loads in peft, and peft's folders load in lora.

Oracle: ``peft.PeftModel.from_pretrained`` / ``get_peft_model(...).save_pretrained``;
outputs must agree within 1e-5 (fp32), heads (modules_to_save) included.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from lora import LoraConfig, load_adapter, lora_layers, make_method, save_adapter
from lora.checkpoint import CONFIG_NAME
from tests.conftest import randomize_lora, tiny_bert, tiny_gpt2

peft = pytest.importorskip("peft")


def tiny_roberta(seed: int = 0) -> RobertaForSequenceClassification:
    torch.manual_seed(seed)
    config = RobertaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=64, pad_token_id=1)  # fmt: skip
    return RobertaForSequenceClassification(config).eval()


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=64, num_hidden_layers=2, vocab_size=100)  # fmt: skip
    return LlamaForCausalLM(config).eval()


FACTORIES = {"bert": tiny_bert, "roberta": tiny_roberta, "llama": tiny_llama, "gpt2": tiny_gpt2}


@pytest.fixture
def tokens() -> torch.Tensor:
    return torch.randint(2, 100, (3, 12), generator=torch.Generator().manual_seed(0))


def _train_a_little(model: torch.nn.Module) -> None:
    randomize_lora(model)
    with torch.no_grad():  # heads and biases are trained too: make them differ from the base
        for n, p in model.named_parameters():
            if p.requires_grad and "lora_" not in n:
                p.add_(0.05)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize(
    ("family", "method"),
    [
        ("bert", LoraConfig(r=4, lora_alpha=8, targets=["q", "v"])),
        ("roberta", LoraConfig(r=4, lora_alpha=16, targets=["q", "v"], bias="lora_only")),
        (
            "llama",
            LoraConfig(r=4, lora_alpha=8, targets=["q", "k", "v", "o", "gate", "up", "down"]),
        ),
        ("gpt2", LoraConfig(r=4, lora_alpha=8, targets=["q", "v", "o"])),  # fused c_attn slices
    ],
    ids=["bert", "roberta", "llama", "gpt2-fused"],
)
def test_export_loads_in_peft_with_same_outputs(family, method, tokens, tmp_path):
    ours = method.apply(FACTORIES[family]())
    _train_a_little(ours)
    expected = ours(tokens).logits
    save_adapter(ours, tmp_path, method, format="peft")
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 4
    theirs = peft.PeftModel.from_pretrained(FACTORIES[family](), tmp_path).eval()
    assert _max_diff(theirs(tokens).logits, expected) <= 1e-5
    assert _max_diff(expected, FACTORIES[family]()(tokens).logits) > 1e-3  # the adapter matters
    # and back: our loader reads our own peft export
    back = load_adapter(FACTORIES[family](), tmp_path)
    assert _max_diff(back(tokens).logits, expected) <= 1e-5


def test_gpt2_fused_slices_export_as_block_diagonal_rank_2r(tmp_path):
    method = LoraConfig(r=4, lora_alpha=8, targets=["q", "v"])
    ours = method.apply(tiny_gpt2())
    _train_a_little(ours)
    save_adapter(ours, tmp_path, method, format="peft")
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    key = r"transformer\.h\.0\.attn\.c_attn"
    assert config["rank_pattern"][key] == 8 and config["alpha_pattern"][key] == 16
    from safetensors.torch import load_file

    b = load_file(str(tmp_path / "adapter_model.safetensors"))[
        "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight"
    ]
    assert b.shape == (96, 8)
    assert torch.all(b[32:64] == 0) and torch.all(b[:32, 4:] == 0) and torch.all(b[64:, :4] == 0)


@pytest.mark.parametrize(
    ("family", "kwargs"),
    [
        ("bert", dict(target_modules=["query", "value"], task_type="SEQ_CLS")),
        (
            "roberta",
            dict(target_modules=["query", "key", "value"], task_type="SEQ_CLS", bias="all"),
        ),
        ("llama", dict(target_modules="all-linear", task_type="CAUSAL_LM")),
        ("gpt2", dict(target_modules=["c_attn"], fan_in_fan_out=True, task_type="CAUSAL_LM")),
    ],
)
def test_peft_folder_loads_with_same_outputs(family, kwargs, tokens, tmp_path):
    config = peft.LoraConfig(r=4, lora_alpha=8, init_lora_weights=False, **kwargs)
    theirs = peft.get_peft_model(FACTORIES[family](), config).eval()
    with torch.no_grad():  # heads trained too (modules_to_save copies)
        for n, p in theirs.named_parameters():
            if "modules_to_save" in n or (p.requires_grad and "lora_" not in n):
                p.add_(0.05)
    expected = theirs(tokens).logits
    theirs.save_pretrained(tmp_path)
    ours = load_adapter(FACTORIES[family](), tmp_path)
    assert lora_layers(ours)
    assert _max_diff(ours(tokens).logits, expected) <= 1e-5
    assert _max_diff(expected, FACTORIES[family]()(tokens).logits) > 1e-3


def test_peft_load_failure_leaves_model_unchanged(tmp_path):
    theirs = peft.get_peft_model(tiny_bert(), peft.LoraConfig(r=4, target_modules=["query"]))
    theirs.save_pretrained(tmp_path)
    model = tiny_gpt2()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(
        ValueError, match="adapter does not fit the model: peft module .* not found"
    ):
        load_adapter(model, tmp_path)
    assert not lora_layers(model) and model.state_dict().keys() == before.keys()


def test_peft_format_needs_lora(tmp_path):
    with pytest.raises(ValueError, match="no LoRA layers"):
        save_adapter(tiny_bert(), tmp_path, LoraConfig(), format="peft")
    with pytest.raises(ValueError, match="format must be one of native, peft"):
        save_adapter(tiny_bert(), tmp_path, LoraConfig(), format="onnx")
    vera = make_method("vera", r=4)
    with pytest.raises(ValueError, match="LoRA layers only.*VeraLinear"):
        save_adapter(vera.apply(tiny_bert()), tmp_path, vera, format="peft")


@pytest.mark.parametrize(
    ("family", "variant"),
    [
        ("bert", dict(use_rslora=True)),
        ("llama", dict(use_rslora=True)),
        ("bert", dict(use_dora=True)),
        ("llama", dict(use_dora=True)),
    ],
    ids=["bert-rslora", "llama-rslora", "bert-dora", "llama-dora"],
)
def test_variants_round_trip_through_peft(family, variant, tokens, tmp_path):
    method = LoraConfig(r=4, lora_alpha=8, targets=["q", "v"], **variant)
    ours = method.apply(FACTORIES[family]())
    _train_a_little(ours)
    expected = ours(tokens).logits
    save_adapter(ours, tmp_path / "ours", method, format="peft")
    config = json.loads((tmp_path / "ours" / CONFIG_NAME).read_text())
    assert all(config[k] is True for k in variant)
    theirs = peft.PeftModel.from_pretrained(FACTORIES[family](), tmp_path / "ours").eval()
    assert _max_diff(theirs(tokens).logits, expected) <= 1e-5
    theirs.save_pretrained(tmp_path / "theirs")  # and peft's own folder back into lora
    back = load_adapter(FACTORIES[family](), tmp_path / "theirs")
    assert _max_diff(back(tokens).logits, expected) <= 1e-5
