"""Saving what a method trained and loading it onto a fresh base model."""

from __future__ import annotations

import json

import pytest
import torch

from lora import LoraConfig, load_adapter, save_adapter
from lora.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from tests.conftest import randomize_lora, tiny_bert, tiny_gpt2


@pytest.mark.parametrize("factory", [tiny_bert, tiny_gpt2])
def test_save_load_roundtrip(tmp_path, factory, token_ids):
    method = LoraConfig(r=4, lora_alpha=8, targets=["q", "v"], bias="lora_only")
    model = method.apply(factory(seed=0))
    randomize_lora(model)
    with torch.no_grad():  # the head is trained too: change it so the test sees it
        for n, p in model.named_parameters():
            if p.requires_grad and "lora_" not in n:
                p.add_(0.05)
    expected = model(token_ids).logits
    save_adapter(model, tmp_path, method, metadata={"base_model": "tiny"})
    saved = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert (
        saved["method"] == "lora" and saved["r"] == 4 and saved["metadata"]["base_model"] == "tiny"
    )
    # only trainable tensors are stored: far smaller than the model
    size = (tmp_path / WEIGHTS_NAME).stat().st_size
    assert size < 4 * sum(p.numel() for p in model.parameters()) / 3
    fresh = load_adapter(factory(seed=0), tmp_path)
    torch.testing.assert_close(fresh(token_ids).logits, expected, atol=0, rtol=0)


def test_load_into_wrong_architecture_fails(tmp_path):
    method = LoraConfig(r=2)
    save_adapter(method.apply(tiny_bert()), tmp_path, method)
    with pytest.raises(ValueError, match="does not fit the model"):
        load_adapter(tiny_gpt2(), tmp_path)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=WEIGHTS_NAME):
        load_adapter(tiny_bert(), tmp_path)


def test_load_adapter_weights_skips_the_head(tmp_path):
    from lora import load_adapter_weights

    method = LoraConfig(r=2)
    source = method.apply(tiny_bert(seed=0))
    randomize_lora(source)
    save_adapter(source, tmp_path, method)
    target = method.apply(tiny_bert(num_labels=3, seed=1))  # another head size, like MNLI -> RTE
    loaded = load_adapter_weights(target, tmp_path, skip=("classifier",))
    assert loaded and all("lora_" in n or "pooler" in n for n in loaded)
    src, dst = dict(source.named_parameters()), dict(target.named_parameters())
    for name in loaded:
        assert torch.equal(src[name], dst[name])
    assert dst["classifier.weight"].shape == (3, 32)
    with pytest.raises(ValueError, match="does not fit the model"):
        load_adapter_weights(method.apply(tiny_bert(num_labels=3)), tmp_path)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_untouched(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    from lora import lora_layers

    assert not lora_layers(model)
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert all(p.requires_grad for p in model.parameters())


def test_shape_mismatch_names_both_shapes_and_leaves_model_unchanged(tmp_path):
    method = LoraConfig(r=8, targets=["q", "v"])
    save_adapter(method.apply(tiny_bert()), tmp_path, method)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    (tmp_path / CONFIG_NAME).write_text(json.dumps({**config, "r": 4}))  # tampered / mixed up
    model = tiny_bert()
    before = _state(model)
    with pytest.raises(
        ValueError,
        match=r"lora_A of layer bert\.encoder\.layer\.0\.attention\.self\.query: "
        r"checkpoint \(8, 32\), model \(4, 32\)",
    ) as info:
        load_adapter(model, tmp_path)
    assert "\n" not in str(info.value)
    _assert_untouched(model, before)


def test_other_base_config_is_refused_before_any_change(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    method = LoraConfig(r=2, targets=["q", "v"])
    save_adapter(method.apply(tiny_bert()), tmp_path, method)
    # same q/v shapes, another MLP width: the old loader accepted it silently
    other = BertForSequenceClassification(BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=48, max_position_embeddings=64)).eval()  # fmt: skip
    before = _state(other)
    with pytest.raises(
        ValueError, match=r"base config intermediate_size=64 in the checkpoint, 48 in this model"
    ):
        load_adapter(other, tmp_path)
    _assert_untouched(other, before)
    assert load_adapter(other, tmp_path, check_base=False) is other  # explicit override


def test_other_base_name_is_refused(tmp_path):
    method = LoraConfig(r=2)
    source = tiny_bert()
    source.config._name_or_path = "org/bert-a"
    save_adapter(method.apply(source), tmp_path, method)
    saved = json.loads((tmp_path / CONFIG_NAME).read_text())["base_model"]
    assert saved["name_or_path"] == "org/bert-a" and saved["model_type"] == "bert"
    target = tiny_bert()
    target.config._name_or_path = "org/bert-b"
    with pytest.raises(ValueError, match="saved for base model 'org/bert-a', this is 'org/bert-b'"):
        load_adapter(target, tmp_path)


def test_wrong_architecture_leaves_model_unchanged(tmp_path):
    method = LoraConfig(r=2)
    save_adapter(method.apply(tiny_bert()), tmp_path, method)
    model = tiny_gpt2()
    before = _state(model)
    with pytest.raises(ValueError, match="saved for a 'bert' base model, this is a 'gpt2' model"):
        load_adapter(model, tmp_path)
    _assert_untouched(model, before)
