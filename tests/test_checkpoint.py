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
